"""Searches under an experiment: assign the user a variant (or interleave two), answer with that
variant's order, and log the search in ``ubi_queries``.

A search takes part when an active experiment applies to its index, the client did not send
``X-Rerank: off``, and the experiment's variants could rerank it (it has query text, no sort
other than ``_score``, no scroll...: ``decide``'s rules for the first variant that reranks).
Otherwise it takes the normal path and is not logged, in every arm alike, so the arms see the
same kind of searches.

- A/B: the assigned variant's ``ext.rerank`` (a profile, a model with options, or
  ``enabled: false``) is laid over the client's, then the search runs as any other.
- Interleaving: the engine is asked once for the widest window either variant needs; each
  variant orders that window (``off``: the engine's order); the team-draft interleaving of the
  two orders, seeded by the query text, the user's key and the salt, is the answer (page 2 is
  the same interleaving's next page); each shown hit carries its team in
  ``fields._rerank_team``.

The answer carries ``X-Rerank-Experiment`` (name and revision), ``X-Rerank-Variant`` and
``X-Rerank-Query-Id``; when the client sent ``ext.ubi`` (as for OpenSearch's UBI plugin, which
the sidecar stands in for here: ``ext.ubi`` never reaches the engine) the query id is also in
the answer's ``ext.ubi.query_id``. Logging never fails or delays the search (``UbiWriter``).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.experiments.assignment import Assignment, assign, read_key
from sidecar.experiments.interleaving import interleaving_seed, team_draft
from sidecar.experiments.model import Experiment
from sidecar.experiments.records import INTERLEAVE
from sidecar.experiments.registry import ExperimentRegistry
from sidecar.experiments.ubi_writer import UbiWriter
from sidecar.jsonio import dumps, loads
from sidecar.proxy.engine_answer import EngineAnswer, ask_engine, respond
from sidecar.proxy.errors import engine_error
from sidecar.proxy.media_types import is_json_response
from sidecar.search.options import Fields, RerankInputError
from sidecar.search.plan import Decision, RerankPlan, decide, index_names
from sidecar.search.query_text import query_text
from sidecar.search.rerank import (
    Outcome,
    RerankFailed,
    UnexpectedResponse,
    Unsupported,
    prepare,
    search_hits,
)
from sidecar.search.source import restore_view
from sidecar.settings import Settings

log = logging.getLogger(__name__)

TEAM_FIELD = "_rerank_team"
EXPERIMENT_HEADER = "X-Rerank-Experiment"
VARIANT_HEADER = "X-Rerank-Variant"
QUERY_ID_HEADER = "X-Rerank-Query-Id"
STATUS = "X-Rerank-Status"


@dataclass
class Experiments:
    registry: ExperimentRegistry
    writer: UbiWriter | None
    redis: Any = None  # the client both use, closed with the app


EXPERIMENTS = web.AppKey("experiments", Experiments)


def now() -> datetime:
    return datetime.now(UTC)


def _ubi_ext(body: dict[str, Any]) -> dict[str, Any] | None:
    ext = body.get("ext")
    ubi = ext.get("ubi") if isinstance(ext, dict) else None
    return ubi if isinstance(ubi, dict) else None


def _without_ubi(body: dict[str, Any]) -> dict[str, Any]:
    ext = body.get("ext")
    if not isinstance(ext, dict) or "ubi" not in ext:
        return body
    rest = {k: v for k, v in ext.items() if k != "ubi"}
    out = {k: v for k, v in body.items() if k != "ext"}
    if rest:
        out["ext"] = rest
    return out


def with_variant(body: dict[str, Any], experiment: Experiment, name: str) -> dict[str, Any]:
    """``body`` with the variant's rerank settings over the client's ``ext.rerank``."""
    raw_ext = body.get("ext")
    ext: dict[str, Any] = dict(raw_ext) if isinstance(raw_ext, dict) else {}
    raw_rerank = ext.get("rerank")
    client: dict[str, Any] = raw_rerank if isinstance(raw_rerank, dict) else {}
    chosen = {k: v for k, v in client.items() if k not in ("profile", "model", "enabled")}
    ext["rerank"] = {**chosen, **experiment.variant(name).ext_rerank()}
    return {**body, "ext": ext}


@dataclass(frozen=True)
class Arm:
    name: str
    decision: Decision


def _decide_arm(
    settings: Settings,
    index: str | None,
    body: dict[str, Any],
    params: Any,
    experiment: Experiment,
    name: str,
) -> Arm:
    return Arm(name, decide(settings, index, with_variant(body, experiment, name), params, None))


def eligible(arms: list[Arm]) -> bool:
    """Could the experiment rerank this search? (Judged on the arms that rerank.)"""
    reranking = [a for a in arms if a.decision.skip_reason != "disabled"]
    return bool(reranking) and all(a.decision.plan is not None for a in reranking)


def _ubi_document(
    *,
    query_id: str,
    assignment: Assignment,
    variant: str,
    hit_ids: list[str],
    teams: list[str] | None,
    body: dict[str, Any],
    ubi: dict[str, Any] | None,
    index: str | None,
    settings: Settings,
    user_query: str | None,
) -> dict[str, Any]:
    experiment = assignment.experiment
    attributes: dict[str, Any] = {
        "experiment": experiment.name,
        "revision": experiment.revision,
        "variant": variant,
        "assignment": assignment.how,
    }
    if teams is not None:
        attributes["teams"] = teams
    if index:
        attributes["index"] = index
    extra = (ubi or {}).get("query_attributes")
    if isinstance(extra, dict):
        attributes = {**{k: v for k, v in extra.items() if isinstance(k, str)}, **attributes}
    return _query_document(
        query_id=query_id,
        hit_ids=hit_ids,
        attributes=attributes,
        user_query=(ubi or {}).get("user_query") or user_query or "",
        application=experiment.application or settings.ubi.application,
        index=index,
        client_id=assignment.key or (ubi or {}).get("client_id"),
        query=body.get("query"),
    )


def _query_document(
    *,
    query_id: str,
    hit_ids: list[str],
    attributes: dict[str, Any],
    user_query: str,
    application: str,
    index: str | None,
    client_id: Any,
    query: Any,
) -> dict[str, Any]:
    """A ``ubi_queries`` document, as the UBI plugin's mapping holds it."""
    doc: dict[str, Any] = {
        "query_id": query_id,
        "query_response_id": str(uuid.uuid4()),
        "query_response_hit_ids": hit_ids,
        "query_attributes": attributes,
        "user_query": user_query,
        "application": application,
        "timestamp": now().isoformat(),
        "indexes": index_names(index),
    }
    if isinstance(client_id, str) and client_id:
        doc["client_id"] = client_id
    if query is not None:
        with contextlib.suppress(ValueError):  # too deep to write: left out
            doc["query"] = dumps(query).decode()
    return doc


