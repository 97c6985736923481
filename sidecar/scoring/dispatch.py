"""The one interface the sidecar scores through, whatever runs the model.

Dispatcher
 ├── CeleryDispatcher   jobs go through Redis to GPU workers (sidecar.scoring.celery_backend)
 ├── LocalDispatcher    in-process model, for one machine and demos (sidecar.scoring.local_backend)
 └── CachedDispatcher   wraps either: Redis score cache first, only missing pairs go on

Errors: DispatchError (a worker or broker failed) and its subclass DispatchTimeout (the deadline
passed). The caller decides what a failure means for its request (fail open, or not).
"""

from __future__ import annotations

from typing import Protocol

from workers.contract import ScoringJob, ScoringResult


class DispatchError(RuntimeError):
    """The job could not be scored; the message says why (never a secret). ``detail`` holds
    what the worker said, for logs only."""

    detail: str = ""


class DispatchTimeout(DispatchError):
    """The job's deadline passed before its result arrived."""


class Dispatcher(Protocol):
    async def score(self, job: ScoringJob) -> ScoringResult:
        """Score ``job`` before ``job.deadline`` or raise DispatchError / DispatchTimeout."""
        ...

    async def close(self) -> None: ...
