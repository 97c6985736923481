"""Run an evaluation: the ``_rank_eval`` requests of a judged query set, one per variant and
metric, sent through the sidecar as any client would send them.

A variant is a rerank profile (top-level ``ext.rerank.profile`` of the body, so every rated
request is reranked with it) or the engine's own order (``X-Rerank: off``). Each rated request
is a search built from the query text: a ``multi_match`` over the given fields, or a search
body template whose ``"{{query}}"`` strings are replaced by the text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.evaluation.cluster import Cluster, ClusterError
from sidecar.evaluation.judgments.formats import by_query
from sidecar.evaluation.judgments.model import Judgment
from sidecar.evaluation.metric_names import MetricName

PLACEHOLDER = "{{query}}"


@dataclass(frozen=True)
class Variant:
    """What is compared: a profile's reranked order, or the engine's (``profile`` None)."""

    name: str
    profile: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Rerank": "off"} if self.profile is None else {}


BASELINE = Variant("baseline")


@dataclass(frozen=True)
class EvalQuery:
    query_id: str
    text: str
    ratings: tuple[tuple[str, str, int], ...]  # (index, doc id, rating)


@dataclass(frozen=True)
class RankedHit:
    index: str
    doc_id: str
    score: float | None
    rating: int | None


@dataclass
class QueryResult:
    score: float | None  # None: the rated request failed
    hits: list[RankedHit] = field(default_factory=list)
    failure: str | None = None


@dataclass
class MetricRun:
    """One ``_rank_eval`` call: a variant under a metric."""

    variant: Variant
    metric: MetricName
    metric_score: float
    results: dict[str, QueryResult]
    took_ms: float
    computed_by: str  # "engine" or "sidecar" (X-Rerank-Eval)

    @property
    def scores(self) -> dict[str, float]:
        return {q: r.score for q, r in self.results.items() if r.score is not None}

    @property
    def failed(self) -> int:
        return sum(r.score is None for r in self.results.values())


def eval_queries(judgments: Sequence[Judgment]) -> list[EvalQuery]:
    """The judged queries, each with its ratings (queries in first-seen order)."""
    return [
        EvalQuery(
            query_id,
            group[0].query,
            tuple((j.index, j.doc_id, j.rating) for j in group),
        )
        for query_id, group in by_query(judgments)
    ]


def _fill(template: Any, text: str) -> Any:
    if isinstance(template, str):
        return template.replace(PLACEHOLDER, text) if PLACEHOLDER in template else template
    if isinstance(template, list):
        return [_fill(item, text) for item in template]
    if isinstance(template, dict):
        return {key: _fill(value, text) for key, value in template.items()}
    return template


def contains_placeholder(template: Any) -> bool:
    if isinstance(template, str):
        return PLACEHOLDER in template
    if isinstance(template, list):
        return any(contains_placeholder(item) for item in template)
    if isinstance(template, dict):
        return any(contains_placeholder(value) for value in template.values())
    return False


def search_body(text: str, fields: Sequence[str], template: Mapping[str, Any] | None) -> Any:
    """The search of one rated request."""
    if template is not None:
        return _fill(dict(template), text)
    return {"query": {"multi_match": {"query": text, "fields": list(fields) or ["*"]}}}


def rank_eval_body(
    queries: Sequence[EvalQuery],
    metric: dict[str, Any],
    variant: Variant,
    *,
    fields: Sequence[str] = (),
    template: Mapping[str, Any] | None = None,
    max_concurrent_searches: int = 10,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requests": [
            {
                "id": q.query_id,
                "request": search_body(q.text, fields, template),
                "ratings": [{"_index": i, "_id": d, "rating": r} for i, d, r in q.ratings],
            }
            for q in queries
        ],
        "metric": metric,
        "max_concurrent_searches": max_concurrent_searches,
    }
    if variant.profile is not None:
        body["ext"] = {"rerank": {"profile": variant.profile}}
    return body


def _number(value: Any) -> float:
    if isinstance(value, str):  # the engines write NaN and the infinities as strings
        return float(value)
    return float(value) if value is not None else math.nan


def _failure_reason(error: Any) -> str:
    if isinstance(error, dict):
        root = (error.get("root_cause") or [error])[0]
        return f"{root.get('type', 'error')}: {root.get('reason', '')}"
    return str(error)


def parse_response(answer: dict[str, Any], queries: Sequence[EvalQuery]) -> dict[str, QueryResult]:
    details = answer.get("details") or {}
    failures = answer.get("failures") or {}
    results: dict[str, QueryResult] = {}
    for q in queries:
        if q.query_id in details:
            detail = details[q.query_id]
            hits = [
                RankedHit(
                    h["hit"]["_index"],
                    h["hit"]["_id"],
                    None if h["hit"].get("_score") is None else _number(h["hit"]["_score"]),
                    h.get("rating"),
                )
                for h in detail.get("hits", [])
            ]
            results[q.query_id] = QueryResult(_number(detail["metric_score"]), hits)
        else:
            reason = _failure_reason(failures.get(q.query_id, "no result"))
            results[q.query_id] = QueryResult(None, failure=reason)
    return results


Step = Callable[[Variant, MetricName], None]


def run_eval(
    cluster: Cluster,
    index: str,
    queries: Sequence[EvalQuery],
    variants: Sequence[Variant],
    metrics: Sequence[MetricName],
    *,
    fields: Sequence[str] = (),
    template: Mapping[str, Any] | None = None,
    relevant_rating: int = 1,
    max_concurrent_searches: int = 10,
    on_done: Step | None = None,
) -> list[MetricRun]:
    """Every (variant, metric) ``_rank_eval`` of ``queries`` against ``index``.

    A refused call (the engine's or the sidecar's 4xx/5xx), or one whose every rated request
    failed, raises ``ClusterError`` with the reason: nothing of a run that could not be
    measured is reported."""
    maximum = max((r for q in queries for _, _, r in q.ratings), default=1)
    runs = []
    for variant in variants:
        for metric in metrics:
            body = rank_eval_body(
                queries,
                metric.body(relevant_rating=relevant_rating, maximum_relevance=max(maximum, 1)),
                variant,
                fields=fields,
                template=template,
                max_concurrent_searches=max_concurrent_searches,
            )
            started = time.perf_counter()
            response = cluster.send("POST", f"/{index}/_rank_eval", body, headers=variant.headers)
            took_ms = (time.perf_counter() - started) * 1000
            answer = response.json()
            if "metric_score" not in answer:
                raise ClusterError(response.status_code, f"not a _rank_eval answer: {answer}")
            results = parse_response(answer, queries)
            if queries and all(r.score is None for r in results.values()):
                # Nothing to compare (an unknown profile, a search the engine refuses): a
                # report of NaNs would only hide the reason.
                reason = next(iter(results.values())).failure
                raise ClusterError(
                    response.status_code,
                    f"{variant.name} · {metric.label}: every rated request failed, "
                    f"the first with {reason}",
                )
            runs.append(
                MetricRun(
                    variant,
                    metric,
                    _number(answer["metric_score"]),
                    results,
                    took_ms,
                    response.headers.get("X-Rerank-Eval", "engine"),
                )
            )
            if on_done is not None:
                on_done(variant, metric)
    return runs


def fetch_display(
    cluster: Cluster,
    keys: Sequence[tuple[str, str]],
    display_field: str,
    image_field: str | None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """``_source`` fields to show for each ``(index, id)`` (one ``_mget``); missing documents
    are simply absent."""
    if not keys:
        return {}
    wanted = [f for f in (display_field, image_field) if f]
    docs = [{"_index": i, "_id": d, "_source": wanted} for i, d in dict.fromkeys(keys)]
    answer = cluster.json("POST", "/_mget", {"docs": docs})
    return {
        (doc["_index"], doc["_id"]): doc.get("_source") or {}
        for doc in answer.get("docs", [])
        if doc.get("found")
    }
