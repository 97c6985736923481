"""How many scoring jobs wait for each model, read from the broker's Redis at scrape time.

Autoscalers (KEDA, through Prometheus) scale each model's workers on
``rerank_queue_depth{model, priority}``: the jobs of that model and priority that no worker has
finished, which a bare ``LLEN rerank.<model>.<priority>`` undercounts twice over:

- kombu's Redis transport keeps one list per priority step (``priority_steps`` 0, 3, 6, 9): the
  base key for step 0 and ``<queue>\\x06\\x16<step>`` for the others, e.g.
  ``rerank.qwen3-vl-reranker-2b.interactive\\x06\\x169``; all four are summed.
- A job a worker took is no longer in any list: with ``acks_late`` and prefetch 1 it sits in the
  ``unacked`` hash (delivery tag → ``[message, exchange, routing_key]``) while it runs, and while
  it waits in a worker's prefetch buffer, until the worker acknowledges it. Those count too
  (``rerank_queue_reserved`` shows them alone): a queue whose every job is running still needs
  its workers.

The sidecar exports the gauges, not the workers, so that a model scaled to zero workers still has
a series to scale up on. Every sidecar replica reads the same Redis and exports the same numbers:
aggregate with ``max by (model, priority)`` before summing. A scrape that cannot read Redis
exports no sample (an autoscaler then sees no data and keeps its fallback), never a stale one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge

from workers.contract import Priority, queue_name

PRIORITIES: tuple[Priority, ...] = ("interactive", "bulk")
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's Redis transport default (``kombu.transport.redis.PRIORITY_STEPS``); the workers'
Celery app does not change it."""
PRIORITY_SEP = "\x06\x16"
"""kombu's separator between a queue's name and its priority step (``Channel.sep``)."""
UNACKED_KEY = "unacked"
"""kombu's hash of delivered, unacknowledged messages (``Channel.unacked_key``)."""
READ_TIMEOUT_S = 2.0

# Counts the unacknowledged messages per routing key inside Redis, so a scrape moves a few
# numbers instead of every running job's message. The hash holds at most the jobs the workers
# have taken (workers × concurrency), so the script is short.
COUNT_UNACKED = """
local counts = {}
local values = redis.call('HVALS', KEYS[1])
for _, value in ipairs(values) do
  local ok, entry = pcall(cjson.decode, value)
  if ok and type(entry) == 'table' and type(entry[3]) == 'string' then
    counts[entry[3]] = (counts[entry[3]] or 0) + 1
  end
end
local flat = {}
for key, count in pairs(counts) do
  flat[#flat + 1] = key
  flat[#flat + 1] = count
end
return flat
"""


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps for ``queue``, one per priority step.

    Example: ``rerank.m.bulk``, ``rerank.m.bulk\\x06\\x163``, ``…\\x166``, ``…\\x169``."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


class QueueDepth:
    """The ``rerank_queue_depth`` and ``rerank_queue_reserved`` gauges of ``models``, refreshed
    from Redis by ``refresh`` (awaited by the metrics endpoint before each exposition)."""

    def __init__(
        self, client: aioredis.Redis, models: Iterable[str], registry: CollectorRegistry
    ) -> None:
        self._redis = client
        self._models = sorted(set(models))
        self._count_unacked = client.register_script(COUNT_UNACKED)
        self.depth = Gauge(
            "rerank_queue_depth",
            "Scoring jobs not yet finished, by model and priority: waiting in every kombu "
            "priority list of the queue, plus taken by a worker and not yet acknowledged",
            ["model", "priority"],
            registry=registry,
        )
        self.reserved = Gauge(
            "rerank_queue_reserved",
            "Scoring jobs taken by a worker (running or prefetched) and not yet acknowledged, "
            "by model and priority",
            ["model", "priority"],
            registry=registry,
        )

    async def read(self) -> dict[tuple[str, Priority], tuple[int, int]]:
        """(waiting, reserved) per (model, priority), in one round trip."""
        queues = [(model, p, queue_name(model, p)) for model in self._models for p in PRIORITIES]
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, _, queue in queues:
                for key in priority_lists(queue):
                    pipe.llen(key)
            lengths = await pipe.execute()
        flat = await self._count_unacked(keys=[UNACKED_KEY])
        reserved = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        steps = len(PRIORITY_STEPS)
        return {
            (model, p): (
                sum(int(n) for n in lengths[i * steps : (i + 1) * steps]),
                reserved.get(queue, 0),
            )
            for i, (model, p, queue) in enumerate(queues)
        }

    async def refresh(self) -> bool:
        """Set the gauges from Redis; on failure clear them and say so (False)."""
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                counts = await self.read()
        except (aioredis.RedisError, OSError, TimeoutError):
            self.depth.clear()
            self.reserved.clear()
            return False
        for (model, priority), (waiting, reserved) in counts.items():
            self.depth.labels(model, priority).set(waiting + reserved)
            self.reserved.labels(model, priority).set(reserved)
        return True

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["PRIORITY_STEPS", "QueueDepth", "priority_lists"]
