"""One search's rerank, around the engine's call: widen the request, then score and merge.

``prepare`` turns the client's body into the one the engine gets (from 0, size = the window or
more, the scored fields in ``_source``) and remembers the client's page and ``_source`` view.
``SearchReranker.apply`` scores the window through the dispatcher before the plan's deadline and
rewrites the engine's response in place. A failed scoring either degrades to the engine's own
order (the default) or raises RerankFailed, which the proxy answers in the engine's format.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.scoring.dispatch import Dispatcher, DispatchError
from sidecar.search.documents import build_document
from sidecar.search.merge import Page, merge
from sidecar.search.plan import RerankPlan
from sidecar.search.source import SOURCE_PARAMS, SourceView, client_view, fetch_source, restore_view
from workers.contract import Priority, ScoringJob

PAGE_PARAMS = ("from", "size")
NOTHING_SCORED = "no document could be scored"
ANSWER_PARAMS = ("filter_path",)  # applied by the sidecar to the reranked answer


@dataclass(frozen=True)
class PreparedSearch:
    plan: RerankPlan
    body: dict[str, Any]
    params: list[tuple[str, str]]
    page: Page
    view: SourceView
    filter_path: list[str] = field(default_factory=list)
    """The client's ``filter_path`` values: the engine answers without it, the sidecar filters
    the reranked answer."""


@dataclass(frozen=True)
class Outcome:
    """How one rerank went: ``applied`` (``unscored`` window hits had nothing scored) or
    ``degraded`` for ``reason``; ``took_ms``: time spent reranking."""

    kind: str
    took_ms: float
    reason: str = ""
    unscored: int = 0

    @property
    def status(self) -> str:
        """The X-Rerank-Status value."""
        if self.kind == "degraded":
            return f"degraded; reason={self.reason}"
        return f"applied; unscored={self.unscored}" if self.unscored else "applied"


class RerankFailed(RuntimeError):
    """Scoring failed and the request asked to fail (``on_error: fail``)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def error_type(self) -> str:
        """The ``error.type`` the client sees, e.g. ``rerank_sidecar_timeout``."""
        return f"rerank_sidecar_{self.reason}"

    @property
    def header(self) -> str:
        """The X-Rerank-Status value of a search that failed this way."""
        return f"failed; reason={self.reason}"


class Unsupported(ValueError):
    """The search asks for something the sidecar does not rewrite (``reason``: ``paging`` for
    from/size that are not plain non-negative integers, ``source`` for a ``_source`` of a shape
    the engines do not define): the engine should see it as sent and answer it itself."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class UnexpectedResponse(ValueError):
    """The engine answered 200 with a body the merge cannot read as a search response."""


def _int(value: Any, default: int) -> int:
    """``from``/``size``: an integer, or digits (URL parameters); anything else (a float, a
    boolean, Infinity, a huge number) is the engine's to accept or refuse."""
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    raise Unsupported("paging", repr(value)[:100])


def prepare(
    plan: RerankPlan, body: Mapping[str, Any], params: list[tuple[str, str]]
) -> PreparedSearch:
    """The widened request. Raises Unsupported for from/size or _source it does not rewrite."""
    query = dict(params)
    start = _int(query.get("from", body.get("from")), 0)
    size = _int(query.get("size", body.get("size")), 10)
    try:
        view = client_view(body, query)
    except (TypeError, ValueError):
        raise Unsupported("source", repr(body.get("_source"))[:100]) from None
    widened = dict(body)
    widened["from"] = 0
    widened["size"] = max(plan.window, start + size)
    source = fetch_source(view, plan.fields.all())
    if source is not None:
        widened["_source"] = source
    elif any(name in query for name in SOURCE_PARAMS):
        widened["_source"] = True
    dropped = (*PAGE_PARAMS, *SOURCE_PARAMS, *ANSWER_PARAMS)
    kept = [(k, v) for k, v in params if k not in dropped]
    filters = [v for k, v in params if k == "filter_path"]
    return PreparedSearch(plan, widened, kept, Page(start, size), view, filters)


