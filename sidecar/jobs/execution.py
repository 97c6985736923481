"""Running one chunk of a job: per query, the proxy's search path, scoring on the bulk queue,
and the results written under their deterministic ids.

One chunk of a job runs at a time (the next is sent when one completes), so ``limits.searches``
bounds the job's searches in flight on the whole cluster, and ``limits.pairs`` the documents it
has waiting on the scoring workers. A query is counted once, when its results are written (a
chunk run again after a crash skips the queries already counted and overwrites the documents of
the others). A query that fails (the engine refused its search, nothing could be scored, the
workers kept failing) is recorded with its reason and the job goes on; an engine that cannot be
reached or a results index that refuses writes ends the job ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sidecar.jobs.engine import EngineFailed, JobEngine, engine_reason
from sidecar.jobs.results import result_documents
from sidecar.jobs.spec import JobSpec, QueryItem, search_body
from sidecar.jobs.store import ACTIVE, JobStore
from sidecar.proxy.upstream import UpstreamOptions, UpstreamUnavailable
from sidecar.scoring.cache import CachedDispatcher, ScoreCache
from sidecar.scoring.dispatch import Dispatcher
from sidecar.search.options import RerankInputError
from sidecar.search.plan import RerankPlan, decide
from sidecar.search.rerank import (
    NOTHING_SCORED,
    RerankFailed,
    SearchReranker,
    UnexpectedResponse,
    Unsupported,
    prepare,
    search_hits,
)
from sidecar.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_S = (0.5, 2.0, 5.0)


class JobFatal(RuntimeError):
    """The job cannot go on: the engine or the results index is unusable."""


class PairBudget:
    """At most ``limit`` documents waiting on the scoring workers; a window larger than the
    limit waits for all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, pairs: int) -> AsyncIterator[None]:
        pairs = min(pairs, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + pairs <= self.limit)
            self.used += pairs
        try:
            yield
        finally:
            async with self._changed:
                self.used -= pairs
                self._changed.notify_all()


@dataclass
class RunnerContext:
    """What a job runner process shares between its chunks: settings, the job store, the
    scoring dispatcher (bulk queue), the score cache and one engine client per credential."""

    settings: Settings
    store: JobStore
    dispatcher: Dispatcher
    cache: ScoreCache | None
    engines: dict[str | None, JobEngine] = field(default_factory=dict)

    def engine(self, credential: str | None) -> JobEngine:
        engine = self.engines.get(credential)
        if engine is None:
            pool = max(8, self.settings.jobs.max_concurrency)
            options = UpstreamOptions.of(self.settings.upstream, connections_per_node=pool)
            named = self.settings.jobs.credentials.get(credential) if credential else None
            if credential is not None and (named is None or not named.has_secret):
                raise JobFatal(
                    f"the credential {credential!r} is not in this runner's jobs.credentials "
                    "(with its api_key or basic_auth)"
                )
            engine = JobEngine(self.settings.upstream.urls, options, named)
            self.engines[credential] = engine
        return engine

    def scorer(self, warm_cache: bool) -> tuple[SearchReranker, CachedDispatcher | None]:
        """A reranker of one query on the bulk queue, and its cache counters (when cached)."""
        if self.cache is None:
            return SearchReranker(self.dispatcher, priority="bulk"), None
        revisions = {name: spec.revision for name, spec in self.settings.models.items()}
        cached = CachedDispatcher(self.dispatcher, self.cache, revisions, write=warm_cache)
        return SearchReranker(cached, priority="bulk"), cached

    async def close(self) -> None:
        for engine in self.engines.values():
            await engine.close()
        await self.dispatcher.close()
        if self.cache is not None:
            await self.cache.close()


@dataclass(frozen=True)
class ChunkOutcome:
    """``next_chunk``: the chunk to send next (None: nothing more, the job ended or stopped)."""

    next_chunk: int | None
    state: str


async def run_chunk(ctx: RunnerContext, job_id: str, chunk: int) -> ChunkOutcome:
    store = ctx.store
    view = await store.get(job_id)
    if view is None:
        return ChunkOutcome(None, "gone")
    if view.state not in ACTIVE:
        return ChunkOutcome(None, view.state)
    if chunk < view.cursor:
        # A chunk that completed, delivered again: its runner died after moving the cursor,
        # perhaps before sending the next chunk. Send that one (again) only from the chunk
        # right before it, so copies never multiply down the chain.
        resend = chunk == view.cursor - 1 and view.cursor < view.chunks
        return ChunkOutcome(view.cursor if resend else None, view.state)
    state = await store.start(job_id)
    if state != "running":
        return ChunkOutcome(None, state)
    size = await store.chunk_size(job_id)
    items = await store.queries(job_id, chunk * size, (chunk + 1) * size)
    counted = await store.recorded(job_id, [item.id for item in items])
    todo = [item for item, done in zip(items, counted, strict=True) if not done]
    spec = view.spec
    jobs = ctx.settings.jobs
    searches = asyncio.Semaphore(min(spec.limits.searches or jobs.default_concurrency,
                                     jobs.max_concurrency))  # fmt: skip
    pairs = PairBudget(min(spec.limits.pairs or jobs.max_pairs_in_flight, jobs.max_pairs_in_flight))
    fatal: str | None = None
    try:
        engine = ctx.engine(spec.credentials)
        async with asyncio.TaskGroup() as group:
            for item in todo:
                group.create_task(_run_query(ctx, job_id, spec, item, engine, searches, pairs))
    except* JobFatal as failures:
        fatal = str(failures.exceptions[0])
    if fatal is not None:
        log.error("job %s failed: %s", job_id, fatal)
        await store.finish(job_id, "failed", fatal, jobs.keep_s)
        return ChunkOutcome(None, "failed")
    if await store.state(job_id) != "running":
        return ChunkOutcome(None, await store.state(job_id) or "gone")
    cursor = await store.advance(job_id, chunk)
    if cursor < 0:  # a copy of this chunk completed first and went on
        return ChunkOutcome(None, "running")
    if cursor < view.chunks:
        return ChunkOutcome(cursor, "running")
    if spec.output.index is not None:
        # The documents are written; if this fails, the engine's own refresh shows them soon.
        with contextlib.suppress(UpstreamUnavailable):
            await engine.refresh(spec.output.index)
    ended = await store.finish(job_id, "done", "", jobs.keep_s)
    return ChunkOutcome(None, ended)


