"""The one interface the sidecar scores through, whatever runs the model.

Dispatcher
 ├── CeleryDispatcher   jobs go through Redis to GPU workers (sidecar.scoring.celery_backend)
 ├── LocalDispatcher    in-process model, for one machine and demos (sidecar.scoring.local_backend)
 └── CachedDispatcher   wraps either: Redis score cache first, only missing pairs go on

Errors: DispatchError (a worker failed) and its subclasses DispatchTimeout (the deadline passed),
BrokerUnavailable (Redis could not be reached), NoWorker (no live worker serves the model) and
Overloaded (too many jobs in flight already). Each carries a short ``reason`` token for headers
and metrics. The caller decides what a failure means for its request (fail open, or not).
"""

from __future__ import annotations

from typing import Protocol

from workers.contract import ScoringJob, ScoringResult


class DispatchError(RuntimeError):
    """The job could not be scored; the message says why (never a secret). ``detail`` holds
    what the worker said, for logs only."""

    detail: str = ""
    reason: str = "worker_error"


class DispatchTimeout(DispatchError):
    """The job's deadline passed before its result arrived."""

    reason = "timeout"


class BrokerUnavailable(DispatchError):
    """The job could not be sent, or its result not awaited: Redis is down or unreachable."""

    reason = "broker_unavailable"


class Dispatcher(Protocol):
    async def score(self, job: ScoringJob) -> ScoringResult:
        """Score ``job`` before ``job.deadline`` or raise DispatchError / DispatchTimeout."""
        ...

    async def close(self) -> None: ...


class NoWorker(DispatchError):
    """No live worker serves the job's model: the job was not sent."""

    reason = "no_worker"


class Overloaded(DispatchError):
    """The sidecar waits on as many jobs as it may already: the job was not sent."""

    reason = "overloaded"
