"""The job runner: ``rerank-sidecar jobs-worker``, a torch-free Celery worker on ``rerank.jobs``.

A chunk is one Celery task (``rerank.jobs.chunk``, JSON args ``[job id, chunk number]``),
acknowledged only after it ran (acks_late): a runner killed mid-chunk leaves it unacknowledged
and another runner runs it again after ``jobs.visibility_timeout_s``. The runner's unacked
messages live under keys of their own (``rerank-jobs:unacked*``), so the scoring workers'
shorter visibility timeout never hands a long chunk to a second runner while the first one
still works on it.

The tasks run in Celery's threads; their async work runs on one event loop of the process (one
scoring dispatcher, one connection pool per engine, one Redis pool for all chunks).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Celery, shared_task

from sidecar.jobs.execution import ChunkOutcome, RunnerContext, run_chunk
from sidecar.jobs.store import JobStore
from sidecar.scoring.cache import ScoreCache
from sidecar.scoring.celery_backend import CeleryDispatcher
from sidecar.scoring.celery_client import celery_client
from sidecar.scoring.redis_pool import redis_client
from sidecar.settings import Settings

log = logging.getLogger(__name__)

JOBS_QUEUE = "rerank.jobs"
CHUNK_TASK = "rerank.jobs.chunk"
UNACKED_PREFIX = "rerank-jobs:"

T = TypeVar("T")


def jobs_transport_options(settings: Settings) -> dict[str, Any]:
    jobs = settings.jobs
    return {
        "visibility_timeout": jobs.visibility_timeout_s,
        "unacked_restore_interval": jobs.redelivery_check_s,
        "unacked_restore_throttle": 1,
        "unacked_key": UNACKED_PREFIX + "unacked",
        "unacked_index_key": UNACKED_PREFIX + "unacked_index",
        "unacked_mutex_key": UNACKED_PREFIX + "unacked_mutex",
    }


def runner_celery_app(settings: Settings) -> Celery:
    """The runner's Celery app: chunks acknowledged late, one at a time per thread."""
    app = Celery("rerank-jobs", broker=settings.celery.broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=JOBS_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=jobs_transport_options(settings),
        worker_hijack_root_logger=False,
        include=["sidecar.jobs.runner"],
    )
    return app


def chunk_publisher(settings: Settings) -> Celery:
    """A client that sends chunks (the sidecar's API and the runners themselves)."""
    app = celery_client(
        "rerank-jobs-client",
        settings.celery.broker_url,
        timeout_s=settings.dispatch.redis_timeout_s,
    )
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        **jobs_transport_options(settings),
    }
    return app


def send_chunk(publisher: Celery, job_id: str, chunk: int) -> None:
    publisher.send_task(CHUNK_TASK, args=[job_id, chunk], queue=JOBS_QUEUE, retry=True)


class RunnerRuntime:
    """The runner process's event loop (in a thread) and the context its chunks share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobs-loop", daemon=True)
        self._thread.start()
        self.context: RunnerContext = self.call(self._build())
        self.publisher = chunk_publisher(settings)

    async def _build(self) -> RunnerContext:
        s = self.settings
        url = s.celery.result_backend or s.celery.broker_url
        dispatcher = CeleryDispatcher(s.celery.broker_url, s.celery.result_backend, s.dispatch)
        cache = None
        if s.dispatch.cache_enabled:
            cache = ScoreCache(
                redis_client(url, timeout_s=s.dispatch.redis_timeout_s),
                ttl_s=s.dispatch.cache_ttl_s,
                max_entries=s.dispatch.cache_max_entries,
            )
        store = JobStore(redis_client(s.celery.broker_url, timeout_s=s.dispatch.redis_timeout_s))
        return RunnerContext(s, store, dispatcher, cache)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        try:
            self.call(self.context.close())
            self.call(self.context.store.redis.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.publisher.close()


_runtime: RunnerRuntime | None = None


def start_runtime(settings: Settings) -> RunnerRuntime:
    global _runtime
    _runtime = RunnerRuntime(settings)
    return _runtime


def stop_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


@shared_task(name=CHUNK_TASK)  # type: ignore[untyped-decorator]
def chunk_task(job_id: str, chunk: int) -> str:
    """Run one chunk, then send the next one (or end the job)."""
    if _runtime is None:
        raise RuntimeError("the job runner's runtime is not started")
    outcome: ChunkOutcome = _runtime.call(run_chunk(_runtime.context, job_id, chunk))
    if outcome.next_chunk is not None:
        # Sent before this chunk is acknowledged: a runner dying between the two runs this
        # chunk again (its queries are counted already: it only sends the next one again).
        send_chunk(_runtime.publisher, job_id, outcome.next_chunk)
    log.info("job %s chunk %d: %s", job_id, chunk, outcome.state)
    return outcome.state
