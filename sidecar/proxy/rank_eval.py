"""``_rank_eval`` through the sidecar: the reranked order evaluated in the engine's own format.

A ``_rank_eval`` none of whose rated requests would be reranked (no rule for the index, no
``ext.rerank`` in a request or at the top level, or ``X-Rerank: off``) goes to the engine as
sent, and its answer comes back byte for byte. Where the engine has no rank-eval module
(Elasticsearch publishes none after 7.17 for the integ-test distribution; a cluster can leave it
out), the sidecar evaluates the engine's own order itself and says so (``X-Rerank-Eval:
sidecar``); a client can ask for that too (request header ``X-Rerank-Eval: sidecar``).

Otherwise the sidecar evaluates: it checks the body as the engine does (an invalid one gets the
engine's own answer when the engine can give one, else an engine-format 400 naming the key), runs
every rated request as the engine would (its request, or its template rendered, with ``size`` =
the metric's k, ``_source`` limited to its ``summary_fields``, at most
``max_concurrent_searches`` at once, the URL's ``ignore_unavailable``, ``allow_no_indices``,
``expand_wildcards`` and ``search_type``), each through the sidecar's own search path (reranked
when the rules or ``ext.rerank`` say so, the engine's order otherwise), and computes the metric
exactly as the engine does (``sidecar.evaluation``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict

from sidecar.body import BodyTooLarge, UnreadableEncoding, decode
from sidecar.evaluation.java_order import JavaHashMap, hashmap_order
from sidecar.evaluation.metrics import combine, map_capacity
from sidecar.evaluation.models import Hit, MetricError, QueryQuality, json_double
from sidecar.evaluation.spec import (
    RankEvalInputError,
    RankEvalSpec,
    RatedRequest,
    check_evaluated_query,
    parse_spec,
)
from sidecar.evaluation.templates import TemplateError, render
from sidecar.jsonio import dumps, loads
from sidecar.proxy.engine_answer import DROP_REWRITTEN, EngineAnswer, ask_engine, respond
from sidecar.proxy.errors import engine_error, engine_error_body
from sidecar.proxy.headers import end_to_end, end_to_end_raw
from sidecar.proxy.media_types import is_json_body, is_json_response, rewritten_content_type
from sidecar.proxy.msearch import status_header
from sidecar.proxy.passthrough import UPSTREAM, forward, upstream_error
from sidecar.proxy.response import ExactHeadersResponse
from sidecar.proxy.search import SEARCH, STATUS, SearchContext, json_object, read_or_stream
from sidecar.proxy.upstream import UpstreamUnavailable
from sidecar.search.options import RerankInputError
from sidecar.search.plan import decide, index_names, matching_profile, without_ext_rerank
from sidecar.search.rerank import RerankFailed, UnexpectedResponse, Unsupported, prepare

log = logging.getLogger(__name__)

EVALUATED_BY = "X-Rerank-Eval"
NO_ENDPOINT = (
    b"no handler found for uri",
    b"Incorrect HTTP method for uri",
    b"does not support having a body",
)
# Sub-search errors the engine raises while parsing the _rank_eval body itself (a bad query):
# there the whole request is refused, not the one rated request.
PARSE_ERRORS = frozenset(
    {
        "parsing_exception",
        "x_content_parse_exception",
        "named_object_not_found_exception",
        "json_parse_exception",
    }
)
SEARCH_PARAMS = ("ignore_unavailable", "allow_no_indices", "expand_wildcards", "search_type")


def add_rank_eval_routes(app: web.Application) -> None:
    for method in ("GET", "POST"):
        app.router.add_route(method, "/_rank_eval", rank_eval)
        app.router.add_route(method, "/{index}/_rank_eval", rank_eval)


@dataclass
class RawAnswer:
    """The engine's answer as it came: status, headers as received, body undecoded."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def response(self, extra: dict[str, str] | None = None) -> web.Response:
        headers = CIMultiDict(self.headers)
        headers.update(extra or {})
        return ExactHeadersResponse(status=self.status, body=self.body, headers=headers)

    def lacks_rank_eval(self) -> bool:
        """Did the engine say it has no ``_rank_eval`` endpoint (no module)? Without one it
        routes the path elsewhere: ``/_rank_eval`` is then an index name (405, or 400 for a GET
        with a body), ``/{index}/_rank_eval`` no route at all (400)."""
        if self.status not in (400, 405):
            return False
        try:  # the answer may be compressed, as the client accepted
            plain = decode(self.body, self.headers.get("Content-Encoding"), 1 << 20)
        except (UnreadableEncoding, BodyTooLarge):
            return False
        return any(marker in plain for marker in NO_ENDPOINT)


