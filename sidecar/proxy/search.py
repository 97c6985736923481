"""The intercepted ``_search`` endpoints (GET and POST, with or without an index).

A search no rule matches and without ``ext.rerank`` goes on byte for byte, like any other request.
Otherwise the body is parsed and ``sidecar.search.plan.decide`` says what happens: forwarded
without our ``ext.rerank`` (with the reason in X-Rerank-Status), or reranked: the widened request
goes to the engine, the window is scored, and the engine's response comes back reordered.

Nothing the client sends can make the sidecar answer a bare 500: a bad ``ext.rerank`` is a 400
naming the key; a body or parameter the sidecar does not rewrite (odd paging, odd ``_source``,
JSON it cannot parse or write back) goes to the engine for the engine to answer; an engine answer
it cannot read goes to the client as the engine's answer to the client's own request; a failure
of the sidecar itself is logged and the search is answered by the engine alone
(``skipped; reason=internal_error``). ``_msearch`` lives in ``sidecar.proxy.msearch``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from sidecar.body import BodyReadTimeout, SearchBody, StreamedBody, read_search_body
from sidecar.jsonio import dumps, loads
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.engine_answer import DROP_REWRITTEN, EngineAnswer, ask_engine, respond
from sidecar.proxy.errors import engine_error
from sidecar.proxy.media_types import is_json_body, is_json_response
from sidecar.proxy.passthrough import forward
from sidecar.search.filter_path import Flavor, apply_filter_path, parse_filter_path
from sidecar.search.options import RerankInputError
from sidecar.search.plan import (
    Decision,
    decide,
    index_names,
    matching_profile,
    skipped,
    without_ext_rerank,
)
from sidecar.search.rerank import (
    Outcome,
    PreparedSearch,
    RerankFailed,
    SearchReranker,
    UnexpectedResponse,
    Unsupported,
    prepare,
)
from sidecar.settings import Settings
from sidecar.tracing import annotate

if TYPE_CHECKING:
    from sidecar.experiments.model import Experiment

log = logging.getLogger(__name__)

STATUS = "X-Rerank-Status"


@dataclass(frozen=True)
class SearchContext:
    settings: Settings
    reranker: SearchReranker
    metrics: SidecarMetrics


SEARCH = web.AppKey("search_context", SearchContext)


def add_search_routes(app: web.Application, context: SearchContext) -> None:
    from sidecar.proxy.msearch import msearch
    from sidecar.proxy.rank_eval import add_rank_eval_routes

    app[SEARCH] = context
    add_rank_eval_routes(app)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/_search", search)
        app.router.add_route(method, "/{index}/_search", search)
        app.router.add_route(method, "/_msearch", msearch)
        app.router.add_route(method, "/{index}/_msearch", msearch)


async def read_or_stream(
    request: web.Request, rule_matches: bool
) -> SearchBody | web.StreamResponse:
    """The body to inspect; a body too large to inspect (``server.max_inspect_bytes``) is
    streamed on to the cluster at once, untouched: the engine judges its size, never the
    sidecar."""
    server = request.app[SEARCH].settings.server
    try:
        read = await read_search_body(request, server.max_inspect_bytes, server.body_idle_timeout_s)
    except BodyReadTimeout as exc:
        return engine_error(408, "rerank_sidecar_request_timeout", str(exc))
    if isinstance(read, StreamedBody):
        return await forward(request, read.chunks, extra_headers=_too_large_header(rule_matches))
    return read


def _too_large_header(rule_matches: bool) -> dict[str, str] | None:
    return {STATUS: skipped("body_too_large")} if rule_matches else None


def json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object, or None (not JSON, not an object, or nested too deep)."""
    try:
        value = loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


async def search(request: web.Request) -> web.StreamResponse:
    context = request.app[SEARCH]
    settings = context.settings
    index = request.match_info.get("index")
    rule_matches = matching_profile(settings, index_names(index)) is not None
    experiment = _experiment(request, index)
    read = await read_or_stream(request, rule_matches)
    if not isinstance(read, SearchBody):
        return read
    raw, plain = read.raw, read.plain
    if read.oversized:
        return await forward(request, raw or None, extra_headers=_too_large_header(rule_matches))
    if plain is None or (b"rerank" not in plain and not rule_matches and experiment is None):
        return await forward(request, raw or None)
    body = json_object(plain) if is_json_body(request.headers.get("Content-Type")) else None
    if body is None:
        # Not ours to judge: the engine answers malformed or non-JSON bodies as it always does.
        return await forward(request, raw or None)
    if experiment is not None:
        from sidecar.experiments.search_path import experiment_search

        try:
            answered = await experiment_search(request, raw, body, experiment)
        except Exception:
            log.exception("a search under experiment %s failed; it takes the normal path",
                          experiment.name)  # fmt: skip
            answered = None
        if answered is not None:
            return answered
    try:
        decision = decide(settings, index, body, request.query, request.headers.get("X-Rerank"))
    except RerankInputError as exc:
        context.metrics.search("invalid", "ext_rerank")
        return engine_error(400, "illegal_argument_exception", str(exc))
    except Exception:
        log.exception("deciding on a search failed; the engine answers it alone")
        return await forward_decision(request, raw, internal_error(body))
    if decision.plan is None:
        return await forward_decision(request, raw, decision)
    try:
        prepared = prepare(decision.plan, decision.body or body, list(request.query.items()))
        widened = dumps(prepared.body)
    except Unsupported as exc:
        return await forward_decision(request, raw, Decision(decision.body, exc.reason))
    except ValueError:  # nested too deeply to write back
        return await forward_decision(request, raw, Decision(decision.body, "body_too_deep"))
    return await _reranked_search(request, prepared, widened, raw, decision)


