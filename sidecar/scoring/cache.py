"""The score cache: Redis, keyed by everything that determines a score.

Key = SHA-256 of (model, revision, instruction, query content, document content), where media
count by their URL or reference (a changed image under the same URL keeps its old score until
the entry expires: set ``ttl_s`` accordingly). Every entry expires after ``ttl_s``; an index
(a sorted set by write time) keeps at most ``max_entries``, dropping the oldest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from sidecar.scoring.dispatch import DispatchError
from workers.contract import Content, DocumentError, ScoringJob, ScoringResult

log = logging.getLogger(__name__)

PREFIX = "rerank:score:"
CONTENT_FIELDS = tuple(Content.model_fields)  # a document's id is not part of its content
INDEX = "rerank:score-index"
LOOKUP_RESULTS = ("hit", "miss", "error")
PUT_SCRIPT = """
local index = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[1])
  redis.call('ZADD', index, ARGV[2], KEYS[i])
end
return redis.call('ZCARD', index)
"""
"""KEYS: the entries' keys, then the index; ARGV: the TTL, the time of writing, the scores."""


def score_keys(
    model: str,
    revision: str | None,
    instruction: str | None,
    query: Content,
    docs: Sequence[Content],
    max_doc_tokens: int | None = None,
) -> list[str]:
    """The cache key of each (query, doc) pair. What is shared by the job is serialized once."""
    shared = json.dumps(
        [model, revision, instruction, query.model_dump(exclude_none=True), max_doc_tokens],
        sort_keys=True,
        ensure_ascii=False,
    ).encode()
    # The shared part is hashed once; each pair continues from a copy of that state (the same
    # digest as hashing shared + material, a third cheaper).
    base = hashlib.sha256(shared)
    keys = []
    for doc in docs:
        hasher = base.copy()
        # The content fields in their declared order (repr of str/list/None is deterministic):
        # several times cheaper than a model_dump + sorted json.dumps per document.
        material = repr([getattr(doc, name) for name in CONTENT_FIELDS])
        hasher.update(b"\x00" + material.encode())
        keys.append(PREFIX + hasher.hexdigest())
    return keys


def score_key(
    model: str,
    revision: str | None,
    instruction: str | None,
    query: Content,
    doc: Content,
    max_doc_tokens: int | None = None,
) -> str:
    """The cache key of one pair: SHA-256 of everything that determines its score."""
    return score_keys(model, revision, instruction, query, [doc], max_doc_tokens)[0]


class ScoreCache:
    def __init__(
        self, client: aioredis.Redis, ttl_s: int = 86400, max_entries: int = 1_000_000
    ) -> None:
        self._redis = client
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._put = client.register_script(PUT_SCRIPT)
        self.scripting = True
        """False once Redis refused the script (an ACL without ``@scripting``, a managed Redis
        with scripts off): writes then go as a pipeline, slower but the same entries."""

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        values = await self._redis.mget(keys)
        return [float(v) if v is not None else None for v in values]

    async def put_many(self, entries: dict[str, float]) -> None:
        if not entries:
            return
        now = time.time()
        size: int | None = None
        if self.scripting:
            # One script call instead of a pipeline of a SET per entry: the client then encodes
            # one command and parses one reply, the larger part of a dispatched search's cache
            # cost (bench/score_cache.py).
            try:
                size = int(
                    await self._put(
                        keys=[*entries, INDEX], args=[self.ttl_s, now, *map(repr, entries.values())]
                    )
                )
            except aioredis.ResponseError as error:
                if not scripts_refused(error):
                    raise
                self.scripting = False
                log.warning("the score cache's Redis refuses scripts (%s): pipelines now", error)
        if size is None:
            size = await self._put_pipelined(entries, now)
        if size > self.max_entries:
            oldest = await self._redis.zrange(INDEX, 0, size - self.max_entries - 1)
            if oldest:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.delete(*oldest)
                    pipe.zrem(INDEX, *oldest)
                    await pipe.execute()

    async def _put_pipelined(self, entries: dict[str, float], now: float) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, score in entries.items():
                pipe.set(key, repr(score), ex=self.ttl_s)
            pipe.zadd(INDEX, {key: now for key in entries})
            pipe.zcard(INDEX)
            results = await pipe.execute()
        return int(results[-1])

    async def close(self) -> None:
        await self._redis.aclose()


def scripts_refused(error: Exception) -> bool:
    """Whether Redis refused to run a script at all (not an error inside one)."""
    return isinstance(error, NoPermissionError) or "unknown command" in str(error).lower()


class CachedDispatcher:
    """Looks every pair up in the cache; only the missing ones go to the wrapped dispatcher."""

    def __init__(
        self,
        inner: Any,
        cache: ScoreCache,
        revisions: dict[str, str | None] | None = None,
        write: bool = True,
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._revisions = revisions or {}
        self._write = write
        """Store fresh scores (off: a bulk job that reads the cache but must not fill it)."""
        self.lookups = dict.fromkeys(LOOKUP_RESULTS, 0)
        """Pairs looked up so far, by result (exported as rerank_sidecar_cache_lookups)."""

    async def score(self, job: ScoringJob) -> ScoringResult:
        started = time.perf_counter()
        revision = self._revisions.get(job.model)
        keys = score_keys(
            job.model, revision, job.instruction, job.query, job.documents, job.max_doc_tokens
        )
        try:
            cached = await self._cache.get_many(keys)
        except (aioredis.RedisError, OSError):
            cached = [None] * len(keys)  # a cache outage costs speed, not results
            self.lookups["error"] += len(keys)
        else:
            hits = sum(value is not None for value in cached)
            self.lookups["hit"] += hits
            self.lookups["miss"] += len(keys) - hits
        missing = [i for i, value in enumerate(cached) if value is None]
        scores: list[float | None] = list(cached)
        errors: list[DocumentError] = []
        tokens = 0
        if missing:
            sub = (
                job  # a new search misses everything: no copy
                if len(missing) == len(keys)
                else job.model_copy(update={"documents": [job.documents[i] for i in missing]})
            )
            result = await self._inner.score(sub)
            fresh: dict[str, float] = {}
            for position, index in enumerate(missing):
                value = result.scores[position]
                scores[index] = value
                if value is not None:
                    fresh[keys[index]] = value
            errors = [DocumentError(index=missing[e.index], error=e.error) for e in result.errors]
            tokens = result.tokens
            if self._write:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await self._cache.put_many(fresh)
        return ScoringResult(
            scores=scores,
            errors=errors,
            model=job.model,
            took_ms=(time.perf_counter() - started) * 1000,
            tokens=tokens,
        )

    async def close(self) -> None:
        await self._inner.close()
        await self._cache.close()


__all__ = ["CachedDispatcher", "DispatchError", "ScoreCache", "score_key"]
