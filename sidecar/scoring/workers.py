"""Which models live workers serve, from their heartbeats in Redis (``heartbeat_key``).

A job for a model no worker serves would sit in its queue until a worker appears, possibly
never: the sidecar asks first and says ``no_worker`` at once. The answer is kept for a second
per model and shared by the jobs that ask meanwhile, so a burst costs one Redis read; if Redis
cannot be asked, the job goes on (publishing will tell). A Redis that restarted has lost every
heartbeat: for two heartbeat intervals after the dispatcher saw it come back (``after_outage``),
a model without any heartbeat counts as served, so reranking resumes at once instead of when
the workers next beat.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from workers.contract import WORKER_HEARTBEAT_S, WORKER_STALE_S, heartbeat_key

FRESH_S = 1.0
GRACE_S = 2 * WORKER_HEARTBEAT_S


class WorkerDirectory:
    def __init__(self, client: aioredis.Redis, fresh_s: float = FRESH_S) -> None:
        self._redis = client
        self._fresh_s = fresh_s
        self._known: dict[str, tuple[float, bool]] = {}
        self._asking: dict[str, asyncio.Future[bool]] = {}
        self._grace_until = 0.0

    def after_outage(self) -> None:
        """Redis is back after an outage: its heartbeats may be gone until the workers beat."""
        self._grace_until = time.monotonic() + GRACE_S
        self._known.clear()

    async def serves(self, model: str) -> bool:
        """Is a worker serving ``model`` heard from within ``WORKER_STALE_S``?"""
        known = self._known.get(model)
        if known is not None and time.monotonic() - known[0] < self._fresh_s:
            return known[1]
        pending = self._asking.get(model)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asking[model] = future
        try:
            answer = await self._ask(model)
        finally:
            del self._asking[model]
        future.set_result(answer)
        return answer

    async def _ask(self, model: str) -> bool:
        key = heartbeat_key(model)
        try:
            live = await self._redis.zrangebyscore(
                key, time.time() - WORKER_STALE_S, "+inf", start=0, num=1
            )
            if not live and time.monotonic() < self._grace_until:
                return not await self._redis.exists(key)  # lost with the restart, not stale
        except (aioredis.RedisError, OSError):
            return True  # unknown: let the job try
        answer = bool(live)
        self._known[model] = (time.monotonic(), answer)
        return answer


__all__ = ["WorkerDirectory"]