def _query_id(ubi: dict[str, Any] | None) -> str:
    given = (ubi or {}).get("query_id")
    if isinstance(given, str) and 0 < len(given) <= 100:
        return given
    return str(uuid.uuid4())


async def experiment_search(
    request: web.Request,
    raw: bytes,
    body: dict[str, Any],
    experiment: Experiment,
) -> web.StreamResponse | None:
    """Answer the search under ``experiment``; None when it does not take part (the caller
    takes the normal path)."""
    from sidecar.proxy.search import SEARCH

    context = request.app[SEARCH]
    settings = context.settings
    index = request.match_info.get("index")
    ubi = _ubi_ext(body)
    client_body = _without_ubi(body)
    names = experiment.interleave or [v.name for v in experiment.variants]
    try:
        arms = [
            _decide_arm(settings, index, client_body, request.query, experiment, name)
            for name in names
        ]
    except RerankInputError as exc:
        context.metrics.search("invalid", "ext_rerank")
        return engine_error(400, "illegal_argument_exception", str(exc))
    if not eligible(arms):
        return None
    key = read_key(experiment.key, request.headers, request.cookies, body)
    assignment = assign(experiment, key)
    query_id = _query_id(ubi)
    try:
        if assignment.variant == INTERLEAVE:
            answered = await _interleaved(request, raw, arms, assignment, client_body)
        else:
            arm = next(a for a in arms if a.name == assignment.variant)
            answered = await _one_variant(request, raw, arm)
    except RerankFailed as exc:
        context.metrics.search("failed", exc.reason)
        return engine_error(exc.status, exc.error_type, str(exc), headers={STATUS: exc.header})
    if isinstance(answered, web.StreamResponse):
        return answered
    answer, response, status, teams = answered
    context.metrics.experiment_searches.labels(
        experiment.name, assignment.variant, assignment.how
    ).inc()
    hits = (response.get("hits") or {}).get("hits") or []
    hit_ids = [str(h.get("_id")) for h in hits if isinstance(h, dict)]
    writer = request.app[EXPERIMENTS].writer
    if writer is not None:
        plan = next((a.decision.plan for a in arms if a.decision.plan is not None), None)
        text = plan.query.text if plan is not None else query_text(client_body, None)
        writer.write(
            settings.ubi.queries_index,
            _ubi_document(
                query_id=query_id, assignment=assignment, variant=assignment.variant,
                hit_ids=hit_ids, teams=teams, body=client_body, ubi=ubi, index=index,
                settings=settings, user_query=text,
            ),
        )  # fmt: skip
    if ubi is not None:
        ext = response.setdefault("ext", {})
        if isinstance(ext, dict):
            ext["ubi"] = {"query_id": query_id}
    filter_path = [v for k, v in request.query.items() if k == "filter_path"]
    from sidecar.proxy.search import filtered

    if filter_path:
        response = filtered(response, filter_path, answer)
    variant = (
        f"{INTERLEAVE}:{','.join(experiment.interleave or [])}"
        if assignment.variant == INTERLEAVE
        else assignment.variant
    )
    headers = {
        STATUS: status,
        EXPERIMENT_HEADER: f"{experiment.name}; revision={experiment.revision}; "
        f"assignment={assignment.how}",
        VARIANT_HEADER: variant,
        QUERY_ID_HEADER: query_id,
    }
    return respond(answer, dumps(response), headers)


