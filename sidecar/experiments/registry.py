"""The experiments a sidecar process runs: those of the settings, plus those made through the
admin API, which live in Redis (hash ``rerank:experiments``) so every process runs the same.

Each process reloads the API's experiments every ``admin.experiments_refresh_s`` in the
background; a search only reads the in-memory snapshot. When Redis cannot be read the last
snapshot stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aioredis
from pydantic import ValidationError

from sidecar.experiments.model import Experiment

log = logging.getLogger(__name__)

REDIS_KEY = "rerank:experiments"


class ExperimentConflict(ValueError):
    """The name belongs to an experiment of the settings: the API cannot change it."""


class ExperimentRegistry:
    def __init__(
        self,
        configured: Sequence[Experiment],
        redis: aioredis.Redis | None,
        refresh_s: float = 2.0,
    ) -> None:
        self.configured = {e.name: e for e in configured}
        self._redis = redis
        self._refresh_s = refresh_s
        self._stored: dict[str, Experiment] = {}
        self._task: asyncio.Task[None] | None = None

    def all(self) -> list[Experiment]:
        return [*self.configured.values(), *self._stored.values()]

    def get(self, name: str) -> Experiment | None:
        return self.configured.get(name) or self._stored.get(name)

    def source(self, name: str) -> str:
        return "settings" if name in self.configured else "api"

    def match(self, indices: Sequence[str], now: datetime) -> Experiment | None:
        """The first active experiment applying to any of ``indices`` (settings first, then
        the API's in name order)."""
        for experiment in self.all():
            if experiment.active(now) and experiment.applies_to(indices):
                return experiment
        return None

    async def refresh(self) -> None:
        if self._redis is None:
            return
        raw = await self._redis.hgetall(REDIS_KEY)
        stored = {}
        for name, text in sorted(raw.items()):
            key = name.decode() if isinstance(name, bytes) else str(name)
            try:
                stored[key] = Experiment.model_validate_json(text)
            except ValidationError as exc:
                log.error("experiment %r in Redis is invalid and is not run: %s", key, exc)
        self._stored = {k: v for k, v in stored.items() if k not in self.configured}

    async def put(self, experiment: Experiment) -> None:
        if experiment.name in self.configured:
            raise ExperimentConflict(
                f"experiment {experiment.name!r} is defined in the settings; change it there"
            )
        if self._redis is None:
            raise RuntimeError("experiments made through the API need Redis (celery.broker_url)")
        await self._redis.hset(REDIS_KEY, experiment.name, experiment.model_dump_json())
        self._stored[experiment.name] = experiment

    async def delete(self, name: str) -> bool:
        if name in self.configured:
            raise ExperimentConflict(f"experiment {name!r} is defined in the settings")
        if self._redis is None:
            return False
        removed = bool(await self._redis.hdel(REDIS_KEY, name))
        self._stored.pop(name, None)
        return removed

    async def start(self) -> None:
        if self._redis is None or self._task is not None:
            return
        with contextlib.suppress(Exception):
            await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("reloading the experiments failed (the last ones stay): %s", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
