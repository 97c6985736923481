"""Putting the reranker's scores into the engine's hits.

The window's scored hits come first, sorted by their new ``_score`` (ties keep the engine's
order); window hits that could not be scored (no content, a failed image) follow in the engine's
order with their own score; hits beyond the window come last, also in the engine's order. Then the
client's from/size page is cut from that list. ``min_score`` compares the reranker's own score
(a probability), whatever the combine mode, and drops window hits below it; unscored hits are
never dropped: nothing judged them.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.search.options import Combine

Hit = MutableMapping[str, Any]

SCORE_FIELD = "_rerank_score"
ORIGINAL_SCORE_FIELD = "_rerank_original_score"
ORIGINAL_RANK_FIELD = "_rerank_original_rank"


@dataclass(frozen=True)
class Page:
    start: int
    size: int


@dataclass(frozen=True)
class Merged:
    hits: list[Hit]
    max_score: float | None
    reranked: int


def combined_scores(
    original: Sequence[float | None], rerank: Sequence[float], combine: Combine
) -> list[float]:
    """New scores of the scored hits, given in the engine's order."""
    if combine.mode == "replace":
        return list(rerank)
    if combine.mode == "weighted":
        return [
            combine.query_weight * (o or 0.0) + combine.rerank_weight * r
            for o, r in zip(original, rerank, strict=True)
        ]
    k = combine.rank_constant
    by_rerank = sorted(range(len(rerank)), key=lambda i: (-rerank[i], i))
    rerank_rank = {index: rank for rank, index in enumerate(by_rerank, start=1)}
    return [1 / (k + i + 1) + 1 / (k + rerank_rank[i]) for i in range(len(rerank))]


def merge(
    hits: Sequence[Hit],
    scores: Sequence[float | None],
    window: int,
    combine: Combine,
    page: Page,
    min_score: float | None = None,
    hit_fields: bool = True,
) -> Merged:
    """``hits``: every hit the engine returned for the widened request, in its order;
    ``scores``: the reranker's score of each of the first ``len(scores)`` (None: not scored)."""
    window_hits = list(hits[:window])
    scored = [i for i, s in enumerate(scores) if s is not None]
    rerank = [float(scores[i]) for i in scored]  # type: ignore[arg-type]
    original = [_score(window_hits[i]) for i in scored]
    new = combined_scores(original, rerank, combine)
    keep = [
        n for n, r in enumerate(rerank) if min_score is None or r >= min_score
    ]  # positions within `scored`
    keep.sort(key=lambda n: (-new[n], scored[n]))
    scored_set = set(scored)
    ordered: list[Hit] = [window_hits[scored[n]] for n in keep]
    ordered.extend(hit for i, hit in enumerate(window_hits) if i not in scored_set)
    ordered.extend(hits[window:])
    stop = page.start + page.size
    # Only the page's hits reach the client: annotate those, not the whole window.
    for n in keep[page.start : stop]:
        hit = window_hits[scored[n]]
        if hit_fields:
            extra = hit.setdefault("fields", {})
            extra[SCORE_FIELD] = [rerank[n]]
            extra[ORIGINAL_SCORE_FIELD] = [original[n]]
            extra[ORIGINAL_RANK_FIELD] = [scored[n] + 1]
        hit["_score"] = new[n]
    max_score = new[keep[0]] if keep else None
    return Merged(hits=ordered[page.start : stop], max_score=max_score, reranked=len(keep))


def _score(hit: Hit) -> float | None:
    value = hit.get("_score")
    return float(value) if isinstance(value, int | float) else None
