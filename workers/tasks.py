"""Celery tasks. Thin: validate, do the work elsewhere, return JSON-ready dicts."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import shared_task

ECHO_TASK = "rerank.echo"


@shared_task(name=ECHO_TASK)
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with the worker's identity: proves a round trip through Redis."""
    return {"payload": payload, "worker_host": socket.gethostname(), "worker_pid": os.getpid()}
