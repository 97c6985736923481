"""What an eval run found: per variant and metric the mean with its interval and the paired
comparison with the reference, the queries that moved most; as JSON, and as the documents of
the ``rerank-eval-runs`` index."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sidecar.evaluation.metric_names import MetricName
from sidecar.evaluation.runner import EvalQuery, MetricRun, Variant
from sidecar.evaluation.statistics import Interval, PairedComparison, bootstrap_mean, compare


@dataclass(frozen=True)
class Summary:
    variant: Variant
    metric: MetricName
    interval: Interval
    queries: int
    failed: int
    metric_score: float
    took_ms: float
    computed_by: str
    comparison: PairedComparison | None  # None for the reference itself


@dataclass(frozen=True)
class Mover:
    query_id: str
    text: str
    reference_score: float
    score: float

    @property
    def delta(self) -> float:
        return self.score - self.reference_score


@dataclass
class EvalReport:
    run_id: str
    timestamp: datetime
    index: str
    judgments: str
    label: str | None
    variants: list[Variant]
    reference: Variant
    metrics: list[MetricName]
    queries: list[EvalQuery]
    runs: list[MetricRun]
    summaries: list[Summary] = field(default_factory=list)

    def run(self, variant: Variant, metric: MetricName) -> MetricRun:
        return next(r for r in self.runs if r.variant == variant and r.metric == metric)

    def summary(self, variant: Variant, metric: MetricName) -> Summary:
        return next(s for s in self.summaries if s.variant == variant and s.metric == metric)

    @property
    def challengers(self) -> list[Variant]:
        return [v for v in self.variants if v != self.reference]

    def movers(
        self, variant: Variant, metric: MetricName, n: int = 5
    ) -> tuple[list[Mover], list[Mover]]:
        """The ``n`` queries ``variant`` improved most and the ``n`` it hurt most."""
        texts = {q.query_id: q.text for q in self.queries}
        reference = self.run(self.reference, metric).scores
        mine = self.run(variant, metric).scores
        moved = sorted(
            (
                Mover(q, texts[q], reference[q], mine[q])
                for q in reference
                if q in mine and abs(mine[q] - reference[q]) > 1e-9
            ),
            key=lambda m: m.delta,
        )
        gained = [m for m in reversed(moved) if m.delta > 0][:n]
        lost = [m for m in moved if m.delta < 0][:n]
        return gained, lost


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def build_report(
    *,
    index: str,
    judgments: str,
    variants: Sequence[Variant],
    reference: Variant,
    metrics: Sequence[MetricName],
    queries: Sequence[EvalQuery],
    runs: Sequence[MetricRun],
    label: str | None = None,
    now: datetime | None = None,
) -> EvalReport:
    now = now or datetime.now(UTC)
    report = EvalReport(
        new_run_id(now), now, index, judgments, label, list(variants), reference,
        list(metrics), list(queries), list(runs),
    )  # fmt: skip
    for metric in metrics:
        reference_scores = report.run(reference, metric).scores
        for variant in variants:
            run = report.run(variant, metric)
            report.summaries.append(
                Summary(
                    variant,
                    metric,
                    bootstrap_mean(list(run.scores.values())),
                    len(run.scores),
                    run.failed,
                    run.metric_score,
                    run.took_ms,
                    run.computed_by,
                    None if variant == reference else compare(reference_scores, run.scores),
                )
            )
    return report


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _summary_json(s: Summary) -> dict[str, Any]:
    out: dict[str, Any] = {
        "variant": s.variant.name,
        "profile": s.variant.profile,
        "metric": s.metric.label,
        "queries": s.queries,
        "failed": s.failed,
        "mean": _finite(s.interval.mean),
        "ci_low": _finite(s.interval.low),
        "ci_high": _finite(s.interval.high),
        "metric_score": _finite(s.metric_score),
        "took_ms": round(s.took_ms, 1),
        "computed_by": s.computed_by,
    }
    if s.comparison is not None:
        c = s.comparison
        out["comparison"] = {
            "queries": c.queries,
            "delta": _finite(c.delta.mean),
            "ci_low": _finite(c.delta.low),
            "ci_high": _finite(c.delta.high),
            "p_value": _finite(c.p_value),
            "wins": c.wins,
            "losses": c.losses,
            "ties": c.ties,
        }
    return out


def report_json(report: EvalReport) -> dict[str, Any]:
    """Everything the run measured, per query too."""
    return {
        "run_id": report.run_id,
        "timestamp": report.timestamp.isoformat(),
        "label": report.label,
        "index": report.index,
        "judgments": report.judgments,
        "reference": report.reference.name,
        "variants": [{"name": v.name, "profile": v.profile} for v in report.variants],
        "metrics": [m.label for m in report.metrics],
        "summaries": [_summary_json(s) for s in report.summaries],
        "queries": [
            {
                "query_id": q.query_id,
                "query": q.text,
                "scores": {
                    run.variant.name + " " + run.metric.label: (
                        None if (r := run.results[q.query_id]).score is None else _finite(r.score)
                    )
                    for run in report.runs
                },
                "failures": {
                    run.variant.name + " " + run.metric.label: run.results[q.query_id].failure
                    for run in report.runs
                    if run.results[q.query_id].failure
                },
            }
            for q in report.queries
        ],
    }


def run_documents(report: EvalReport) -> list[tuple[str, dict[str, Any]]]:
    """The run as ``rerank-eval-runs`` documents: a summary per (variant, metric) and a query
    document per (variant, metric, query), ids derived from the run id."""
    base = {
        "run_id": report.run_id,
        "timestamp": report.timestamp.isoformat(),
        "index": report.index,
        "judgments": report.judgments,
        "reference": report.reference.name,
        **({"label": report.label} if report.label else {}),
    }
    texts = {q.query_id: q.text for q in report.queries}
    docs: list[tuple[str, dict[str, Any]]] = []
    for s in report.summaries:
        common = {
            **base,
            "variant": s.variant.name,
            **({"profile": s.variant.profile} if s.variant.profile else {}),
            "metric": s.metric.label,
            "metric_name": s.metric.name,
            "k": s.metric.k,
        }
        summary = {
            **common,
            "kind": "summary",
            "queries": s.queries,
            "failed": s.failed,
            "mean": _finite(s.interval.mean),
            "ci_low": _finite(s.interval.low),
            "ci_high": _finite(s.interval.high),
            "took_ms": s.took_ms,
        }
        if s.comparison is not None:
            c = s.comparison
            summary |= {
                "delta": _finite(c.delta.mean),
                "delta_ci_low": _finite(c.delta.low),
                "delta_ci_high": _finite(c.delta.high),
                "p_value": _finite(c.p_value),
                "wins": c.wins,
                "losses": c.losses,
                "ties": c.ties,
            }
        key = f"{report.run_id}:{s.variant.name}:{s.metric.label}"
        docs.append((key, {k: v for k, v in summary.items() if v is not None}))
        reference = report.run(report.reference, s.metric).scores
        for query_id, score in report.run(s.variant, s.metric).scores.items():
            doc = {**common, "kind": "query", "query_id": query_id, "query": texts[query_id]}
            doc["score"] = _finite(score)
            if query_id in reference:
                doc["reference_score"] = _finite(reference[query_id])
                if s.comparison is not None:
                    doc["delta"] = _finite(score - reference[query_id])
            docs.append((f"{key}:{query_id}", {k: v for k, v in doc.items() if v is not None}))
    return docs
