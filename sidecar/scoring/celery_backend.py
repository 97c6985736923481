"""Scoring on Celery workers through Redis, without blocking the event loop.

Publishing with Celery's client is synchronous, so it runs on a small owned executor. Results
are awaited with redis.asyncio on the result backend's pub/sub channel (the Redis result backend
publishes every state change on ``celery-task-meta-<id>``), never with ``AsyncResult.get()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from pydantic import ValidationError

from sidecar.scoring.dispatch import BrokerUnavailable, DispatchError, DispatchTimeout
from workers.contract import SCORE_TASK, ScoringJob, ScoringResult, queue_name

META_PREFIX = "celery-task-meta-"
READY = {"SUCCESS", "FAILURE", "REVOKED"}


class CeleryDispatcher:
    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        backend = result_backend or broker_url
        # No result backend on the publishing side: Celery's Redis backend would open a blocking
        # pub/sub connection per sent task; results are read below with redis.asyncio instead.
        self._app = Celery("rerank-sidecar", broker=broker_url)
        self._app.conf.update(
            task_serializer="json", result_serializer="json", accept_content=["json"]
        )
        self._redis = aioredis.Redis.from_url(backend)
        self._executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="publish")

    async def score(self, job: ScoringJob) -> ScoringResult:
        task_id = str(uuid.uuid4())
        channel = META_PREFIX + task_id
        remaining = job.deadline - time.time()
        if remaining <= 0:
            raise DispatchTimeout("the deadline passed before the job was sent")
        pubsub = self._redis.pubsub()
        try:
            async with asyncio.timeout(remaining):
                # Subscribe before publishing, so a fast result cannot be missed.
                await pubsub.subscribe(channel)
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._publish, job, task_id
                )
                meta = await self._wait(pubsub, channel)
        except TimeoutError:
            raise DispatchTimeout(
                f"no result from the {job.model} workers within {remaining * 1000:.0f} ms"
            ) from None
        except (aioredis.RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis is unavailable: {type(exc).__name__}") from None
        except Exception as exc:  # kombu raises its own errors when the broker is down
            if isinstance(exc, DispatchError):
                raise
            raise BrokerUnavailable(f"could not send the job: {type(exc).__name__}") from None
        finally:
            await _close_quietly(pubsub)
        if time.time() > job.deadline:
            raise DispatchTimeout(f"the {job.model} result arrived after the deadline")
        return _result_of(meta, job.model)

    def _publish(self, job: ScoringJob, task_id: str) -> None:
        self._app.send_task(
            SCORE_TASK,
            args=[job.model_dump(mode="json")],
            task_id=task_id,
            queue=queue_name(job.model, job.priority),
            expires=datetime.fromtimestamp(job.deadline, UTC),
        )

    async def _wait(self, pubsub: aioredis.client.PubSub, channel: str) -> dict[str, Any]:
        stored = await self._redis.get(channel)
        if stored is not None:
            meta: dict[str, Any] = json.loads(stored)
            if meta.get("status") in READY:
                return meta
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            meta = json.loads(message["data"])
            if meta.get("status") in READY:
                return meta

    async def close(self) -> None:
        await self._redis.aclose()
        self._executor.shutdown(wait=False)
        self._app.close()


def _result_of(meta: dict[str, Any], model: str) -> ScoringResult:
    status = meta.get("status")
    if status == "SUCCESS":
        try:
            return ScoringResult.model_validate(meta.get("result"))
        except ValidationError:
            raise DispatchError(f"the {model} worker sent a malformed result") from None
    if status == "REVOKED":
        raise DispatchTimeout(f"the {model} job expired before a worker took it")
    failure = meta.get("result") or {}
    if not isinstance(failure, dict):
        failure = {}
    error = DispatchError(f"the {model} worker failed: {failure.get('exc_type', 'error')}")
    error.detail = str(failure.get("exc_message", ""))  # for logs, not for clients
    raise error


async def _close_quietly(pubsub: aioredis.client.PubSub) -> None:
    with contextlib.suppress(aioredis.RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
