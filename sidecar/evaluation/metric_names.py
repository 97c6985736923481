"""The short metric names of ``rerank-sidecar eval`` (``ndcg@10``) and the ``_rank_eval``
metric object each stands for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_K = 10
_NAME = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<k>\d+))?$")
ALIASES = {
    "ndcg": "ndcg",
    "dcg": "dcg",
    "precision": "precision",
    "p": "precision",
    "recall": "recall",
    "r": "recall",
    "mrr": "mrr",
    "mean_reciprocal_rank": "mrr",
    "err": "err",
    "expected_reciprocal_rank": "err",
}
NAMES = ("ndcg", "dcg", "precision", "recall", "mrr", "err")


@dataclass(frozen=True)
class MetricName:
    """``ndcg@10``: which metric, its ``k``, as written in reports and the runs index."""

    name: str
    k: int

    @property
    def label(self) -> str:
        return f"{self.name}@{self.k}"

    def body(self, *, relevant_rating: int = 1, maximum_relevance: int = 3) -> dict[str, Any]:
        """The ``metric`` object of a ``_rank_eval`` body."""
        k = self.k
        if self.name in ("ndcg", "dcg"):
            return {"dcg": {"k": k, "normalize": self.name == "ndcg"}}
        if self.name == "precision":
            return {"precision": {"k": k, "relevant_rating_threshold": relevant_rating}}
        if self.name == "recall":
            return {"recall": {"k": k, "relevant_rating_threshold": relevant_rating}}
        if self.name == "mrr":
            return {"mean_reciprocal_rank": {"k": k, "relevant_rating_threshold": relevant_rating}}
        return {"expected_reciprocal_rank": {"k": k, "maximum_relevance": maximum_relevance}}


def parse_metric_name(text: str) -> MetricName:
    """``ndcg@10``, ``precision@5``, ``recall``, ``mrr@3``, ``err@10``, ``dcg@20``..."""
    match = _NAME.match(text.strip().lower())
    name = ALIASES.get(match["name"]) if match else None
    if match is None or name is None:
        raise ValueError(
            f"unknown metric {text!r}: use one of {', '.join(NAMES)}, with @k (e.g. ndcg@10)"
        )
    k = int(match["k"]) if match["k"] else DEFAULT_K
    if k < 1:
        raise ValueError(f"{text!r}: k must be at least 1")
    return MetricName(name, k)
