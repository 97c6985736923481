"""The ``_rank_eval`` metrics as pure functions, to the last bit of the engines' own.

Elasticsearch and OpenSearch share the code (``modules/rank-eval``: ``PrecisionAtK``,
``RecallAtK``, ``MeanReciprocalRank``, ``DiscountedCumulativeGain``, ``ExpectedReciprocalRank``,
``EvaluationMetric``). A metric asks the search for ``k`` hits (``forced_search_size``), joins
the hits with the ratings on (``_index``, ``_id``) and scores them; ``combine`` takes the mean
over the rated requests that succeeded. Java doubles are IEEE doubles, so each score is computed
with the engine's operations in the engine's order. Two Java specifics matter:

- DCG divides by ``Math.log(rank + 1) / Math.log(2)``. HotSpot's ``Math.log`` (an x86-64
  intrinsic) is not the C library's: ``math.log(9170)`` is one ulp off it on glibc. It gives the
  correctly rounded logarithm for every rank checked (2 to 2^20 + 1, JDK 17 and 25), so that is
  what ``java_log2`` computes (exact decimal, cached per rank). ``Math.pow(2, r)`` is exact.
- The mean is ``DoubleStream.sum`` (a compensated sum, ``java_order.stream_sum``) over the
  values of a ``HashMap``: the caller passes them in that map's order (``java_order``).

``parse_metric`` reads ``{"precision": {"k": 5}}`` the way the engines' object parsers do, and
fails with the error the engine answers (``MetricError``), coercions included: ``"5"``, ``5.7``
and ``"5.5"`` are all k = 5, ``"true"``/``"false"`` (and ``""``) are booleans.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, ClassVar

from sidecar.evaluation.java_order import stream_sum
from sidecar.evaluation.models import (
    ILLEGAL_ARGUMENT,
    PARSE_ERROR,
    DcgDetail,
    ErrDetail,
    Flavor,
    Hit,
    MetricDetail,
    MetricError,
    PrecisionDetail,
    QueryQuality,
    RatedDocument,
    RatedHit,
    Rating,
    RecallDetail,
    ReciprocalRankDetail,
)
from sidecar.evaluation.parsing import (
    ObjectParser,
    json_token,
    parse_rated_document,
    validate_ratings,
)

THRESHOLD_MESSAGE = "Relevant rating threshold for precision must be positive integer."
K_MESSAGE = "Window size k must be positive."

# --- Java arithmetic ---------------------------------------------------------------------------

_LN_CONTEXT = Context(prec=40)
_LN2 = float(Decimal(2).ln(_LN_CONTEXT))  # Math.log(2.0): 0x3fe62e42fefa39ef


@functools.lru_cache(maxsize=1 << 16)
def java_log2(n: int) -> float:
    """``Math.log(n) / Math.log(2.0)`` as the engines' JVM computes it (see the module doc)."""
    return float(Decimal(n).ln(_LN_CONTEXT)) / _LN2


def java_pow2(exponent: int) -> float:
    """``Math.pow(2, exponent)``: exact, infinite past 1023, zero below -1074."""
    return math.inf if exponent > 1023 else math.ldexp(1.0, exponent)


def _java_divide(a: float, b: float) -> float:
    """``a / b`` with Java's answer for a zero divisor (Python raises)."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _dcg(ratings: Sequence[int | None]) -> float:
    """``computeDCG``: unrated places add nothing but still take their rank."""
    total = 0.0
    for rank, rating in enumerate(ratings, start=1):
        if rating is not None:
            total += (java_pow2(rating) - 1) / java_log2(rank + 1)
    return total


# --- Joining hits and ratings ------------------------------------------------------------------


def join_hits_with_ratings(hits: Sequence[Hit], ratings: Sequence[Rating]) -> tuple[RatedHit, ...]:
    """``joinHitsWithRatings``: every hit in order, with its rating or ``None``."""
    by_key = {(doc.index, doc.id): doc.rating for doc in ratings}
    return tuple(RatedHit(hit, by_key.get(hit.key)) for hit in hits)


def check_search_size(metric: Metric) -> None:
    """The whole ``_rank_eval`` fails before any search when k is negative (only ``dcg`` and
    ``expected_reciprocal_rank`` accept one): ``SearchSourceBuilder.size``'s error."""
    size = metric.forced_search_size
    if size < 0:
        raise MetricError(ILLEGAL_ARGUMENT, f"[size] parameter cannot be negative, found [{size}]")


