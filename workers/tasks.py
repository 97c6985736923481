"""Celery tasks. Thin: validate the contract, drop what is too late, hand over to the batcher."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from celery import shared_task
from pydantic import ValidationError

from workers.contract import SCORE_TASK, DocumentError, ScoringJob, ScoringResult

ECHO_TASK = "rerank.echo"


@shared_task(name=ECHO_TASK)
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with the worker's identity: proves a round trip through Redis."""
    return {"payload": payload, "worker_host": socket.gethostname(), "worker_pid": os.getpid()}


@shared_task(name=SCORE_TASK)
def score(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate a ScoringJob dict, score it, return a ScoringResult dict."""
    try:
        job = ScoringJob.model_validate(payload)
    except ValidationError as exc:
        # Celery cannot rebuild a pydantic ValidationError on the caller's side; a ValueError
        # with the full reason survives the trip through the result backend.
        raise ValueError(f"invalid scoring job: {exc}") from None
    return score_job(job).model_dump(mode="json")


def score_job(job: ScoringJob) -> ScoringResult:
    """Score a job's pairs; a job whose deadline has passed never reaches the model."""
    # Imported here so that importing the task module (publishers do) never loads torch.
    from workers.runtime import current

    started = time.perf_counter()
    runtime = current()
    if job.deadline <= time.time():
        runtime.metrics.expired_jobs.labels(job.model).inc()
        reason = "deadline passed before the job started"
        return ScoringResult(
            scores=[None] * len(job.documents),
            errors=[DocumentError(index=i, error=reason) for i in range(len(job.documents))],
            model=job.model,
            took_ms=0.0,
        )
    batcher = runtime.batchers.get(job.model)
    if batcher is None:
        raise LookupError(f"model {job.model!r} is not loaded on this worker")
    outcome = batcher.score(
        job.query.model_dump(exclude_none=True),
        [doc.model_dump(exclude_none=True, exclude={"id"}) for doc in job.documents],
        job.instruction,
        job.deadline,
        job.max_doc_tokens,
    )
    took = time.perf_counter() - started
    runtime.metrics.job_seconds.labels(job.model).observe(took)
    return ScoringResult(
        scores=outcome.scores,
        errors=[DocumentError(index=i, error=e) for i, e in outcome.errors],
        model=job.model,
        took_ms=took * 1000,
        tokens=outcome.tokens,
    )
