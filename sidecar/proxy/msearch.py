"""The intercepted ``_msearch`` endpoints: one widened ``_msearch`` goes to the engine and its
sub-responses are reranked concurrently, each on its own.

Each sub-search is decided as a ``_search`` would be; one the sidecar cannot read or plan goes
to the engine as sent, and the engine's answer to it comes back untouched. An engine answer the
sidecar cannot read as an ``_msearch`` response goes to the client as it came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sidecar.jsonio import dumps, loads
from sidecar.proxy.engine_answer import EngineAnswer, ask_engine, respond
from sidecar.proxy.errors import engine_error_body
from sidecar.proxy.media_types import is_json_body, is_json_response
from sidecar.proxy.passthrough import forward
from sidecar.proxy.search import (
    SEARCH,
    STATUS,
    SearchContext,
    filtered,
    json_object,
    path_with,
    read_or_stream,
)
from sidecar.search.options import RerankInputError
from sidecar.search.plan import UNTOUCHED, Decision, decide, filter_shows_hits, skipped
from sidecar.search.rerank import PreparedSearch, RerankFailed, Unsupported, prepare
from sidecar.settings import Settings

log = logging.getLogger(__name__)


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


MAX_STATUS_HEADER = 4096


def status_header(statuses: list[str]) -> str:
    """X-Rerank-Status of an _msearch: one status per sub-search, in order. Past 4 KiB (an
    _msearch of hundreds; clients refuse header lines over 8 KiB) one entry per distinct status
    instead, in order of first appearance, with its count:
    ``applied; count=298, degraded; reason=timeout; count=2``."""
    joined = ", ".join(statuses)
    if len(joined) <= MAX_STATUS_HEADER:
        return joined
    return ", ".join(f"{status}; count={n}" for status, n in Counter(statuses).items())


def split_ndjson(raw: bytes) -> list[tuple[bytes, bytes]] | None:
    """Header and body lines in pairs; None when they do not pair up."""
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
    head = json_object(header)
    parsed = json_object(body)
    if head is None or parsed is None:
        return sub  # the engine will say what is wrong with it
    try:
        sub.decision = decide(settings, head.get("index", path_index), parsed, {}, switch)
    except RerankInputError as exc:
        sub.error = engine_error_body(400, "illegal_argument_exception", str(exc))
        return sub
    except Exception:
        log.exception("deciding on an _msearch sub-search failed; the engine answers it alone")
        sub.decision = Decision(None, "internal_error")
        return sub
    plan = sub.decision.plan
    try:
        if plan is not None:
            try:
                sub.prepared = prepare(plan, sub.decision.body or parsed, [])
                sub.body = dumps(sub.prepared.body)
            except Unsupported as exc:
                sub.prepared = None
                sub.decision = Decision(sub.decision.body, exc.reason)
        if sub.prepared is None and sub.decision.body is not None:
            sub.body = dumps(sub.decision.body)
    except ValueError:  # nested too deeply to write back: the engine gets it as sent
        sub.prepared, sub.body = None, body
        sub.decision = Decision(None, "body_too_deep")
    return sub


def _responses(response: Any, expected: int) -> list[Any] | None:
    """The sub-responses of the engine's answer, or None when it is not what was asked for."""
    if not isinstance(response, dict):
        return None
    items = response.get("responses")
    if not isinstance(items, list) or len(items) != expected:
        return None
    return items


async def msearch(request: web.Request) -> web.StreamResponse:
    context: SearchContext = request.app[SEARCH]
    settings = context.settings
    rules = bool(settings.rerank.rules)
    read = await read_or_stream(request, rules)
    if isinstance(read, web.StreamResponse):
        return read
    raw, plain = read.raw, read.plain
    if read.oversized or plain is None or (b"rerank" not in plain and not rules):
        return await forward(request, raw or None)
    pairs = split_ndjson(plain)
    if pairs is None or not is_json_body(request.headers.get("Content-Type")):
        return await forward(request, raw or None)
    filters = request.query.getall("filter_path", [])
    if filters and not filter_shows_hits(request.query, ("responses",)):
        return await forward(request, raw or None, extra_headers={STATUS: skipped("filter_path")})
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
    # The engine answers without the client's filter_path; the reranked answer is filtered.
    path_qs = request.raw_path
    if filters:
        path_qs = path_with(
            request, [(k, v) for k, v in request.query.items() if k != "filter_path"]
        )
    answer = await ask_engine(
        request, b"".join(s.header + b"\n" + s.body + b"\n" for s in sent), path_qs
    )
    if not isinstance(answer, EngineAnswer):
        return answer
    statuses = [s.status() for s in subs]
    if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
        return respond(answer, answer.body, {STATUS: skipped("engine_status")})
    try:
        response = loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        response = None
    engine_items = _responses(response, len(sent))
    if engine_items is None:
        return respond(answer, answer.body, {STATUS: skipped("engine_response")})
    assert isinstance(response, dict)
    items = iter(engine_items)
    merged: list[Any] = [s.error if s.error is not None else next(items) for s in subs]
    started = time.perf_counter()

    async def rerank_one(position: int, sub: _Sub) -> None:
        item = merged[position]
        if sub.prepared is None or not isinstance(item, dict) or "error" in item:
            return
        try:
            outcome = await context.reranker.apply(sub.prepared, item)
        except RerankFailed as exc:
            context.metrics.search("failed", exc.reason)
            merged[position] = engine_error_body(exc.status, exc.error_type, str(exc))
            statuses[position] = exc.header
            return
        except Exception:
            # The engine's item may be half rewritten: the client gets an error item for this
            # sub-search alone, never a wrong page.
            log.exception("reranking an _msearch sub-search failed")
            merged[position] = engine_error_body(
                500, "rerank_sidecar_internal_error", "the sidecar failed on this sub-search"
            )
            statuses[position] = "failed; reason=internal_error"
            return
        context.metrics.rerank(outcome, sub.prepared.plan.model)
        statuses[position] = outcome.status

    await asyncio.gather(*(rerank_one(i, s) for i, s in enumerate(subs)))
    response["responses"] = merged
    if isinstance(response.get("took"), int):
        response["took"] += round((time.perf_counter() - started) * 1000)
    try:
        body = dumps(filtered(response, filters, answer) if filters else response)
    except ValueError:
        return respond(answer, answer.body, {STATUS: skipped("engine_response")})
    return respond(answer, body, {STATUS: status_header(statuses)})
