"""A Celery task message (protocol 2) as kombu's Redis transport stores it, built directly.

``Celery.send_task`` spends most of a reranked search's dispatch CPU on things a scoring job does
not need: ``saferepr`` of the whole job for the ``argsrepr`` header, a kombu producer and a new
redis-py client per publish, and a thread hop (it is synchronous). The sidecar instead builds the
same message (``body`` base64 of ``[args, kwargs, embed]``, the task headers, the delivery
properties) and ``LPUSH``es it with redis.asyncio on the event loop, as kombu's Redis transport
does for a message of priority 0 on the default exchange. The workers stay plain Celery workers:
they read what ``send_task`` would have written (tests/sidecar/test_celery_message.py compares
the two and runs both through a real worker).
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from datetime import UTC, datetime

import orjson

EMBED = b'{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
ORIGIN = f"rerank-sidecar{os.getpid()}@{socket.gethostname()}"


def task_body(args_json: bytes) -> bytes:
    """``[args, kwargs, embed]`` of a task taking one positional argument, already JSON."""
    return b"[[" + args_json + b"],{}," + EMBED + b"]"


def task_message(
    task: str,
    task_id: str,
    args_json: bytes,
    queue: str,
    expires_at: float | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """The JSON kombu's Redis transport keeps in the queue's list for this task."""
    now = datetime.now(UTC).timestamp()
    expires = datetime.fromtimestamp(expires_at, UTC).isoformat() if expires_at else None
    headers: dict[str, object] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": expires,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "(scoring job)",  # the job itself is in the body; logs need no copy
        "kwargsrepr": "{}",
        "origin": ORIGIN,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        **(extra_headers or {}),
    }
    properties: dict[str, object] = {
        "correlation_id": task_id,
        "reply_to": str(uuid.uuid4()),
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    if expires_at:
        properties["expiration"] = str(max(0, int((expires_at - now) * 1000)))
    return orjson.dumps(
        {
            "body": base64.b64encode(task_body(args_json)).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
    )


__all__ = ["task_body", "task_message"]
