"""How the sidecar gets scores: one Dispatcher interface, a Celery and a local backend, and a
Redis score cache in front of either. Nothing here imports torch."""

from sidecar.scoring.cache import CachedDispatcher, ScoreCache, score_key
from sidecar.scoring.celery_backend import CeleryDispatcher
from sidecar.scoring.dispatch import (
    BrokerUnavailable,
    Dispatcher,
    DispatchError,
    DispatchTimeout,
)

__all__ = [
    "BrokerUnavailable",
    "CachedDispatcher",
    "CeleryDispatcher",
    "DispatchError",
    "DispatchTimeout",
    "Dispatcher",
    "ScoreCache",
    "score_key",
]