def _experiment(request: web.Request, index: str | None) -> Experiment | None:
    """The experiment this search takes part in, if any (never with ``X-Rerank: off``)."""
    from sidecar.experiments.search_path import EXPERIMENTS, now

    experiments = request.app.get(EXPERIMENTS)
    if experiments is None or (request.headers.get("X-Rerank") or "").strip().lower() == "off":
        return None
    return experiments.registry.match(index_names(index), now())


def internal_error(body: dict[str, Any]) -> Decision:
    """The decision for a search the sidecar failed on: the client's own body without our
    ``ext.rerank``, for the engine alone."""
    ext = body.get("ext")
    stripped = without_ext_rerank(body) if isinstance(ext, dict) and "rerank" in ext else None
    return Decision(stripped, "internal_error")


async def forward_decision(
    request: web.Request, raw: bytes, decision: Decision
) -> web.StreamResponse:
    """The search goes to the engine without reranking: as sent, or without our ext.rerank."""
    status = decision.status
    if decision.skip_reason is not None:
        request.app[SEARCH].metrics.search("skipped", decision.skip_reason)
    extra = {STATUS: status} if status else None
    if status:
        annotate({"rerank.status": status})
    if decision.body is None:
        return await forward(request, raw or None, extra_headers=extra)
    try:
        body = dumps(decision.body)
    except ValueError:
        return await forward(request, raw or None, extra_headers=extra)
    return await forward(request, body, drop=DROP_REWRITTEN, extra_headers=extra, rewritten=True)


def path_with(request: web.Request, params: list[tuple[str, str]]) -> str:
    path = request.raw_path.split("?", 1)[0]
    return f"{path}?{urlencode(params)}" if params else path


async def _reranked_search(
    request: web.Request, prepared: PreparedSearch, widened: bytes, raw: bytes, decision: Decision
) -> web.StreamResponse:
    context = request.app[SEARCH]
    answer = await ask_engine(request, widened, path_with(request, prepared.params))
    if not isinstance(answer, EngineAnswer):
        return answer
    if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
        # The engine refused the widened request: ask again with the client's own, so the
        # client gets the answer (and error positions) it would get without the sidecar.
        return await forward_decision(request, raw, Decision(decision.body, "engine_status"))
    try:
        response = loads(answer.body)
        outcome = await context.reranker.apply(prepared, response)
        query_id = _log_reranked(request, decision, prepared, outcome, response)
        if prepared.filter_path:
            response = filtered(response, prepared.filter_path, answer)
        page = dumps(response)
    except RerankFailed as exc:
        context.metrics.search("failed", exc.reason)
        return engine_error(exc.status, exc.error_type, str(exc), headers={STATUS: exc.header})
    except (UnexpectedResponse, ValueError, UnicodeDecodeError):
        return await forward_decision(request, raw, Decision(decision.body, "engine_response"))
    except Exception:
        log.exception("reranking a search failed; the engine answers it alone")
        return await forward_decision(request, raw, Decision(decision.body, "internal_error"))
    context.metrics.rerank(outcome, prepared.plan.model)
    annotate(
        {
            "rerank.status": outcome.status,
            "rerank.model": prepared.plan.model,
            "rerank.window": prepared.plan.window,
        }
    )
    headers = headers_of(outcome, prepared)
    if query_id is not None:
        headers["X-Rerank-Query-Id"] = query_id
    return respond(answer, page, headers)


def _log_reranked(
    request: web.Request,
    decision: Decision,
    prepared: PreparedSearch,
    outcome: Outcome,
    response: Any,
) -> str | None:
    """The UBI query id of this reranked search when ``ubi.log_reranked`` logs it; logging
    never fails the search."""
    settings = request.app[SEARCH].settings
    if not settings.ubi.log_reranked or not isinstance(response, dict):
        return None
    from sidecar.experiments.search_path import log_reranked_search

    try:
        return log_reranked_search(
            request,
            settings,
            decision.body or {},
            prepared.plan.query.text,
            prepared.plan.model,
            outcome.status,
            response,
        )
    except Exception:
        log.exception("logging a reranked search to UBI failed; the search is answered")
        return None


def filtered(response: Any, values: list[str], answer: EngineAnswer) -> Any:
    """``response`` through the client's ``filter_path``, read as the engine behind reads it."""
    is_elasticsearch = answer.headers.get("X-Elastic-Product") == "Elasticsearch"
    flavor: Flavor = "elasticsearch" if is_elasticsearch else "opensearch"
    return apply_filter_path(response, parse_filter_path(values, flavor=flavor))


def headers_of(outcome: Outcome, prepared: PreparedSearch) -> dict[str, str]:
    return {
        STATUS: outcome.status,
        "X-Rerank-Model": prepared.plan.model,
        "X-Rerank-Took-Ms": f"{outcome.took_ms:.1f}",
    }
