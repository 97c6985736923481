"""Eval runs in the cluster: the ``rerank-eval-runs`` index dashboards chart over time.

Each ``rerank-sidecar eval`` run writes one ``summary`` document per (variant, metric) (mean,
interval, paired difference to the reference variant, wins/losses/ties) and one ``query``
document per (variant, metric, query) (its score and its difference to the reference), all
under one ``run_id`` with deterministic ids, so a run written twice is the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sidecar.evaluation.cluster import Cluster

RUNS_INDEX = "rerank-eval-runs"

_KEYWORD = {"type": "keyword"}
_DOUBLE = {"type": "double"}
_INTEGER = {"type": "integer"}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "run_id": _KEYWORD,
        "label": _KEYWORD,
        "timestamp": {"type": "date"},
        "kind": _KEYWORD,  # "summary" or "query"
        "index": _KEYWORD,
        "judgments": _KEYWORD,
        "variant": _KEYWORD,
        "profile": _KEYWORD,
        "reference": _KEYWORD,
        "metric": _KEYWORD,
        "metric_name": _KEYWORD,
        "k": _INTEGER,
        "queries": _INTEGER,
        "failed": _INTEGER,
        "mean": _DOUBLE,
        "ci_low": _DOUBLE,
        "ci_high": _DOUBLE,
        "delta": _DOUBLE,
        "delta_ci_low": _DOUBLE,
        "delta_ci_high": _DOUBLE,
        "p_value": _DOUBLE,
        "wins": _INTEGER,
        "losses": _INTEGER,
        "ties": _INTEGER,
        "took_ms": _DOUBLE,
        "query_id": _KEYWORD,
        "query": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "score": _DOUBLE,
        "reference_score": _DOUBLE,
    },
}
REQUIRED = {"run_id": "keyword", "metric": "keyword", "mean": "double", "timestamp": "date"}


def write_run(cluster: Cluster, docs: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Index one run's documents (``(id, document)``), creating the index on first use."""
    if not docs:
        return 0
    cluster.ensure_index(RUNS_INDEX, MAPPINGS, REQUIRED)
    cluster.bulk_index(RUNS_INDEX, docs)
    return len(docs)