def log_reranked_search(
    request: web.Request,
    settings: Settings,
    body: dict[str, Any],
    text: str | None,
    model: str,
    status: str,
    response: dict[str, Any],
) -> str | None:
    """With ``ubi.log_reranked``, write a reranked search outside experiments to
    ``ubi_queries`` (the shown order, the model and the rerank status as attributes); its query
    id, or None when such searches are not logged."""
    experiments = request.app.get(EXPERIMENTS)
    if experiments is None or experiments.writer is None or not settings.ubi.log_reranked:
        return None
    ubi = _ubi_ext(body)
    query_id = _query_id(ubi)
    index = request.match_info.get("index")
    hits = (response.get("hits") or {}).get("hits") or []
    doc = _query_document(
        query_id=query_id,
        hit_ids=[str(h.get("_id")) for h in hits if isinstance(h, dict)],
        attributes={"model": model, "rerank": status.split(";")[0], "index": index or ""},
        user_query=(ubi or {}).get("user_query") or text or "",
        application=settings.ubi.application,
        index=index,
        client_id=(ubi or {}).get("client_id"),
        query=body.get("query"),
    )
    experiments.writer.write(settings.ubi.queries_index, doc)
    return query_id


Answered = tuple[EngineAnswer, dict[str, Any], str, list[str] | None]


async def _ask(
    request: web.Request, body: dict[str, Any], params: list[tuple[str, str]]
) -> EngineAnswer | web.StreamResponse:
    from sidecar.proxy.search import path_with

    answer = await ask_engine(request, dumps(body), path_with(request, params))
    return answer


async def _one_variant(request: web.Request, raw: bytes, arm: Arm) -> Answered | web.StreamResponse:
    from sidecar.proxy.search import SEARCH, forward_decision

    context = request.app[SEARCH]
    decision = arm.decision
    params = list(request.query.items())
    if decision.plan is None:  # the variant is off: the engine's own order
        sent = decision.body if decision.body is not None else {}
        kept = [(k, v) for k, v in params if k != "filter_path"]
        answer = await _ask(request, sent, kept)
        if not isinstance(answer, EngineAnswer):
            return answer
        if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
            return await forward_decision(request, raw, Decision(decision.body, "engine_status"))
        try:
            response = loads(answer.body)
            search_hits(response)
        except (UnexpectedResponse, ValueError, UnicodeDecodeError):
            return await forward_decision(request, raw, Decision(decision.body, "engine_response"))
        context.metrics.search("skipped", "variant_off")
        return answer, response, "skipped; reason=variant_off", None
    try:
        prepared = prepare(decision.plan, decision.body or {}, params)
    except Unsupported as exc:
        return await forward_decision(request, raw, Decision(decision.body, exc.reason))
    answer = await _ask(request, prepared.body, prepared.params)
    if not isinstance(answer, EngineAnswer):
        return answer
    if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
        return await forward_decision(request, raw, Decision(decision.body, "engine_status"))
    try:
        response = loads(answer.body)
        outcome = await context.reranker.apply(prepared, response)
    except (UnexpectedResponse, ValueError, UnicodeDecodeError):
        return await forward_decision(request, raw, Decision(decision.body, "engine_response"))
    context.metrics.rerank(outcome, prepared.plan.model)
    return answer, response, outcome.status, None