def _plan(ctx: RunnerContext, spec: JobSpec, body: dict[str, Any]) -> tuple[RerankPlan, Any]:
    """The proxy's plan and widened search for ``body``. Raises ValueError saying why it is
    not reranked."""
    try:
        decision = decide(ctx.settings, spec.index, body, {}, None)
    except RerankInputError as exc:
        raise ValueError(str(exc)) from None
    if decision.plan is None:
        raise ValueError(f"not reranked: {decision.skip_reason}")
    # A job waits its turn behind interactive searches, and a failed window is a failed query
    # (recorded), never the engine's order written as if it were reranked.
    plan = dataclasses.replace(
        decision.plan, timeout_ms=int(ctx.settings.jobs.scoring_timeout_s * 1000), on_error="fail"
    )
    try:
        prepared = prepare(plan, decision.body or body, [])
    except Unsupported as exc:
        raise ValueError(f"not reranked: {exc.reason}") from None
    return plan, prepared.body


async def _search(engine: JobEngine, spec: JobSpec, body: dict[str, Any], attempts: int) -> Any:
    """The engine's answer; raises ValueError (the query fails) or JobFatal (the job does)."""
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            status, answer = await engine.search(spec.index, body)
        except UpstreamUnavailable as exc:
            if last:
                raise JobFatal(f"the cluster cannot be reached: {exc}") from None
        else:
            if status == 200:
                return answer
            reason = engine_reason(answer)
            if status == 404 and "index_not_found" in reason:
                raise JobFatal(f"the source index is gone: {reason}")
            if status not in RETRY_STATUSES and status < 500:
                raise ValueError(f"the engine refused the search ({status}): {reason}")
            if last:
                raise JobFatal(f"the engine keeps failing ({status}): {reason}")
        await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    raise AssertionError("unreachable")


async def _run_query(
    ctx: RunnerContext,
    job_id: str,
    spec: JobSpec,
    item: QueryItem,
    engine: JobEngine,
    searches: asyncio.Semaphore,
    pairs: PairBudget,
) -> None:
    store = ctx.store
    jobs = ctx.settings.jobs
    async with searches:
        if await store.state(job_id) != "running":
            return  # cancelled meanwhile: not counted, a resume runs it
        try:
            plan, body = _plan(ctx, spec, search_body(spec, item))
            answer = await _search(engine, spec, body, jobs.attempts)
            _, hits = search_hits(answer)
        except (ValueError, UnexpectedResponse) as exc:
            await store.record(job_id, item.id, "failed", error=str(exc))
            return
        window = hits[: plan.window]
        ordered: list[dict[str, Any]] = []
        hits_from_cache = scored = 0
        if window:
            try:
                async with pairs.hold(len(window)):
                    ordered, hits_from_cache = await _rerank(ctx, spec, plan, window, jobs.attempts)
            except RerankFailed as exc:
                await store.record(job_id, item.id, "failed", error=f"{exc.reason}: {exc}")
                return
            scored = sum(1 for hit in ordered if "_rerank_score" in (hit.get("fields") or {}))
        written = 0
        if spec.output.index is not None and ordered:
            documents = result_documents(
                job_id, item, plan.query.text, window, ordered, plan.model, plan.instruction,
                plan.profile,
            )  # fmt: skip
            token = await store.lease(job_id, jobs.write_timeout_s + 5)
            if token is None:
                return  # cancelled: nothing more is written
            try:
                async with asyncio.timeout(jobs.write_timeout_s):
                    await engine.bulk_index(spec.output.index, documents)
            except EngineFailed as exc:
                raise JobFatal(str(exc)) from None
            except (UpstreamUnavailable, TimeoutError) as exc:
                raise JobFatal(f"the results index cannot be written: {exc}") from None
            finally:
                await store.release(job_id, token)
            written = len(documents)
        await store.record(
            job_id, item.id, "done", pairs=scored, cache_hits=hits_from_cache, documents=written
        )


async def _rerank(
    ctx: RunnerContext,
    spec: JobSpec,
    plan: RerankPlan,
    window: list[dict[str, Any]],
    attempts: int,
) -> tuple[list[dict[str, Any]], int]:
    """The window in the reranked order and how many of its scores came from the cache. A
    failed scoring is tried again (a worker died, the queue was too long) unless nothing in
    the window could be scored at all."""
    for attempt in range(attempts):
        reranker, cached = ctx.scorer(spec.output.warm_cache)
        try:
            ordered, _ = await reranker.order(plan, window)
        except RerankFailed as exc:
            if attempt == attempts - 1 or str(exc).startswith(NOTHING_SCORED):
                raise
            log.warning("scoring a job's window failed (%s); trying again", exc.reason)
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            continue
        return ordered, cached.lookups["hit"] if cached is not None else 0
    raise AssertionError("unreachable")
