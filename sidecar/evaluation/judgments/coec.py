"""Implicit judgments from click logs with the COEC click model.

COEC (clicks over expected clicks; Zhang and Jones 2007, Chapelle and Zhang 2009) corrects raw
click-through for position bias: a document's clicks divided by the clicks an average document
would have collected at the positions it was shown in::

    ctr(p)       = clicks at position p / impressions at position p   (over the whole log)
    COEC(q, d)   = clicks(q, d) / Σ over impressions of d for q of ctr(position)

1 means "clicked as often as its positions predict", above 1 more. Choices (decision 0010):

- An impression is a hit in a search's ``query_response_hit_ids`` (the order shown), its
  position its 1-based place there; a click counts where the clicked object was shown, so the
  collectors' 0- or 1-based ``ordinal`` never matters. Clicks on objects the search did not show
  are ignored (and counted), several clicks of one search on one document count once.
- Searches are grouped by their normalized query text (``normalize_query``).
- Pairs shown fewer than ``min_impressions`` times are left out: a ratio of tiny counts is noise.
- The integer rating ``_rank_eval`` needs is the number of ``thresholds`` the COEC reaches
  (default 0.5, 1, 2: ratings 0 to 3); the COEC itself is kept as the judgment's ``score``.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sidecar.evaluation.judgments.model import Judgment, normalize_query, utc_now

DEFAULT_THRESHOLDS = (0.5, 1.0, 2.0)
RATER = "coec"


@dataclass(frozen=True)
class Search:
    """One logged search: its id, what the user typed and the hit ids in the order shown."""

    query_id: str
    user_query: str
    hit_ids: Sequence[str]


@dataclass(frozen=True)
class Click:
    """A click event: the search it belongs to and the object clicked."""

    query_id: str
    object_id: str


@dataclass(frozen=True)
class CoecScore:
    query: str
    doc_id: str
    impressions: int
    clicks: int
    expected_clicks: float

    @property
    def coec(self) -> float:
        return self.clicks / self.expected_clicks if self.expected_clicks > 0 else 0.0


@dataclass
class ClickModel:
    """What COEC read from a log: the position prior and the per-(query, document) counts."""

    ctr_at_position: dict[int, float]
    scores: list[CoecScore]
    unmatched_clicks: int = 0
    below_cut: int = 0
    queries: dict[str, str] = field(default_factory=dict)


def coec(
    searches: Iterable[Search],
    clicks: Iterable[Click],
    *,
    min_impressions: int = 10,
    max_position: int | None = None,
) -> ClickModel:
    """COEC of every (query, document) shown at least ``min_impressions`` times.

    ``max_position`` ignores impressions below that rank (a page the user never scrolled to
    should not count as "not clicked")."""
    if min_impressions < 1:
        raise ValueError("min_impressions must be at least 1")
    searches = list(searches)
    clicked: dict[str, set[str]] = defaultdict(set)
    for click in clicks:
        clicked[click.query_id].add(click.object_id)

    impressions_at: Counter[int] = Counter()
    clicks_at: Counter[int] = Counter()
    shown: dict[tuple[str, str], list[int]] = defaultdict(list)
    clicked_pairs: Counter[tuple[str, str]] = Counter()
    texts: dict[str, str] = {}
    unmatched = 0
    for search in searches:
        key = normalize_query(search.user_query)
        if not key:
            continue
        texts.setdefault(key, search.user_query.strip())
        hits = list(dict.fromkeys(search.hit_ids))  # one impression per document and search
        if max_position is not None:
            hits = hits[:max_position]
        clicked_here = clicked.get(search.query_id, set())
        unmatched += len(clicked_here - set(hits))
        for position, doc_id in enumerate(hits, start=1):
            impressions_at[position] += 1
            shown[(key, doc_id)].append(position)
            if doc_id in clicked_here:
                clicks_at[position] += 1
                clicked_pairs[(key, doc_id)] += 1
    searched = {search.query_id for search in searches}
    unmatched += sum(len(ids) for query_id, ids in clicked.items() if query_id not in searched)

    ctr = {p: clicks_at[p] / n for p, n in sorted(impressions_at.items())}
    scores, below = [], 0
    for (key, doc_id), positions in shown.items():
        if len(positions) < min_impressions:
            below += 1
            continue
        scores.append(
            CoecScore(
                query=key,
                doc_id=doc_id,
                impressions=len(positions),
                clicks=clicked_pairs[(key, doc_id)],
                expected_clicks=sum(ctr[p] for p in positions),
            )
        )
    return ClickModel(ctr, scores, unmatched_clicks=unmatched, below_cut=below, queries=texts)


def grade(value: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> int:
    """The integer rating of a COEC value: how many thresholds it reaches."""
    if list(thresholds) != sorted(thresholds):
        raise ValueError("thresholds must be in increasing order")
    return bisect.bisect_right(list(thresholds), value)


def to_judgments(
    model: ClickModel, index: str, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[Judgment]:
    """The click model's scores as judgments of ``index`` (rater ``coec``, source ``clicks``)."""
    now = utc_now()
    return [
        Judgment(
            query_id=s.query,
            query=model.queries.get(s.query, s.query),
            index=index,
            doc_id=s.doc_id,
            rating=grade(s.coec, thresholds),
            rater=RATER,
            source="clicks",
            timestamp=now,
            score=s.coec,
        )
        for s in model.scores
    ]
