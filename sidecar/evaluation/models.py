"""What the ``_rank_eval`` metrics read and write, as the engines' JSON: hits, ratings,
per-query results, errors (the engines' way of reading them is ``parsing``).

Each type writes exactly the JSON the engines' rank-eval module writes (Elasticsearch and
OpenSearch, ``modules/rank-eval``: ``RatedSearchHit``, ``EvalQueryQuality``, the metrics'
``Detail`` classes, the error envelope). Doubles that are not finite are written as Jackson
writes them, as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``json_double``).
Objects are read as the engines' parsers read them: fields in document order, numbers and
booleans coerced from strings, and the same error, cause by cause, for what they refuse.

Error tree::

    MetricError(ValueError)   type, reason, caused_by: the engine's error object, outermost first
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Flavor = Literal["opensearch", "elasticsearch"]

PARSE_ERROR = "x_content_parse_exception"
ILLEGAL_ARGUMENT = "illegal_argument_exception"
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# XContentParseException and its subclass, and OpenSearchException/ElasticsearchException ones:
# the engine's root-cause guess walks down through these and stops at any other cause.
_PARSE_EXCEPTIONS = frozenset(
    {"x_content_parse_exception", "named_object_not_found_exception", "parsing_exception"}
)


def json_double(value: float) -> float | str:
    """A Java double as the engine's JSON holds it: NaN and the infinities become strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def bare_index(index: str) -> str:
    """``SearchHit.getIndex()``: a cross-cluster hit's ``_index`` is ``cluster:index``, but the
    engine joins ratings and reports unrated documents by the index name alone."""
    return index.split(":", 1)[1] if ":" in index else index


class MetricError(ValueError):
    """The engine's error for a bad metric, rating or search size: ``type`` and ``reason`` of the
    outermost exception, ``caused_by`` the next one down. Reasons leave out the ``[line:col]``
    token locations the engine puts in front of parse errors (a parsed body has none)."""

    def __init__(self, type: str, reason: str, caused_by: MetricError | None = None) -> None:
        super().__init__(reason)
        self.type = type
        self.reason = reason
        self.caused_by = caused_by

    @property
    def kind(self) -> str:
        """The error type (``x_content_parse_exception``, ``illegal_argument_exception``...)."""
        return self.type

    @property
    def root_cause(self) -> MetricError:
        """The engine's guess: down through parse exceptions while the cause is one too."""
        error = self
        while (
            error.type in _PARSE_EXCEPTIONS
            and error.caused_by is not None
            and error.caused_by.type in _PARSE_EXCEPTIONS
        ):
            error = error.caused_by
        return error

    def cause_json(self) -> dict[str, Any]:
        """``{"type", "reason", "caused_by"?}``, nested down the chain."""
        body: dict[str, Any] = {"type": self.type, "reason": self.reason}
        if self.caused_by is not None:
            body["caused_by"] = self.caused_by.cause_json()
        return body

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of the engine's 400 answer."""
        root = self.root_cause
        return {"root_cause": [{"type": root.type, "reason": root.reason}], **self.cause_json()}


class Rating(Protocol):
    """A rated document: anything with these three attributes (``RatedDocument`` here, or the
    request parser's own)."""

    @property
    def index(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def rating(self) -> int: ...


@dataclass(frozen=True)
class RatedDocument:
    """``{"_index", "_id", "rating"}`` of a rated request. The engine refuses an empty index or id
    (``DocumentKey``)."""

    index: str
    id: str
    rating: int

    def __post_init__(self) -> None:
        if not self.index:
            raise MetricError(
                "illegal_argument_exception", "Index must be set for each rated document"
            )
        if not self.id:
            raise MetricError(
                "illegal_argument_exception", "DocId must be set for each rated document"
            )

    def to_json(self) -> dict[str, Any]:
        return {"_index": self.index, "_id": self.id, "rating": self.rating}


@dataclass(frozen=True)
class Hit:
    """One search hit, in rank order. ``json``, when given, is the hit object of the search
    response and is written back as it is (the engine writes the whole ``SearchHit``: ``sort``,
    ``_version``, ``fields``... when the search asked for them); otherwise ``_index``, ``_id``,
    ``_score`` (null for a NaN or missing score) and ``_source`` when there is one."""

    index: str
    id: str
    score: float | None = None
    source: Any = None
    json: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, hit: Mapping[str, Any]) -> Hit:
        """A hit of a search response (``hits.hits[i]``), kept whole for ``to_json``."""
        return cls(hit["_index"], hit["_id"], hit.get("_score"), hit.get("_source"), hit)

    @property
    def key(self) -> tuple[str, str]:
        """What ratings are joined on: (index without cluster alias, id)."""
        return bare_index(self.index), self.id

    def to_json(self) -> dict[str, Any]:
        if self.json is not None:
            return dict(self.json)
        score = None if self.score is None or math.isnan(self.score) else self.score
        body: dict[str, Any] = {"_index": self.index, "_id": self.id, "_score": score}
        if self.source is not None:
            body["_source"] = self.source
        return body


