"""The intercepted endpoints: ``_search`` and ``_msearch`` (GET and POST, with or without an index).

A search no rule matches and without ``ext.rerank`` goes on byte for byte, like any other request.
Otherwise the body is parsed and ``sidecar.search.plan.decide`` says what happens: forwarded
without our ``ext.rerank`` (with the reason in X-Rerank-Status), or reranked: the widened request
goes to the engine, the window is scored, and the engine's response comes back reordered.
``_msearch`` sends one widened ``_msearch`` to the engine and reranks its sub-responses
concurrently, each on its own. Template searches, scroll pages and other paths are not routed
here: they pass through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sidecar.body import BodyTooLarge, read_body
from sidecar.jsonio import dumps, loads
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.errors import engine_error, engine_error_body
from sidecar.proxy.headers import end_to_end
from sidecar.proxy.passthrough import UPSTREAM, forward
from sidecar.proxy.upstream import UpstreamUnavailable
from sidecar.search.options import RerankInputError
from sidecar.search.plan import UNTOUCHED, Decision, decide, index_names, matching_profile, skipped
from sidecar.search.rerank import (
    BadPaging,
    Outcome,
    PreparedSearch,
    RerankFailed,
    SearchReranker,
    prepare,
)
from sidecar.settings import Settings

STATUS = "X-Rerank-Status"
# A body the sidecar rewrote goes out as plain JSON: its old length and encoding no longer apply.
DROP_UPSTREAM = ("Content-Length", "Content-Encoding", "X-Rerank")
DROP_WIDENED = (*DROP_UPSTREAM, "Accept-Encoding")
JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json", "application/x-ndjson")


@dataclass(frozen=True)
class SearchContext:
    settings: Settings
    reranker: SearchReranker
    metrics: SidecarMetrics


SEARCH = web.AppKey("search_context", SearchContext)


def add_search_routes(app: web.Application, context: SearchContext) -> None:
    app[SEARCH] = context
    for method in ("GET", "POST"):
        app.router.add_route(method, "/_search", search)
        app.router.add_route(method, "/{index}/_search", search)
        app.router.add_route(method, "/_msearch", msearch)
        app.router.add_route(method, "/{index}/_msearch", msearch)


def _is_json(content_type: str) -> bool:
    return not content_type or content_type.split(";")[0].strip().lower() in JSON_TYPES


async def _read(request: web.Request) -> tuple[bytes, bytes | None] | web.Response:
    """The body as sent and decoded (see ``read_body``), or a 413 in the engines' format."""
    limit = request.app[SEARCH].settings.server.max_body_bytes
    try:
        return await read_body(request, limit)
    except BodyTooLarge:
        return _too_large(limit)


def _too_large(limit: int) -> web.Response:
    return engine_error(
        413,
        "rerank_sidecar_request_too_large",
        f"the request body is larger than the sidecar's limit of {limit} bytes "
        "(server.max_body_bytes)",
    )


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


async def search(request: web.Request) -> web.StreamResponse:
    context = request.app[SEARCH]
    read = await _read(request)
    if isinstance(read, web.Response):
        return read
    raw, plain = read
    index = request.match_info.get("index")
    settings = context.settings
    if plain is None or (
        b"rerank" not in plain and matching_profile(settings, index_names(index)) is None
    ):
        return await forward(request, raw or None)
    body = _json_object(plain) if _is_json(request.headers.get("Content-Type", "")) else None
    if body is None:
        # Not ours to judge: the engine answers malformed or non-JSON bodies as it always does.
        return await forward(request, raw or None)
    try:
        decision = decide(settings, index, body, request.query, request.headers.get("X-Rerank"))
    except RerankInputError as exc:
        context.metrics.search("invalid", "ext_rerank")
        return engine_error(400, "illegal_argument_exception", str(exc))
    if decision.plan is None:
        return await _forward_decision(request, raw, decision)
    try:
        prepared = prepare(decision.plan, decision.body or body, list(request.query.items()))
    except BadPaging:
        return await _forward_decision(request, raw, Decision(decision.body, "paging"))
    return await _reranked_search(request, prepared, raw, decision)


async def _forward_decision(
    request: web.Request, raw: bytes, decision: Decision
) -> web.StreamResponse:
    status = decision.status
    if decision.skip_reason is not None:
        request.app[SEARCH].metrics.search("skipped", decision.skip_reason)
    extra = {STATUS: status} if status else None
    if decision.body is None:
        return await forward(request, raw or None, extra_headers=extra)
    return await forward(
        request, dumps(decision.body), drop=DROP_UPSTREAM, extra_headers=extra, rewritten=True
    )


def _path_with(request: web.Request, params: list[tuple[str, str]]) -> str:
    path = request.raw_path.split("?", 1)[0]
    return f"{path}?{urlencode(params)}" if params else path


async def _engine_call(
    request: web.Request, body: bytes, path_qs: str
) -> tuple[int, Any, bytes] | web.Response:
    headers = end_to_end(request.headers, drop=("Host", *DROP_WIDENED))
    headers.setdefault("Content-Type", "application/json")
    try:
        upstream = await request.app[UPSTREAM].request(request.method, path_qs, headers, body)
    except UpstreamUnavailable as exc:
        return engine_error(502, "rerank_sidecar_upstream_unavailable", str(exc))
    try:
        data = await upstream.read()
        return upstream.status, end_to_end(upstream.headers, drop=("Content-Length",)), data
    finally:
        upstream.release()


