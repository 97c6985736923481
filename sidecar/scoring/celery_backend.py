"""Scoring on Celery workers through Redis, without blocking the event loop.

A job is published as the Celery task message kombu's Redis transport would store
(``celery_message``), pushed with redis.asyncio on the event loop (``dispatch.publisher:
direct``), or with Celery's own client, which is synchronous and so runs on a small owned
executor (``celery``). Results are awaited on the result backend's pub/sub channels (the Redis
result backend stores every state of a task under ``celery-task-meta-<id>`` and publishes it on
the channel of that name), never with ``AsyncResult.get()``.

What holds under load and faults:
- Any number of jobs may wait at once: each registers a future in a dict. The task ids of one
  dispatcher share a prefix, and one listener task holds one pattern subscription to all of
  them, made once, on a connection of its own that nothing else reads from. (A SUBSCRIBE per
  job on a shared PubSub raced for its connection: concurrent first jobs each took and leaked a
  pooled connection until the pool was gone.)
- ``dispatch.max_in_flight`` bounds the jobs waiting; the next one fails at once with
  ``overloaded``, so a burst degrades searches instead of queueing without bound.
- A model no live worker serves (its heartbeat set, ``workers.contract.heartbeat_key``, has no
  recent member) fails at once with ``no_worker`` instead of waiting for its deadline.
- When the listener's connection drops (Redis restarted), it reconnects at once, subscribes
  again, and reads the stored result of every job still waiting (a result published while it
  was away is stored too), so nothing in flight is lost; if Redis is down, the jobs waiting fail
  with ``broker_unavailable`` and it keeps trying, quickly. After a refused publish, new jobs
  fail at once for ``dispatch.broker_backoff_ms`` (or until the listener is back) instead of
  each waiting on a dead broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sidecar.scoring.celery_client import celery_client
from sidecar.scoring.celery_message import task_message
from sidecar.scoring.dispatch import (
    BrokerUnavailable,
    DispatchError,
    DispatchTimeout,
    NoWorker,
    Overloaded,
)
from sidecar.scoring.redis_pool import redis_client
from sidecar.scoring.workers import WorkerDirectory
from sidecar.settings import DispatchSettings
from sidecar.tracing import context_headers
from workers.contract import SCORE_TASK, ScoringJob, ScoringResult, queue_name

log = logging.getLogger(__name__)

META_PREFIX = "celery-task-meta-"
READY = {"SUCCESS", "FAILURE", "REVOKED"}
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.05, "interval_max": 0.05}


class CeleryDispatcher:
    def __init__(
        self,
        broker_url: str,
        result_backend: str | None = None,
        options: DispatchSettings | None = None,
    ) -> None:
        self.options = options or DispatchSettings()
        backend = result_backend or broker_url
        # No result backend on the publishing side: Celery's Redis backend would open a blocking
        # pub/sub connection per sent task; results are read below with redis.asyncio instead.
        self._app = celery_client(
            "rerank-sidecar", broker_url, timeout_s=self.options.redis_timeout_s
        )
        self._redis = redis_client(
            backend,
            max_connections=self.options.redis_max_connections,
            timeout_s=self.options.redis_timeout_s,
        )
        self._broker = (
            self._redis
            if backend == broker_url
            else redis_client(
                broker_url,
                max_connections=self.options.redis_max_connections,
                timeout_s=self.options.redis_timeout_s,
            )
        )
        self._prefix = f"rs-{uuid.uuid4().hex[:12]}."
        self._workers = WorkerDirectory(self._redis)
        self._results = ResultListener(
            backend,
            self._prefix,
            self._redis,
            self.options.redis_timeout_s,
            on_reconnect=self._workers.after_outage,
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="publish")
        self._in_flight = 0
        self._broker_down_until = 0.0

    @property
    def in_flight(self) -> int:
        """Jobs waiting for their result now."""
        return self._in_flight

    async def score(self, job: ScoringJob) -> ScoringResult:
        remaining = job.deadline - time.time()
        if remaining <= 0:
            raise DispatchTimeout("the deadline passed before the job was sent")
        if self._in_flight >= self.options.max_in_flight:
            raise Overloaded(
                f"{self._in_flight} scoring jobs are in flight already "
                f"(dispatch.max_in_flight = {self.options.max_in_flight})"
            )
        self._in_flight += 1  # taken before the first await: the check above must hold
        try:
            meta = await self._dispatch(job, remaining)
        finally:
            self._in_flight -= 1
        if time.time() > job.deadline:
            raise DispatchTimeout(f"the {job.model} result arrived after the deadline")
        return _result_of(meta, job.model)

    async def _dispatch(self, job: ScoringJob, remaining: float) -> dict[str, Any]:
        """Send ``job`` and wait for its result's meta, within ``remaining`` seconds."""
        if time.monotonic() < self._broker_down_until and not self._results.connected:
            raise BrokerUnavailable("Redis refused the last job; not sending more for a moment")
        if not await self._workers.serves(job.model):
            raise NoWorker(f"no live worker serves {job.model}")
        task_id = self._prefix + uuid.uuid4().hex
        try:
            async with asyncio.timeout(remaining):
                waiter = self._results.expect(task_id)
                try:
                    if self.options.publisher == "direct":
                        await self._push(job, task_id)
                    else:
                        # In the search's trace context: the publish's span and the task's
                        # traceparent belong to it (an executor thread has no context of its
                        # own).
                        publish = contextvars.copy_context().run
                        await asyncio.get_running_loop().run_in_executor(
                            self._executor, publish, self._publish, job, task_id
                        )
                    return await waiter
                finally:
                    self._results.forget(task_id)
        except TimeoutError:
            raise DispatchTimeout(
                f"no result from the {job.model} workers within {remaining * 1000:.0f} ms"
            ) from None
        except DispatchError:
            raise
        except Exception as exc:  # kombu and redis-py raise their own errors when Redis is down
            self._broker_down_until = time.monotonic() + self.options.broker_backoff_ms / 1000
            raise BrokerUnavailable(f"could not send the job: {type(exc).__name__}") from None

    async def _push(self, job: ScoringJob, task_id: str) -> None:
        queue = queue_name(job.model, job.priority)
        message = task_message(
            SCORE_TASK,
            task_id,
            job.model_dump_json().encode(),
            queue,
            expires_at=job.deadline,
            extra_headers=context_headers(),  # the worker's task span joins the search's trace
        )
        # Priority 0 of kombu's Redis transport is the queue's own list (LPUSH, workers BRPOP).
        await self._broker.lpush(queue, message)

    def _publish(self, job: ScoringJob, task_id: str) -> None:
        if time.time() >= job.deadline:
            # Waited in the executor's queue past its deadline: sending it would only load a
            # worker with a job nobody waits for.
            raise DispatchTimeout("the deadline passed before the job was sent")
        self._app.send_task(
            SCORE_TASK,
            args=[job.model_dump(mode="json")],
            task_id=task_id,
            queue=queue_name(job.model, job.priority),
            expires=datetime.fromtimestamp(job.deadline, UTC),
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )

    async def close(self) -> None:
        await self._results.close()
        if self._broker is not self._redis:
            await self._broker.aclose()
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
    """One pattern subscription (``celery-task-meta-<prefix>*``) for every job of one
    dispatcher, read by one task on a connection of its own; a job waits on a future."""

    def __init__(
        self,
        url: str,
        prefix: str,
        store: aioredis.Redis,
        timeout_s: float = 2.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._on_reconnect = on_reconnect
        self._url = url
        self._pattern = f"{META_PREFIX}{prefix}*"
        self._store = store
        self._timeout_s = timeout_s
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._subscribed = False
        self._was_subscribed = False
        self._closed = False
        self._outage_logged = False

    @property
    def connected(self) -> bool:
        return self._subscribed

    def expect(self, task_id: str) -> asyncio.Future[dict[str, Any]]:
        """The future of ``task_id``'s result; call before publishing."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[META_PREFIX + task_id] = future
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="celery-results")
        elif not self._subscribed:
            self._wake.set()  # a job is waiting: reconnect now, not after the backoff
        return future

    def forget(self, task_id: str) -> None:
        future = self._waiters.pop(META_PREFIX + task_id, None)
        if future is None:
            return
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # retrieved: no "exception was never retrieved" at collection

    async def _run(self) -> None:
        backoff = 0.0
        while not self._closed:
            self._was_subscribed = False
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis-py's errors, OSError, a broken transport
                if not self._outage_logged:
                    log.warning("the Redis result channel is down: %s", type(exc).__name__)
                    self._outage_logged = True
                if self._was_subscribed:
                    backoff = 0.0  # it was up: try again at once, a restart is often quick
                else:  # even the reconnect failed: Redis is down, nothing will come
                    self._fail_all(f"lost the Redis result channel: {type(exc).__name__}")
            if backoff:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._wake.wait()
            backoff = min(max(backoff * 2, 0.05), 1.0)

    async def _listen(self) -> None:
        # A client of its own, without redis-py's silent reconnects: a reconnect here must be
        # followed by the sweep, or a result published meanwhile would be missed.
        client = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout_s,
            socket_keepalive=True,
            health_check_interval=5,
            retry=Retry(NoBackoff(), 0),
        )
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(self._pattern)
            while True:  # the subscription's confirmation comes first
                message = await pubsub.get_message(timeout=self._timeout_s)
                if message is None:
                    raise TimeoutError("no psubscribe confirmation")
                if message.get("type") == "psubscribe":
                    break
            self._subscribed = self._was_subscribed = True
            if self._outage_logged:
                log.warning("the Redis result channel is back")
                self._outage_logged = False
                if self._on_reconnect is not None:
                    self._on_reconnect()
            await self._sweep()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "pmessage":
                    self._deliver(message["channel"], message["data"])
        finally:
            self._subscribed = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _sweep(self) -> None:
        """Results stored while no subscription was there to hear them."""
        channels = list(self._waiters)
        for start in range(0, len(channels), 500):
            chunk = channels[start : start + 500]
            for channel, stored in zip(chunk, await self._store.mget(chunk), strict=True):
                if stored is not None:
                    self._deliver(channel, stored)

    def _deliver(self, channel: Any, data: Any) -> None:
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        waiter = self._waiters.get(name)
        if waiter is None or waiter.done():
            return
        try:
            meta = json.loads(data)
        except (ValueError, TypeError):
            return
        if isinstance(meta, dict) and meta.get("status") in READY:
            waiter.set_result(meta)

    def _fail_all(self, reason: str) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(BrokerUnavailable(reason))

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.cancel()