def _union_plan(plans: list[RerankPlan]) -> RerankPlan:
    """A plan whose window and fields cover every plan's, to ask the engine once."""
    fields = Fields(
        text=list(dict.fromkeys(f for p in plans for f in p.fields.text)),
        image=list(dict.fromkeys(f for p in plans for f in p.fields.image)),
        video=list(dict.fromkeys(f for p in plans for f in p.fields.video)),
    )
    return replace(plans[0], window=max(p.window for p in plans), fields=fields)


async def _interleaved(
    request: web.Request,
    raw: bytes,
    arms: list[Arm],
    assignment: Assignment,
    client_body: dict[str, Any],
) -> Answered | web.StreamResponse:
    from sidecar.proxy.search import SEARCH, forward_decision

    context = request.app[SEARCH]
    plans = [a.decision.plan for a in arms if a.decision.plan is not None]
    reranking = next(a for a in arms if a.decision.plan is not None)
    widest = _union_plan(plans)
    params = list(request.query.items())
    try:
        prepared = prepare(widest, reranking.decision.body or {}, params)
    except Unsupported as exc:
        return await forward_decision(request, raw, Decision(reranking.decision.body, exc.reason))
    answer = await _ask(request, prepared.body, prepared.params)
    if not isinstance(answer, EngineAnswer):
        return answer
    if answer.status != 200 or not is_json_response(answer.headers.get("Content-Type")):
        return await forward_decision(
            request, raw, Decision(reranking.decision.body, "engine_status")
        )
    try:
        response = loads(answer.body)
        hits_node, hits = search_hits(response)
    except (UnexpectedResponse, ValueError, UnicodeDecodeError):
        return await forward_decision(
            request, raw, Decision(reranking.decision.body, "engine_response")
        )
    orders: list[list[dict[str, Any]]] = []
    outcomes: list[Outcome] = []
    for arm in arms:
        if arm.decision.plan is None:
            orders.append([dict(h) for h in hits])
            continue
        ordered, outcome = await context.reranker.order(arm.decision.plan, hits)
        context.metrics.rerank(outcome, arm.decision.plan.model)
        orders.append(ordered)
        outcomes.append(outcome)
    keyed = [{(str(h.get("_index")), str(h.get("_id"))): h for h in order} for order in orders]
    text = widest.query.text or ""
    placed = team_draft(
        [(str(h.get("_index")), str(h.get("_id"))) for h in orders[0]],
        [(str(h.get("_index")), str(h.get("_id"))) for h in orders[1]],
        teams=(arms[0].name, arms[1].name),
        seed=interleaving_seed(text, assignment.key, assignment.experiment.seed_salt),
    )
    page = prepared.page
    shown = placed[page.start : page.start + page.size]
    out: list[dict[str, Any]] = []
    teams: list[str] = []
    for item in shown:
        side = 0 if item.team == arms[0].name else 1
        hit = keyed[side][item.key]
        restore_view(hit, prepared.view)
        hit.setdefault("fields", {})[TEAM_FIELD] = [item.team]
        out.append(hit)
        teams.append(item.team)
    if hits_node is not None:
        hits_node["hits"] = out
        scores = [h["_score"] for h in out if isinstance(h.get("_score"), int | float)]
        hits_node["max_score"] = max(scores) if scores else hits_node.get("max_score")
    degraded = [o for o in outcomes if o.kind == "degraded"]
    status = degraded[0].status if degraded else "applied; interleaved"
    return answer, response, status, teams