async def _ask_raw(
    request: web.Request, body: bytes, rewritten: bool = False
) -> RawAnswer | web.Response:
    """``body`` to the engine's own ``_rank_eval`` (the client's bytes, or the sidecar's
    ``rewritten`` JSON); its answer as it came."""
    drop = ("Host", EVALUATED_BY, *(DROP_REWRITTEN if rewritten else ()))
    headers = end_to_end(request.headers, drop=drop)
    if rewritten:
        headers["Content-Type"] = rewritten_content_type(request.headers.get("Content-Type"))
    try:
        upstream = await request.app[UPSTREAM].request(
            request.method, request.raw_path, headers, body or None
        )
    except UpstreamUnavailable as exc:
        return upstream_error(exc)
    try:
        data = await upstream.read()
        return RawAnswer(upstream.status, end_to_end_raw(upstream.raw_headers), data)
    except Exception as exc:  # the answer broke off
        return upstream_error(UpstreamUnavailable(f"the cluster failed: {type(exc).__name__}"))
    finally:
        upstream.release()


def wants_rerank(context: SearchContext, index: str | None, body: dict[str, Any]) -> bool:
    """Would any rated request of ``body`` be reranked (before the X-Rerank switch)?"""
    if matching_profile(context.settings, index_names(index)) is not None:
        return True
    ext = body.get("ext")
    if isinstance(ext, dict) and "rerank" in ext:
        return True
    for item in body.get("requests", []) if isinstance(body.get("requests"), list) else []:
        inner = item.get("request") if isinstance(item, dict) else None
        ext = inner.get("ext") if isinstance(inner, dict) else None
        if isinstance(ext, dict) and "rerank" in ext:
            return True
    return False


async def rank_eval(request: web.Request) -> web.StreamResponse:
    context: SearchContext = request.app[SEARCH]
    index = request.match_info.get("index")
    read = await read_or_stream(request, False)
    if isinstance(read, web.StreamResponse):
        return read
    raw, plain = read.raw, read.plain
    body = None
    if (
        not read.oversized
        and plain is not None
        and is_json_body(request.headers.get("Content-Type"))
    ):
        body = json_object(plain)
    if body is None:
        return await forward(request, raw or None)
    switched_off = (request.headers.get("X-Rerank") or "").strip().lower() == "off"
    reranking = wants_rerank(context, index, body) and not switched_off
    # ``X-Rerank-Eval: sidecar`` asks the sidecar to evaluate even the engine's own order (to
    # compare its computation with the engine's, or to choose it): never forwarded.
    by_sidecar = (request.headers.get(EVALUATED_BY) or "").strip().lower() == "sidecar"
    if not reranking and not by_sidecar:
        answer = await _ask_raw(request, raw)
        if isinstance(answer, web.Response) or not answer.lacks_rank_eval():
            return answer if isinstance(answer, web.Response) else answer.response()
    try:
        spec = parse_spec(body)
    except RankEvalInputError as exc:
        return await _refusal(request, raw, body, exc)
    evaluation = Evaluation(request, context, spec, index, switched_off)
    outcomes = await evaluation.outcomes()
    for position, outcome in enumerate(outcomes):
        error = outcome.error or {}
        if outcome.quality is None and error.get("type") in PARSE_ERRORS:
            reason = f"[requests.{position}.request] {error.get('reason', 'failed to parse')}"
            return await _refusal(
                request, raw, body, RankEvalInputError("", reason, "x_content_parse_exception")
            )
    return evaluation.answer(outcomes)


