"""Celery tasks. Thin: validate the contract, drop what is too late or has killed workers before,
hand over to the batcher.

Dead letters: jobs are acknowledged only after they ran (acks_late), so a job whose worker dies
goes back to the queue and is delivered again. A job that itself kills workers (a media file
that exhausts memory) would go round forever, killing one worker each time. So every delivery
is counted in the broker's Redis (``INCR rerank:deliveries:<task id>``, with an expiry); a job
delivered more than ``max_deliveries`` times is not run: every document gets an error, and the
job is recorded (ids, model, counts, times; no content) in the capped list ``rerank:dead-letter``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import redis
from celery import shared_task
from pydantic import ValidationError

from workers.contract import SCORE_TASK, DocumentError, ScoringJob, ScoringResult

if TYPE_CHECKING:
    from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)

ECHO_TASK = "rerank.echo"
DELIVERIES_KEY = "rerank:deliveries:"
"""Prefix of the per-task delivery counters: ``rerank:deliveries:<celery task id>``."""
DELIVERIES_TTL_S = 86_400
"""A counter outlives any redelivery cycle (visibility timeout × deliveries) by far."""
DEAD_LETTER_KEY = "rerank:dead-letter"
"""Newest first; JSON objects with task_id, model, priority, documents, deliveries, at."""
DEAD_LETTER_MAX = 1000


@shared_task(name=ECHO_TASK)
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with the worker's identity: proves a round trip through Redis."""
    return {"payload": payload, "worker_host": socket.gethostname(), "worker_pid": os.getpid()}


@shared_task(name=SCORE_TASK, bind=True)
def score(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Validate a ScoringJob dict, score it, return a ScoringResult dict."""
    try:
        job = ScoringJob.model_validate(payload)
    except ValidationError as exc:
        # Celery cannot rebuild a pydantic ValidationError on the caller's side; a ValueError
        # with the full reason survives the trip through the result backend.
        raise ValueError(f"invalid scoring job: {exc}") from None
    task_id = getattr(self.request, "id", None)
    return score_job(job, task_id=task_id).model_dump(mode="json")


def _every_document(job: ScoringJob, reason: str) -> ScoringResult:
    return ScoringResult(
        scores=[None] * len(job.documents),
        errors=[DocumentError(index=i, error=reason) for i in range(len(job.documents))],
        model=job.model,
        took_ms=0.0,
    )


def count_delivery(client: redis.Redis, task_id: str) -> int | None:
    """This delivery's number (1 for the first); None when Redis cannot say (then the job
    runs: a broken counter must not drop jobs)."""
    key = DELIVERIES_KEY + task_id
    try:
        pipe = client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, DELIVERIES_TTL_S)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not count the deliveries of task %s: %s", task_id, exc)
        return None
    return int(count)


def forget_deliveries(client: redis.Redis, task_id: str) -> None:
    try:
        client.delete(DELIVERIES_KEY + task_id)
    except redis.RedisError as exc:
        log.warning("could not clear the delivery count of task %s: %s", task_id, exc)


def dead_letter(client: redis.Redis, job: ScoringJob, task_id: str, deliveries: int) -> None:
    """Record a dropped job in the capped list (no content: ids, model, counts, times)."""
    entry = json.dumps(
        {
            "task_id": task_id,
            "model": job.model,
            "priority": job.priority,
            "documents": len(job.documents),
            "deliveries": deliveries,
            "deadline": job.deadline,
            "at": time.time(),
            "worker": socket.gethostname(),
        }
    )
    try:
        pipe = client.pipeline(transaction=True)
        pipe.lpush(DEAD_LETTER_KEY, entry)
        pipe.ltrim(DEAD_LETTER_KEY, 0, DEAD_LETTER_MAX - 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record dead-lettered task %s: %s", task_id, exc)


def _dropped(runtime: WorkerRuntime, job: ScoringJob, task_id: str | None) -> ScoringResult | None:
    """The dead-letter answer when this delivery is one too many; None to run the job."""
    if task_id is None or runtime.redis is None:
        return None
    deliveries = count_delivery(runtime.redis, task_id)
    if deliveries is None or deliveries <= 1:
        return None
    runtime.metrics.redelivered_jobs.labels(job.model).inc()
    if deliveries <= runtime.max_deliveries:
        log.warning("task %s arrived again (delivery %d): a worker died on it", task_id, deliveries)
        return None
    log.error(
        "task %s dropped after %d deliveries: workers died while scoring it", task_id, deliveries
    )
    runtime.metrics.dead_lettered_jobs.labels(job.model).inc()
    dead_letter(runtime.redis, job, task_id, deliveries)
    return _every_document(
        job,
        f"dropped after {deliveries} deliveries: a worker died while scoring this job "
        f"{deliveries - 1} times (worker.max_deliveries = {runtime.max_deliveries})",
    )


def score_job(job: ScoringJob, task_id: str | None = None) -> ScoringResult:
    """Score a job's pairs; a job whose deadline has passed never reaches the model, nor does a
    job that has killed workers ``max_deliveries`` times."""
    # Imported here so that importing the task module (publishers do) never loads torch.
    from workers.runtime import current

    started = time.perf_counter()
    started_at = time.time()
    runtime = current()
    if job.deadline <= started_at:
        runtime.metrics.expired_jobs.labels(job.model).inc()
        return _every_document(job, "deadline passed before the job started")
    batcher = runtime.batchers.get(job.model)
    if batcher is None:
        raise LookupError(f"model {job.model!r} is not loaded on this worker")
    dropped = _dropped(runtime, job, task_id)
    if dropped is not None:
        return dropped
    # Celery's threads pool enforces no time limit: the job's own deadline does, capped here.
    deadline = job.deadline
    if runtime.task_time_limit_s is not None:
        deadline = min(deadline, started_at + runtime.task_time_limit_s)
    outcome = batcher.score(
        job.query.model_dump(exclude_none=True),
        [doc.model_dump(exclude_none=True, exclude={"id"}) for doc in job.documents],
        job.instruction,
        deadline,
        job.max_doc_tokens,
        priority=job.priority,
    )
    if task_id is not None and runtime.redis is not None:
        forget_deliveries(runtime.redis, task_id)
    took = time.perf_counter() - started
    runtime.metrics.job_seconds.labels(job.model).observe(took)
    return ScoringResult(
        scores=outcome.scores,
        errors=[DocumentError(index=i, error=e) for i, e in outcome.errors],
        model=job.model,
        took_ms=took * 1000,
        tokens=outcome.tokens,
    )
