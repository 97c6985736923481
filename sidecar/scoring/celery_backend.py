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
from pydantic import ValidationError

from sidecar.scoring.celery_client import celery_client
from sidecar.scoring.dispatch import BrokerUnavailable, DispatchError, DispatchTimeout
from workers.contract import SCORE_TASK, ScoringJob, ScoringResult, queue_name

META_PREFIX = "celery-task-meta-"
READY = {"SUCCESS", "FAILURE", "REVOKED"}


class CeleryDispatcher:
    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        backend = result_backend or broker_url
        # No result backend on the publishing side: Celery's Redis backend would open a blocking
        # pub/sub connection per sent task; results are read below with redis.asyncio instead.
        self._app = celery_client("rerank-sidecar", broker_url)
        self._redis = aioredis.Redis.from_url(backend)
        self._results = ResultListener(self._redis)
        self._executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="publish")

    async def score(self, job: ScoringJob) -> ScoringResult:
        task_id = str(uuid.uuid4())
        channel = META_PREFIX + task_id
        remaining = job.deadline - time.time()
        if remaining <= 0:
            raise DispatchTimeout("the deadline passed before the job was sent")
        try:
            async with asyncio.timeout(remaining):
                # Register before publishing, so a fast result cannot be missed.
                result = await self._results.register(channel)
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._publish, job, task_id
                    )
                    meta = await self._stored(channel) or await result
                finally:
                    await self._results.release(channel)
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

    async def _stored(self, channel: str) -> dict[str, Any] | None:
        """A result already stored (published before our subscription took effect)."""
        stored = await self._redis.get(channel)
        if stored is not None:
            meta: dict[str, Any] = json.loads(stored)
            if meta.get("status") in READY:
                return meta
        return None

    async def close(self) -> None:
        await self._results.close()
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


class ResultListener:
    """One pub/sub connection for every job in flight. A job registers its result channel; one
    reader task hands each finished result to the job waiting on that channel. (A connection per
    job cost a TCP connect and handshake to Redis on every search.)"""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def register(self, channel: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[channel] = future
        try:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub()
            pubsub = self._pubsub
            await pubsub.subscribe(channel)
        except BaseException:
            self._waiters.pop(channel, None)
            raise
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(pubsub), name="celery-results")
        return future

    async def release(self, channel: str) -> None:
        self._waiters.pop(channel, None)
        if self._pubsub is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                meta = json.loads(message["data"])
                waiter = self._waiters.get(channel)
                if meta.get("status") in READY and waiter is not None and not waiter.done():
                    waiter.set_result(meta)
        except (aioredis.RedisError, OSError) as exc:
            # The connection is gone: every job waiting on it fails now, the next one reconnects.
            if self._pubsub is pubsub:
                self._pubsub = None
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(
                        BrokerUnavailable(f"lost the Redis result channel: {type(exc).__name__}")
                    )
            await _close_quietly(pubsub)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await _close_quietly(self._pubsub)
            self._pubsub = None


async def _close_quietly(pubsub: aioredis.client.PubSub) -> None:
    with contextlib.suppress(aioredis.RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