# --- The metrics -------------------------------------------------------------------------------


class Metric(ABC):
    """A rank-eval metric: its parameters, the search size it forces, and ``evaluate``."""

    name: ClassVar[str]
    k: int

    @property
    def forced_search_size(self) -> int:
        """The ``size`` every rated request's search is run with: k."""
        return self.k

    def evaluate(
        self, query_id: str, hits: Sequence[Hit], ratings: Sequence[Rating]
    ) -> QueryQuality:
        """The score of ``hits`` (in rank order) against ``ratings``. The engine's search never
        returns more than k hits, so hits past k are dropped here."""
        check_search_size(self)
        validate_ratings(query_id, ratings)
        rated = join_hits_with_ratings(hits[: self.k], ratings)
        score, detail = self._score(rated, ratings)
        return QueryQuality(query_id, score, rated, detail)

    @abstractmethod
    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]: ...

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The metric as the engine writes it back (``RankEvalSpec``; not in the response)."""


def _check_threshold_and_k(threshold: int, k: int) -> None:
    if threshold < 0:
        raise MetricError(ILLEGAL_ARGUMENT, THRESHOLD_MESSAGE)
    if k <= 0:
        raise MetricError(ILLEGAL_ARGUMENT, K_MESSAGE)


@dataclass(frozen=True)
class Precision(Metric):
    """Relevant hits / hits counted; unrated hits count as irrelevant unless ignored."""

    name: ClassVar[str] = "precision"
    relevant_rating_threshold: int = 1
    ignore_unlabeled: bool = False
    k: int = 10

    def __post_init__(self) -> None:
        _check_threshold_and_k(self.relevant_rating_threshold, self.k)

    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]:
        relevant = retrieved = 0
        for hit in rated:
            if hit.rating is not None:
                retrieved += 1
                relevant += hit.rating >= self.relevant_rating_threshold
            elif not self.ignore_unlabeled:
                retrieved += 1
        score = relevant / retrieved if retrieved > 0 else 0.0
        return score, PrecisionDetail(relevant, retrieved)

    def to_json(self) -> dict[str, Any]:
        return {
            self.name: {
                "relevant_rating_threshold": self.relevant_rating_threshold,
                "ignore_unlabeled": self.ignore_unlabeled,
                "k": self.k,
            }
        }


@dataclass(frozen=True)
class Recall(Metric):
    """Relevant hits / rated documents at or above the threshold (all of them, not only hits)."""

    name: ClassVar[str] = "recall"
    relevant_rating_threshold: int = 1
    k: int = 10

    def __post_init__(self) -> None:
        _check_threshold_and_k(self.relevant_rating_threshold, self.k)

    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]:
        threshold = self.relevant_rating_threshold
        retrieved = sum(1 for hit in rated if hit.rating is not None and hit.rating >= threshold)
        relevant = sum(1 for doc in ratings if doc.rating >= threshold)
        score = retrieved / relevant if relevant > 0 else 0.0
        return score, RecallDetail(retrieved, relevant)

    def to_json(self) -> dict[str, Any]:
        return {
            self.name: {"relevant_rating_threshold": self.relevant_rating_threshold, "k": self.k}
        }


@dataclass(frozen=True)
class MeanReciprocalRank(Metric):
    """1 / rank of the first relevant hit; 0 (and first_relevant -1) when none is."""

    name: ClassVar[str] = "mean_reciprocal_rank"
    relevant_rating_threshold: int = 1
    k: int = 10

    def __post_init__(self) -> None:
        _check_threshold_and_k(self.relevant_rating_threshold, self.k)

    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]:
        first = next(
            (
                rank
                for rank, hit in enumerate(rated, start=1)
                if hit.rating is not None and hit.rating >= self.relevant_rating_threshold
            ),
            -1,
        )
        return (0.0 if first == -1 else 1.0 / first), ReciprocalRankDetail(first)

    def to_json(self) -> dict[str, Any]:
        return {
            self.name: {"relevant_rating_threshold": self.relevant_rating_threshold, "k": self.k}
        }


@dataclass(frozen=True)
class DiscountedCumulativeGain(Metric):
    """Σ (2^rating − 1) / log2(rank + 1); normalized by the ideal DCG of all the ratings sorted
    high to low and cut to the number of hits. k is not checked (a negative one fails the
    search)."""

    name: ClassVar[str] = "dcg"
    normalize: bool = False
    unknown_doc_rating: int | None = None
    k: int = 10

    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]:
        gains = [self.unknown_doc_rating if hit.rating is None else hit.rating for hit in rated]
        dcg = _dcg(gains)
        score, idcg = dcg, 0.0
        if self.normalize:
            ideal = sorted((doc.rating for doc in ratings), reverse=True)
            idcg = _dcg(ideal[: min(len(gains), len(ideal))])
            score = dcg / idcg if idcg != 0 else 0.0
        unrated = sum(1 for hit in rated if hit.rating is None)
        return score, DcgDetail(dcg, idcg, unrated)

    def to_json(self) -> dict[str, Any]:
        params: dict[str, Any] = {"normalize": self.normalize}
        if self.unknown_doc_rating is not None:
            params["unknown_doc_rating"] = self.unknown_doc_rating
        params["k"] = self.k
        return {self.name: params}


@dataclass(frozen=True)
class ExpectedReciprocalRank(Metric):
    """Σ p · R / rank with R = (2^rating − 1) / 2^maximum_relevance and p *= 1 − R after each
    rated hit (Chapelle et al. 2009). Unrated hits are skipped unless unknown_doc_rating is set.
    Neither maximum_relevance nor k is checked."""

    name: ClassVar[str] = "expected_reciprocal_rank"
    maximum_relevance: int
    unknown_doc_rating: int | None = None
    k: int = 10

    def _score(
        self, rated: tuple[RatedHit, ...], ratings: Sequence[Rating]
    ) -> tuple[float, MetricDetail]:
        two_pow_max = java_pow2(self.maximum_relevance)
        p, err = 1.0, 0.0
        for rank, hit in enumerate(rated, start=1):
            rating = self.unknown_doc_rating if hit.rating is None else hit.rating
            if rating is not None:
                probability = _java_divide(java_pow2(rating) - 1, two_pow_max)
                err = err + (p * probability / rank)
                p = p * (1 - probability)
        return err, ErrDetail(sum(1 for hit in rated if hit.rating is None))

    def to_json(self) -> dict[str, Any]:
        params: dict[str, Any] = {"maximum_relevance": self.maximum_relevance}
        if self.unknown_doc_rating is not None:
            params["unknown_doc_rating"] = self.unknown_doc_rating
        params["k"] = self.k
        return {self.name: params}


def combine(metric: Metric, qualities: Sequence[QueryQuality]) -> float:
    """``EvaluationMetric.combine``: the mean of the successful requests' scores, NaN when none
    succeeded. Summed in the order given: pass them in the engine's ``HashMap`` order
    (``java_order.hashmap_order(ids, map_capacity(n_searched, flavor))``)."""
    if not qualities:
        return math.nan
    return stream_sum(quality.metric_score for quality in qualities) / len(qualities)


def map_capacity(searched: int, flavor: Flavor = "opensearch") -> int:
    """The initial capacity of the engine's per-request results map, for ``searched`` rated
    requests sent to the search (failed ones included): OpenSearch ``new HashMap<>(n)``,
    Elasticsearch 8+ ``Maps.newMapWithExpectedSize(n)``."""
    if flavor == "opensearch":
        return searched
    return searched + 1 if searched < 2 else int(searched / 0.75 + 1.0)


_METRIC_PARSERS = {
    "precision": ObjectParser(
        "precision",
        (("relevant_rating_threshold", "int"), ("ignore_unlabeled", "bool"), ("k", "int")),
        lambda a: Precision(
            a.get("relevant_rating_threshold", 1),
            a.get("ignore_unlabeled", False),
            a.get("k", 10),
        ),
    ),
    "recall": ObjectParser(
        "recall",
        (("relevant_rating_threshold", "int"), ("k", "int")),
        lambda a: Recall(a.get("relevant_rating_threshold", 1), a.get("k", 10)),
    ),
    "mean_reciprocal_rank": ObjectParser(
        "reciprocal_rank",
        (("relevant_rating_threshold", "int"), ("k", "int")),
        lambda a: MeanReciprocalRank(a.get("relevant_rating_threshold", 1), a.get("k", 10)),
    ),
    "dcg": ObjectParser(
        "dcg",
        (("normalize", "bool"), ("unknown_doc_rating", "int"), ("k", "int")),
        lambda a: DiscountedCumulativeGain(
            a.get("normalize", False), a.get("unknown_doc_rating", None), a.get("k", 10)
        ),
    ),
    "expected_reciprocal_rank": ObjectParser(
        "dcg",  # sic: the engines' parser for this metric is named "dcg"
        (("maximum_relevance", "int"), ("unknown_doc_rating", "int"), ("k", "int")),
        lambda a: ExpectedReciprocalRank(
            a["maximum_relevance"], a.get("unknown_doc_rating", None), a.get("k", 10)
        ),
        frozenset({"maximum_relevance"}),
    ),
}


def _expecting(expected: str, found: str) -> MetricError:
    reason = f"Failed to parse object: expecting token of type [{expected}] but found [{found}]"
    return MetricError("parsing_exception", reason)


def parse_metric(raw: Any, *, flavor: Flavor = "opensearch") -> Metric:
    """The value of a ``_rank_eval`` body's ``metric``: one metric name and its parameters.
    Raises the engine's error (``[rank_eval] failed to parse field [metric]`` and its causes)."""
    if not isinstance(raw, Mapping):
        reason = f"[rank_eval] metric doesn't support values of type: {json_token(raw)}"
        raise MetricError(PARSE_ERROR, reason)
    try:
        entries = list(raw.items())
        if not entries:
            raise _expecting("FIELD_NAME", "END_OBJECT")
        name, params = entries[0]
        parser = _METRIC_PARSERS.get(name)
        if parser is None:
            raise MetricError("named_object_not_found_exception", f"unknown field [{name}]")
        metric: Metric = parser.parse(params, flavor)
        if len(entries) > 1:
            raise _expecting("END_OBJECT", "FIELD_NAME")
        return metric
    except MetricError as exc:
        raise MetricError(PARSE_ERROR, "[rank_eval] failed to parse field [metric]", exc) from None


__all__ = [
    "DiscountedCumulativeGain",
    "ExpectedReciprocalRank",
    "Flavor",
    "Hit",
    "MeanReciprocalRank",
    "Metric",
    "MetricError",
    "Precision",
    "QueryQuality",
    "RatedDocument",
    "Rating",
    "Recall",
    "check_search_size",
    "combine",
    "java_log2",
    "java_pow2",
    "join_hits_with_ratings",
    "map_capacity",
    "parse_metric",
    "parse_rated_document",
    "validate_ratings",
]
