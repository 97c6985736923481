"""A job's state in Redis: it outlives the sidecar, the runners and the scoring workers.

Keys (``{id}`` is the job id):
- ``rerank:jobs``: sorted set of job ids by creation time (the list);
- ``rerank:job:{id}``: hash: spec (JSON, a credential's name but never its secret), state,
  reason, times, totals, the chunk cursor;
- ``rerank:job:{id}:queries``: list of the queries (JSON), fixed when the job was made;
- ``rerank:job:{id}:done``: hash query id → ``done`` | ``failed``: a query counts once however
  often its chunk runs (a runner killed mid-chunk runs it again);
- ``rerank:job:{id}:errors``: the last errors (JSON), newest first;
- ``rerank:job:{id}:leases``: sorted set of result writes in flight (token → expiry): a write
  starts only while the job runs, and a cancel returns once none is in flight.

Every change of state is one Lua script, so a cancel, a resume and a runner never interleave.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from sidecar.jobs.spec import JobSpec, QueryItem

State = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE: tuple[State, ...] = ("queued", "running")
JOBS_KEY = "rerank:jobs"
ERRORS_KEPT = 20
TOTALS = ("done", "failed", "pairs", "cache_hits", "documents")


def job_key(job_id: str, part: str = "") -> str:
    return f"rerank:job:{job_id}" + (f":{part}" if part else "")


_RECORD = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[1], 'pairs', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'cache_hits', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'documents', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[6])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
end
return 1
"""

_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
  return 'running'
end
return state or ''
"""

_LEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
end
return state or ''
"""

_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'queued' then return state or '' end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2], 'reason', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return ARGV[1]
"""

_RESUME = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'cancelled' or state == 'failed' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'reason', '')
  redis.call('HDEL', KEYS[1], 'finished_at')
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
return state or ''
"""

_ADVANCE = """
local cursor = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
local chunk = tonumber(ARGV[1])
if cursor <= chunk then
  redis.call('HSET', KEYS[1], 'cursor', chunk + 1)
  return chunk + 1
end
return -1
"""


@dataclass(frozen=True)
class JobView:
    """What ``GET /_rerank/jobs/{id}`` says of a job."""

    id: str
    spec: JobSpec
    state: State
    queries: int
    chunks: int
    cursor: int
    totals: dict[str, int]
    created_at: float
    started_at: float | None
    finished_at: float | None
    reason: str
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class JobSummary:
    """A job's numbers, without its spec (what the metrics read every scrape)."""

    id: str
    name: str
    state: str
    queries: int
    done: int
    failed: int
    pairs: int


SUMMARY_FIELDS = ("name", "state", "queries", "done", "failed", "pairs")


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


def _float(value: Any) -> float | None:
    return float(value) if value not in (None, b"", "") else None


class JobStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._record = client.register_script(_RECORD)
        self._start = client.register_script(_START)
        self._lease = client.register_script(_LEASE)
        self._cancel = client.register_script(_CANCEL)
        self._finish = client.register_script(_FINISH)
        self._resume = client.register_script(_RESUME)
        self._advance = client.register_script(_ADVANCE)

    def _keys(self, job_id: str) -> list[str]:
        return [job_key(job_id), *(job_key(job_id, p) for p in ("queries", "done", "errors"))]

    async def create(
        self, job_id: str, spec: JobSpec, queries: list[QueryItem], chunk_size: int
    ) -> None:
        """The job and its queries, written in one transaction: all or nothing."""
        now = time.time()
        chunks = (len(queries) + chunk_size - 1) // chunk_size
        lines = [item.model_dump_json(exclude_none=True) for item in queries]
        async with self.redis.pipeline(transaction=True) as pipe:
            for start in range(0, len(lines), 10_000):
                pipe.rpush(job_key(job_id, "queries"), *lines[start : start + 10_000])
            pipe.hset(
                job_key(job_id),
                mapping={
                    "spec": spec.model_dump_json(exclude_none=True),
                    "name": spec.name or "",
                    "state": "queued",
                    "queries": len(queries),
                    "chunk_size": chunk_size,
                    "chunks": chunks,
                    "cursor": 0,
                    "created_at": now,
                    "reason": "",
                    **dict.fromkeys(TOTALS, 0),
                },
            )
            pipe.zadd(JOBS_KEY, {job_id: now})
            await pipe.execute()

    async def get(self, job_id: str) -> JobView | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.lrange(job_key(job_id, "errors"), 0, ERRORS_KEPT - 1)
            raw, errors = await pipe.execute()
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return JobView(
            id=job_id,
            spec=JobSpec.model_validate_json(data["spec"]),
            state=data["state"],
            queries=int(data["queries"]),
            chunks=int(data["chunks"]),
            cursor=int(data.get("cursor", 0)),
            totals={name: int(data.get(name, 0)) for name in TOTALS},
            created_at=float(data["created_at"]),
            started_at=_float(data.get("started_at")),
            finished_at=_float(data.get("finished_at")),
            reason=data.get("reason", ""),
            errors=[orjson.loads(e) for e in errors],
        )

    async def chunk_size(self, job_id: str) -> int:
        return int(await self.redis.hget(job_key(job_id), "chunk_size") or 1)

    async def list_ids(self, offset: int, size: int) -> tuple[list[str], int]:
        """Job ids, newest first, and how many there are (expired ones are dropped here)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(JOBS_KEY, offset, offset + size - 1)
            pipe.zcard(JOBS_KEY)
            ids, total = await pipe.execute()
        return [i.decode() for i in ids], int(total)

    async def summaries(self, newest: int) -> list[JobSummary]:
        """The numbers of the ``newest`` jobs, in two round trips (expired ones left out)."""
        ids, _ = await self.list_ids(0, newest)
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), SUMMARY_FIELDS)
            rows = await pipe.execute()
        out = []
        for job_id, values in zip(ids, rows, strict=True):
            if values[1] is None:
                continue
            name, state, *numbers = (v.decode() if v is not None else "" for v in values)
            queries, done, failed, pairs = (int(n or 0) for n in numbers)
            out.append(JobSummary(job_id, name, state, queries, done, failed, pairs))
        return out

    async def forget(self, job_id: str) -> None:
        await self.redis.zrem(JOBS_KEY, job_id)

    async def queries(self, job_id: str, start: int, stop: int) -> list[QueryItem]:
        lines = await self.redis.lrange(job_key(job_id, "queries"), start, stop - 1)
        return [QueryItem.model_validate_json(line) for line in lines]

    async def recorded(self, job_id: str, ids: list[str]) -> list[bool]:
        if not ids:
            return []
        values = await self.redis.hmget(job_key(job_id, "done"), ids)
        return [value is not None for value in values]

    async def record(
        self,
        job_id: str,
        query_id: str,
        outcome: Literal["done", "failed"],
        pairs: int = 0,
        cache_hits: int = 0,
        documents: int = 0,
        error: str | None = None,
    ) -> bool:
        """Count one query's outcome, once: False when it was counted before."""
        entry = b""
        if error is not None:
            entry = orjson.dumps({"query_id": query_id, "reason": error, "at": time.time()})
        counted = await self._record(
            keys=[job_key(job_id), job_key(job_id, "done"), job_key(job_id, "errors")],
            args=[query_id, outcome, pairs, cache_hits, documents, entry, ERRORS_KEPT],
        )
        return bool(counted)

    async def start(self, job_id: str) -> str:
        """queued → running; the state the job is in after (running, or why not)."""
        state = await self._start(keys=[job_key(job_id)], args=[time.time()])
        return state.decode() if isinstance(state, bytes) else str(state)

    async def lease(self, job_id: str, duration_s: float) -> str | None:
        """A token to write results with while the job runs (None: it does not run)."""
        token = uuid.uuid4().hex
        now = time.time()
        granted = await self._lease(
            keys=[job_key(job_id), job_key(job_id, "leases")], args=[token, now + duration_s, now]
        )
        return token if granted else None

    async def release(self, job_id: str, token: str) -> None:
        await self.redis.zrem(job_key(job_id, "leases"), token)

    async def writes_in_flight(self, job_id: str) -> int:
        return int(await self.redis.zcount(job_key(job_id, "leases"), time.time(), "+inf"))

    async def cancel(self, job_id: str) -> str:
        """Cancel a queued or running job; the state it was in ('' when there is none)."""
        state = await self._cancel(keys=[job_key(job_id)], args=[time.time()])
        return state.decode() if isinstance(state, bytes) else str(state)

    async def finish(self, job_id: str, state: State, reason: str, keep_s: int) -> str:
        """End a queued or running job as ``state``; its keys expire after ``keep_s``."""
        keys = [*self._keys(job_id), job_key(job_id, "leases")]
        ended = await self._finish(keys=keys, args=[state, time.time(), reason, keep_s])
        return ended.decode() if isinstance(ended, bytes) else str(ended)

    async def resume(self, job_id: str) -> str:
        """cancelled or failed → queued; the state it was in ('' when there is none)."""
        state = await self._resume(keys=self._keys(job_id))
        return state.decode() if isinstance(state, bytes) else str(state)

    async def advance(self, job_id: str, chunk: int) -> int:
        """Chunk ``chunk`` is complete: the cursor moves past it (never back). -1 when it was
        past already (another copy of the chunk completed first)."""
        return int(await self._advance(keys=[job_key(job_id)], args=[chunk]))

    async def state(self, job_id: str) -> str | None:
        value = await self.redis.hget(job_key(job_id), "state")
        return value.decode() if isinstance(value, bytes) else value