async def _refusal(
    request: web.Request, raw: bytes, body: dict[str, Any], error: RankEvalInputError
) -> web.StreamResponse:
    """The engine's own answer to an invalid body where it can give one (the client's bytes,
    so its error positions are the client's, unless our ``ext`` had to come out); else ours,
    naming the key."""
    if "ext" in body:
        engine_body = {k: v for k, v in body.items() if k != "ext"}
        answer = await _ask_raw(request, dumps(engine_body), rewritten=True)
    else:
        answer = await _ask_raw(request, raw)
    if (
        isinstance(answer, RawAnswer)
        and 400 <= answer.status < 500
        and not answer.lacks_rank_eval()
    ):
        return answer.response()
    return engine_error(400, error.kind, str(error))


@dataclass
class Outcome:
    """What one rated request gave: a quality, or the error the engine (or sidecar) gave."""

    request: RatedRequest
    status: str
    quality: QueryQuality | None = None
    error: dict[str, Any] | None = None
    answer: EngineAnswer | None = None


class Evaluation:
    def __init__(
        self,
        request: web.Request,
        context: SearchContext,
        spec: RankEvalSpec,
        index: str | None,
        switched_off: bool,
    ) -> None:
        self.request = request
        self.context = context
        self.spec = spec
        self.index = index
        self.switch = "off" if switched_off else request.headers.get("X-Rerank")
        self.params = {k: v for k, v in request.query.items() if k in SEARCH_PARAMS}
        # The searches go to the same indices, written as the client wrote them.
        self.path = request.raw_path.split("?", 1)[0].removesuffix("_rank_eval") + "_search"

    async def outcomes(self) -> list[Outcome]:
        """Every rated request run and evaluated, at most max_concurrent_searches at once."""
        gate = asyncio.Semaphore(self.spec.max_concurrent_searches)

        async def one(rated: RatedRequest) -> Outcome:
            async with gate:
                return await self._evaluate(rated)

        return list(await asyncio.gather(*(one(r) for r in self.spec.requests)))

    async def _body(self, rated: RatedRequest) -> dict[str, Any]:
        if rated.request is not None:
            body = dict(rated.request)
        else:
            assert rated.template_id is not None
            body = await self._rendered(self.spec.templates[rated.template_id], rated.params)
            check_evaluated_query(body, "request")
        size = self.spec.metric.forced_search_size
        if size is not None:
            body["size"] = size
        body["_source"] = (
            {"includes": list(rated.summary_fields)} if rated.summary_fields else False
        )
        if self.spec.rerank is not None:
            ext = dict(body.get("ext") or {})
            ext.setdefault("rerank", self.spec.rerank)
            body["ext"] = ext
        return body

    async def _rendered(self, script: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The engine's own rendering where it has mustache, ours otherwise."""
        try:
            answer = await ask_engine(
                self.request,
                dumps({**script, "params": {**(script.get("params") or {}), **params}}),
                "/_render/template",
            )
        except Exception:  # any failure of the engine's rendering: render here
            answer = None
        if isinstance(answer, EngineAnswer) and answer.status == 200:
            try:
                rendered = loads(answer.body).get("template_output")
            except (ValueError, AttributeError):
                rendered = None
            if isinstance(rendered, dict):
                return rendered
        return render(script, params)

    async def _evaluate(self, rated: RatedRequest) -> Outcome:
        try:
            body = await self._body(rated)
        except (RankEvalInputError, TemplateError, MetricError) as exc:
            return Outcome(
                rated, "failed; reason=template", error=_error(400, "parse_exception", str(exc))
            )
        try:
            decision = decide(self.context.settings, self.index, body, self.params, self.switch)
        except RerankInputError as exc:
            return Outcome(
                rated,
                "failed; reason=ext_rerank",
                error=_error(400, "illegal_argument_exception", str(exc)),
            )
        plan = decision.plan
        target = decision.body if decision.body is not None else body
        if plan is None:
            return await self._search(
                rated,
                without_ext_rerank(target) if "ext" in target else target,
                decision.status or "skipped; reason=no_rule",
            )
        try:
            prepared = prepare(plan, target, list(self.params.items()))
        except Unsupported as exc:
            return await self._search(rated, target, f"skipped; reason={exc.reason}")
        answer = await ask_engine(
            self.request, dumps(prepared.body), _with(self.path, prepared.params)
        )
        if not isinstance(answer, EngineAnswer):
            return Outcome(rated, "failed; reason=upstream", error=_body_error(answer))
        if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
            return Outcome(
                rated, "failed; reason=engine_status", error=_engine_error(answer), answer=answer
            )
        try:
            response = loads(answer.body)
            outcome = await self.context.reranker.apply(prepared, response)
        except RerankFailed as exc:
            self.context.metrics.search("failed", exc.reason)
            return Outcome(
                rated, exc.header, error=_error(exc.status, exc.error_type, str(exc)), answer=answer
            )
        except (UnexpectedResponse, ValueError):
            return Outcome(
                rated,
                "failed; reason=engine_response",
                error=_error(
                    502,
                    "rerank_sidecar_engine_response",
                    "the engine's answer is not a search response",
                ),
                answer=answer,
            )
        self.context.metrics.rerank(outcome, plan.model)
        return self._quality(rated, response, outcome.status, answer)

    async def _search(self, rated: RatedRequest, body: dict[str, Any], status: str) -> Outcome:
        answer = await ask_engine(
            self.request, dumps(body), _with(self.path, list(self.params.items()))
        )
        if not isinstance(answer, EngineAnswer):
            return Outcome(rated, "failed; reason=upstream", error=_body_error(answer))
        if answer.status != 200:
            return Outcome(rated, status, error=_engine_error(answer), answer=answer)
        try:
            return self._quality(rated, loads(answer.body), status, answer)
        except (ValueError, KeyError, TypeError):
            return Outcome(
                rated,
                status,
                error=_error(
                    502,
                    "rerank_sidecar_engine_response",
                    "the engine's answer is not a search response",
                ),
                answer=answer,
            )

    def _quality(
        self, rated: RatedRequest, response: Any, status: str, answer: EngineAnswer
    ) -> Outcome:
        hits = [Hit.from_json(hit) for hit in response["hits"]["hits"]]
        quality = self.spec.metric.evaluate(rated.id, hits, rated.ratings)
        return Outcome(rated, status, quality=quality, answer=answer)

    def answer(self, outcomes: list[Outcome]) -> web.Response:
        """The engine's response: the qualities and failures keyed by request id in the
        engine's HashMaps (a later request with an id replaces an earlier one; an id that both
        succeeded and failed is in both), the mean summed in the map's order."""
        searched = [o for o in outcomes if o.answer is not None or o.quality is not None]
        succeeded = [o for o in outcomes if o.quality is not None]
        by_id = {o.request.id: o.quality for o in succeeded if o.quality is not None}
        template = next((o.answer for o in outcomes if o.answer is not None), None)
        elasticsearch = template is not None and (
            template.headers.get("X-Elastic-Product") == "Elasticsearch"
        )
        capacity = map_capacity(len(searched), "elasticsearch" if elasticsearch else "opensearch")
        order = hashmap_order([o.request.id for o in succeeded], capacity)
        metric_score = combine(self.spec.metric, [by_id[i] for i in order])
        details = {i: by_id[i].to_json() for i in JavaHashMap.copy_of(order).order()}
        failures = {
            o.request.id: {"error": o.error}
            for o in outcomes
            if o.quality is None and o.error is not None
        }
        body = {"metric_score": json_double(metric_score), "details": details, "failures": failures}
        extra = {STATUS: status_header([o.status for o in outcomes]), EVALUATED_BY: "sidecar"}
        if template is None:
            headers = {"Content-Type": "application/json; charset=UTF-8", **extra}
            return ExactHeadersResponse(status=200, body=dumps(body), headers=headers)
        return respond(template, dumps(body), extra, status=200)


def _with(path: str, params: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _error(status: int, kind: str, reason: str) -> dict[str, Any]:
    error: dict[str, Any] = engine_error_body(status, kind, reason)["error"]
    return error


def _engine_error(answer: EngineAnswer) -> dict[str, Any]:
    try:
        parsed = loads(answer.body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error: dict[str, Any] = parsed["error"]
        return error
    return _error(
        answer.status, "rerank_sidecar_engine_error", f"the engine answered HTTP {answer.status}"
    )


def _body_error(response: web.Response) -> dict[str, Any]:
    """The engine-format error the sidecar answered with (the cluster did not answer)."""
    raw = response.body if isinstance(response.body, bytes) else b"{}"
    try:
        parsed = loads(raw)
    except ValueError:
        parsed = {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return (
        error
        if isinstance(error, dict)
        else _error(502, "rerank_sidecar_upstream_unavailable", "no node of the cluster answered")
    )