def _respond(
    request: web.Request, status: int, headers: Any, body: bytes, extra: Mapping[str, str]
) -> web.Response:
    headers.update(extra)
    response = web.Response(status=status, body=body, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression()
    return response


async def _reranked_search(
    request: web.Request, prepared: PreparedSearch, raw: bytes, decision: Decision
) -> web.StreamResponse:
    context = request.app[SEARCH]
    answer = await _engine_call(request, dumps(prepared.body), _path_with(request, prepared.params))
    if isinstance(answer, web.Response):
        return answer
    status, headers, engine_raw = answer
    if status != 200 or not _is_json(headers.get("Content-Type", "")):
        # The engine refused the widened request: ask again with the client's own, so the
        # client gets the answer (and error positions) it would get without the sidecar.
        return await _forward_decision(request, raw, Decision(decision.body, "engine_status"))
    response = loads(engine_raw)
    try:
        outcome = await context.reranker.apply(prepared, response)
    except RerankFailed as exc:
        context.metrics.search("failed", exc.reason)
        return engine_error(exc.status, exc.error_type, str(exc), headers={STATUS: exc.header})
    context.metrics.rerank(outcome, prepared.plan.model)
    return _respond(request, 200, headers, dumps(response), _headers_of(outcome, prepared))


def _headers_of(outcome: Outcome, prepared: PreparedSearch) -> dict[str, str]:
    return {
        STATUS: outcome.status,
        "X-Rerank-Model": prepared.plan.model,
        "X-Rerank-Took-Ms": f"{outcome.took_ms:.1f}",
    }


@dataclass
class _Sub:
    """One sub-search of an _msearch: what goes to the engine, or the error it gets instead."""

    header: bytes
    body: bytes
    decision: Decision | None = None
    prepared: PreparedSearch | None = None
    error: dict[str, Any] | None = None

    def status(self) -> str:
        if self.error is not None:
            return "failed; reason=ext_rerank"
        if self.decision is None or (self.decision.plan is None and self.decision.status is None):
            return skipped("no_rule")
        return self.decision.status or "applied"


def _split_ndjson(raw: bytes) -> list[tuple[bytes, bytes]] | None:
    lines = raw.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 2:
        return None
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def _plan_sub(
    settings: Settings, path_index: str | None, header: bytes, body: bytes, switch: str | None
) -> _Sub:
    sub = _Sub(header, body)
    head = _json_object(header)
    parsed = _json_object(body)
    if head is None or parsed is None:
        return sub  # the engine will say what is wrong with it
    index = head.get("index", path_index)
    try:
        sub.decision = decide(settings, index, parsed, {}, switch)
    except RerankInputError as exc:
        sub.error = engine_error_body(400, "illegal_argument_exception", str(exc))
        return sub
    plan = sub.decision.plan
    if plan is not None:
        try:
            sub.prepared = prepare(plan, sub.decision.body or parsed, [])
            sub.body = dumps(sub.prepared.body)
        except BadPaging:
            sub.decision = Decision(sub.decision.body, "paging")
    if sub.prepared is None and sub.decision.body is not None:
        sub.body = dumps(sub.decision.body)
    return sub


async def msearch(request: web.Request) -> web.StreamResponse:
    context = request.app[SEARCH]
    read = await _read(request)
    if isinstance(read, web.Response):
        return read
    raw, plain = read
    settings = context.settings
    if plain is None or (b"rerank" not in plain and not settings.rerank.rules):
        return await forward(request, raw or None)
    pairs = _split_ndjson(plain)
    if pairs is None or not _is_json(request.headers.get("Content-Type", "")):
        return await forward(request, raw or None)
    index = request.match_info.get("index")
    switch = request.headers.get("X-Rerank")
    subs = [_plan_sub(settings, index, header, body, switch) for header, body in pairs]
    for sub in subs:
        if sub.error is not None:
            context.metrics.search("invalid", "ext_rerank")
        elif sub.decision is not None and sub.decision.skip_reason is not None:
            context.metrics.search("skipped", sub.decision.skip_reason)
    if all(s.error is None and s.decision in (None, UNTOUCHED) for s in subs):
        return await forward(request, raw or None)
    sent = [s for s in subs if s.error is None]
    answer = await _engine_call(
        request, b"".join(s.header + b"\n" + s.body + b"\n" for s in sent), request.path_qs
    )
    if isinstance(answer, web.Response):
        return answer
    status, headers, engine_raw = answer
    statuses = [s.status() for s in subs]
    if status != 200 or not _is_json(headers.get("Content-Type", "")):
        return _respond(request, status, headers, engine_raw, {STATUS: skipped("engine_status")})
    response = loads(engine_raw)
    engine_items = iter(response.get("responses", []))
    items: list[Any] = [s.error if s.error is not None else next(engine_items, None) for s in subs]
    started = time.perf_counter()

    async def rerank_one(position: int, sub: _Sub) -> None:
        item = items[position]
        if sub.prepared is None or not isinstance(item, dict) or "error" in item:
            return
        try:
            outcome = await context.reranker.apply(sub.prepared, item)
        except RerankFailed as exc:
            context.metrics.search("failed", exc.reason)
            items[position] = engine_error_body(exc.status, exc.error_type, str(exc))
            statuses[position] = exc.header
            return
        context.metrics.rerank(outcome, sub.prepared.plan.model)
        statuses[position] = outcome.status

    await asyncio.gather(*(rerank_one(i, s) for i, s in enumerate(subs)))
    response["responses"] = items
    if isinstance(response.get("took"), int):
        response["took"] += round((time.perf_counter() - started) * 1000)
    return _respond(request, 200, headers, dumps(response), {STATUS: ", ".join(statuses)})