class SearchReranker:
    def __init__(
        self, dispatcher: Dispatcher, hit_fields: bool = True, priority: Priority = "interactive"
    ) -> None:
        self._dispatcher = dispatcher
        self._hit_fields = hit_fields
        self._priority: Priority = priority
        """The workers' queue: ``bulk`` for jobs, so searches go ahead of them."""

    async def _scores(
        self, plan: RerankPlan, window: list[dict[str, Any]]
    ) -> tuple[list[float | None], int]:
        """The reranker's score of each window hit (None: nothing to score, or it failed) and
        how many were not scored. Raises DispatchError when nothing could be scored."""
        documents = [
            build_document(str(i), hit.get("_source"), plan.fields) for i, hit in enumerate(window)
        ]
        present = [d for d in documents if d is not None]
        scores: list[float | None] = [None] * len(window)
        failed = len(window) - len(present)
        if present:
            job = ScoringJob(
                model=plan.model,
                instruction=plan.instruction,
                query=plan.query,
                documents=present,
                deadline=time.time() + plan.timeout_ms / 1000,
                max_doc_tokens=plan.max_doc_tokens,
                priority=self._priority,
            )
            result = await self._dispatcher.score(job)
            for document, score in zip(present, result.scores, strict=True):
                scores[int(document.id)] = score
            failed += len(result.errors)
            if all(score is None for score in result.scores):
                # Nothing scored (a broken query image, say): as good as a failed job.
                raise DispatchError(f"{NOTHING_SCORED}: {result.errors[0].error}")
        return scores, failed

    async def apply(self, search: PreparedSearch, response: dict[str, Any]) -> Outcome:
        """Rerank ``response`` (the engine's answer to ``search.body``) in place."""
        started = time.perf_counter()
        plan = search.plan
        hits_node, hits = search_hits(response)
        try:
            scores, failed = await self._scores(plan, hits[: plan.window])
        except DispatchError as exc:
            reason = exc.reason
            if plan.on_error == "fail":
                code = 504 if reason == "timeout" else 502
                raise RerankFailed(code, reason, str(exc)) from exc
            self._original_page(search, hits, response)
            took = (time.perf_counter() - started) * 1000
            _add_took(response, took)
            return Outcome("degraded", took, reason=reason)
        merged = merge(
            hits,
            scores,
            plan.window,
            plan.combine,
            search.page,
            min_score=plan.min_score,
            hit_fields=self._hit_fields,
        )
        for hit in merged.hits:
            restore_view(hit, search.view)
        if hits_node is not None:
            hits_node["hits"] = merged.hits
            if merged.max_score is not None:
                hits_node["max_score"] = merged.max_score
        took = (time.perf_counter() - started) * 1000
        _add_took(response, took)
        return Outcome("applied", took, unscored=failed)

    async def order(
        self, plan: RerankPlan, hits: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], Outcome]:
        """Every one of ``hits`` (copies: the caller's stay as they are) in ``plan``'s order,
        annotated like a reranked page; a failed scoring gives the engine's order (degraded), or
        raises RerankFailed when the plan says ``on_error: fail``. Views are not restored."""
        started = time.perf_counter()
        copies = copy.deepcopy(hits)
        try:
            scores, failed = await self._scores(plan, copies[: plan.window])
        except DispatchError as exc:
            if plan.on_error == "fail":
                code = 504 if exc.reason == "timeout" else 502
                raise RerankFailed(code, exc.reason, str(exc)) from exc
            return copies, Outcome("degraded", (time.perf_counter() - started) * 1000, exc.reason)
        merged = merge(
            copies,
            scores,
            plan.window,
            plan.combine,
            Page(0, len(copies)),
            min_score=plan.min_score,
            hit_fields=self._hit_fields,
        )
        took = (time.perf_counter() - started) * 1000
        return [dict(hit) for hit in merged.hits], Outcome("applied", took, unscored=failed)

    def _original_page(
        self, search: PreparedSearch, hits: list[dict[str, Any]], response: dict[str, Any]
    ) -> None:
        page = hits[search.page.start : search.page.start + search.page.size]
        for hit in page:
            restore_view(hit, search.view)
        if response.get("hits") is not None:
            response["hits"]["hits"] = page


def search_hits(response: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The ``hits`` object of a search response and its hits. Raises UnexpectedResponse for
    anything the merge could not read: what the engine sent then goes to the client instead."""
    if not isinstance(response, dict):
        raise UnexpectedResponse(f"the response is a {type(response).__name__}, not an object")
    node = response.get("hits")
    if node is None:
        return None, []
    if not isinstance(node, dict) or not isinstance(node.get("hits", []), list):
        raise UnexpectedResponse("hits.hits is not a list")
    hits: list[Any] = node.get("hits", [])
    for hit in hits:
        if not isinstance(hit, dict) or not isinstance(hit.get("fields", {}), dict):
            raise UnexpectedResponse("a hit is not an object with a fields object")
    return node, hits


def _add_took(response: dict[str, Any], took_ms: float) -> None:
    if isinstance(response.get("took"), int):
        response["took"] += round(took_ms)
