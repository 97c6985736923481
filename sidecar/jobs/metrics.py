"""Bulk jobs' progress for Prometheus, read from the job store at scrape time: the runners serve
no HTTP, and a job's numbers live in Redis anyway, so the sidecar exports them (every replica
the same numbers: aggregate with ``max by``).

- ``rerank_jobs{state}``: the newest ``RECENT`` jobs by state (every state has a sample);
- ``rerank_job_queries{job_id, name, outcome}``: each of those jobs' queries, ``outcome`` one of
  ``total``, ``done`` and ``failed`` (progress = (done + failed) / total);
- ``rerank_job_pairs_scored{job_id, name}``: the pairs it had scored (a gauge of the job's own
  counter: ``deriv`` gives its pairs/s).

The label is ``job_id``, not ``job``: Prometheus gives every target a ``job`` label of its own.
A scrape that cannot read Redis exports no per-job sample, never a stale one.
"""

from __future__ import annotations

import asyncio
from typing import get_args

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge

from sidecar.jobs.store import JobStore, State

RECENT = 50
READ_TIMEOUT_S = 2.0
STATES: tuple[str, ...] = get_args(State)


class JobMetrics:
    def __init__(self, store: JobStore, registry: CollectorRegistry) -> None:
        self._store = store
        self.jobs = Gauge("rerank_jobs", f"Bulk jobs by state, of the newest {RECENT}",
                          ["state"], registry=registry)  # fmt: skip
        self.queries = Gauge(
            "rerank_job_queries",
            "Queries of a bulk job: total, done and failed (the newest jobs only)",
            ["job_id", "name", "outcome"],
            registry=registry,
        )
        self.pairs = Gauge(
            "rerank_job_pairs_scored",
            "(query, document) pairs a bulk job had scored (the newest jobs only)",
            ["job_id", "name"],
            registry=registry,
        )

    async def refresh(self) -> bool:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                rows = await self._store.summaries(RECENT)
        except (aioredis.RedisError, OSError, TimeoutError):
            self.jobs.clear()
            self.queries.clear()
            self.pairs.clear()
            return False
        self.queries.clear()  # jobs expire: only the ones read now
        self.pairs.clear()
        counts = dict.fromkeys(STATES, 0)
        for row in rows:
            counts[row.state] = counts.get(row.state, 0) + 1
            for outcome, value in (("total", row.queries), ("done", row.done),
                                   ("failed", row.failed)):  # fmt: skip
                self.queries.labels(row.id, row.name, outcome).set(value)
            self.pairs.labels(row.id, row.name).set(row.pairs)
        for state, count in counts.items():
            self.jobs.labels(state).set(count)
        return True