@dataclass(frozen=True)
class RatedHit:
    """A hit and its rating, ``None`` when the hit is not rated (``RatedSearchHit``)."""

    hit: Hit
    rating: int | None

    def to_json(self) -> dict[str, Any]:
        return {"hit": self.hit.to_json(), "rating": self.rating}


@dataclass(frozen=True)
class PrecisionDetail:
    relevant_docs_retrieved: int
    docs_retrieved: int

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": {
                "relevant_docs_retrieved": self.relevant_docs_retrieved,
                "docs_retrieved": self.docs_retrieved,
            }
        }


@dataclass(frozen=True)
class RecallDetail:
    relevant_docs_retrieved: int
    relevant_docs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "recall": {
                "relevant_docs_retrieved": self.relevant_docs_retrieved,
                "relevant_docs": self.relevant_docs,
            }
        }


@dataclass(frozen=True)
class ReciprocalRankDetail:
    first_relevant: int
    """The 1-based rank of the first relevant hit, -1 when there is none."""

    def to_json(self) -> dict[str, Any]:
        return {"mean_reciprocal_rank": {"first_relevant": self.first_relevant}}


@dataclass(frozen=True)
class DcgDetail:
    dcg: float
    ideal_dcg: float
    """0 unless ``normalize`` is on (and then 0 when no rating adds any gain)."""
    unrated_docs: int

    @property
    def normalized_dcg(self) -> float:
        return self.dcg / self.ideal_dcg if self.ideal_dcg != 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"dcg": json_double(self.dcg)}
        if self.ideal_dcg != 0:  # the engine leaves both out when there is no ideal DCG
            body["ideal_dcg"] = json_double(self.ideal_dcg)
            body["normalized_dcg"] = json_double(self.dcg / self.ideal_dcg)
        body["unrated_docs"] = self.unrated_docs
        return {"dcg": body}


@dataclass(frozen=True)
class ErrDetail:
    unrated_docs: int

    def to_json(self) -> dict[str, Any]:
        return {"expected_reciprocal_rank": {"unrated_docs": self.unrated_docs}}


MetricDetail = PrecisionDetail | RecallDetail | ReciprocalRankDetail | DcgDetail | ErrDetail


@dataclass(frozen=True)
class QueryQuality:
    """One rated request's result (``EvalQueryQuality``): what ``details.<id>`` holds."""

    query_id: str
    metric_score: float
    hits: tuple[RatedHit, ...]
    metric_details: MetricDetail

    @property
    def unrated_docs(self) -> tuple[tuple[str, str], ...]:
        """(index, id) of the hits without a rating, in rank order."""
        return tuple(rated.hit.key for rated in self.hits if rated.rating is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "metric_score": json_double(self.metric_score),
            "unrated_docs": [{"_index": index, "_id": id_} for index, id_ in self.unrated_docs],
            "hits": [rated.to_json() for rated in self.hits],
            "metric_details": self.metric_details.to_json(),
        }


__all__ = [
    "ILLEGAL_ARGUMENT",
    "PARSE_ERROR",
    "DcgDetail",
    "ErrDetail",
    "Flavor",
    "Hit",
    "MetricDetail",
    "MetricError",
    "PrecisionDetail",
    "QueryQuality",
    "RatedDocument",
    "RatedHit",
    "Rating",
    "RecallDetail",
    "ReciprocalRankDetail",
    "bare_index",
    "json_double",
]
