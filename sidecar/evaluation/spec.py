"""A ``_rank_eval`` body, read and checked as the engines read and check it.

The body (Elasticsearch's and OpenSearch's rank-eval module, the same code)::

    {"requests": [{"id": "q1", "request": {"query": ...}, "summary_fields": ["title"],
                   "ratings": [{"_index": "products", "_id": "1", "rating": 3}, ...]},
                  {"id": "q2", "template_id": "t", "params": {"text": "red"}, "ratings": [...]}],
     "metric": {"precision": {"k": 10, "relevant_rating_threshold": 1}},
     "templates": [{"id": "t", "template": {"source": {"query": {"match": {"t": "{{text}}"}}}}}],
     "max_concurrent_searches": 10}

plus, for the sidecar only, ``ext.rerank`` at the top level: the rerank settings of every rated
request that has none of its own (it never reaches the engine).

Every check the engines make is made here, so that a body the engine would refuse is never
evaluated: two of ``request`` and ``template_id``/``params``, neither, params without a template,
a rated request with aggregations, suggest, highlight, explain or profile, a duplicate rating of
one document, no requests, no metric, an unknown field. The error names the offending key path;
where the engine itself can answer (it has the rank-eval module), its own answer is given
instead (``sidecar.proxy.rank_eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidecar.evaluation.metrics import Metric, parse_metric
from sidecar.evaluation.models import MetricError, RatedDocument
from sidecar.evaluation.parsing import parse_rated_document, validate_ratings

SPEC_FIELDS = frozenset({"requests", "metric", "templates", "max_concurrent_searches", "ext"})
REQUEST_FIELDS = frozenset({"id", "request", "ratings", "params", "summary_fields", "template_id"})
RATING_FIELDS = frozenset({"_index", "_id", "rating"})
FORBIDDEN_IN_REQUEST = (
    ("suggest", "Query in rated requests should not contain a suggest section."),
    ("aggs", "Query in rated requests should not contain aggregations."),
    ("aggregations", "Query in rated requests should not contain aggregations."),
    ("highlight", "Query in rated requests should not contain a highlighter section."),
)
MAX_CONCURRENT_SEARCHES = 10


class RankEvalInputError(ValueError):
    """The body is not a valid ``_rank_eval`` request; ``path`` names the key
    (``requests.2.ratings.0.rating``), ``kind`` the engine's error type; ``engine`` the engine's
    own error object where the sidecar knows it exactly (metric and rating errors)."""

    def __init__(
        self,
        path: str,
        reason: str,
        kind: str = "illegal_argument_exception",
        engine: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"[{path}] {reason}" if path else reason)
        self.path = path
        self.reason = reason
        self.kind = kind
        self.engine = engine

    @classmethod
    def of(cls, path: str, error: MetricError) -> RankEvalInputError:
        """The engine's error (as the metrics module builds it), at ``path``."""
        root = error.root_cause
        return cls(path, root.reason, root.type, error.to_json())


@dataclass(frozen=True)
class RatedRequest:
    id: str
    ratings: tuple[RatedDocument, ...]
    request: dict[str, Any] | None = None
    template_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    summary_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankEvalSpec:
    requests: tuple[RatedRequest, ...]
    metric: Metric
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Template id → the script object (``{"source": ...}``, ``lang`` mustache)."""
    max_concurrent_searches: int = MAX_CONCURRENT_SEARCHES
    rerank: dict[str, Any] | None = None
    """The top-level ``ext.rerank``: applies to every rated request without its own."""


def _unknown(raw: dict[str, Any], known: frozenset[str], where: str) -> None:
    for key in raw:
        if key not in known:
            path = f"{where}.{key}" if where else key
            raise RankEvalInputError(path, "unknown field", "x_content_parse_exception")


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RankEvalInputError(path, "must be a string", "x_content_parse_exception")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RankEvalInputError(path, "must be an object", "x_content_parse_exception")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise RankEvalInputError(path, "must be an array", "x_content_parse_exception")
    return value


def _rating(raw: Any, path: str) -> RatedDocument:
    try:
        return parse_rated_document(_object(raw, path))
    except MetricError as exc:
        raise RankEvalInputError.of(path, exc) from None


def check_evaluated_query(request: dict[str, Any], path: str) -> None:
    """What the engines refuse in a rated request's search (also a rendered template's)."""
    for key, reason in FORBIDDEN_IN_REQUEST:
        if key in request:
            raise RankEvalInputError(f"{path}.{key}", reason)
    if request.get("explain") is True:
        raise RankEvalInputError(
            f"{path}.explain", "Query in rated requests should not use explain."
        )
    if request.get("profile") is True:
        raise RankEvalInputError(
            f"{path}.profile", "Query in rated requests should not use profile."
        )


def _rated_request(raw: Any, path: str) -> RatedRequest:
    item = _object(raw, path)
    _unknown(item, REQUEST_FIELDS, path)
    if "id" not in item:
        raise RankEvalInputError(f"{path}.id", "is required", "x_content_parse_exception")
    request_id = _string(item["id"], f"{path}.id")
    if "ratings" not in item:
        raise RankEvalInputError(f"{path}.ratings", "is required", "x_content_parse_exception")
    ratings = tuple(
        _rating(r, f"{path}.ratings.{i}")
        for i, r in enumerate(_array(item["ratings"], f"{path}.ratings"))
    )
    request = _object(item["request"], f"{path}.request") if "request" in item else None
    params = _object(item["params"], f"{path}.params") if "params" in item else {}
    template_id = (
        _string(item["template_id"], f"{path}.template_id") if "template_id" in item else None
    )
    fields = tuple(
        _string(f, f"{path}.summary_fields.{i}")
        for i, f in enumerate(_array(item.get("summary_fields", []), f"{path}.summary_fields"))
    )
    ambiguous = (
        "Ambiguous rated request: Set both, verbatim test request and test request template "
        "parameters."
    )
    if request is not None and (params or template_id is not None):
        raise RankEvalInputError(f"{path}.request", ambiguous)
    if not params and request is None:
        raise RankEvalInputError(
            f"{path}.request",
            "Need to set at least test request or test request template parameters.",
        )
    if params and template_id is None:
        raise RankEvalInputError(
            f"{path}.template_id",
            "If template parameters are supplied need to set id of template to apply them to too.",
        )
    if request is not None:
        check_evaluated_query(request, f"{path}.request")
    try:
        validate_ratings(request_id, ratings)
    except MetricError as exc:
        raise RankEvalInputError.of(f"{path}.ratings", exc) from None
    return RatedRequest(request_id, ratings, request, template_id, dict(params), fields)


def _template(raw: Any, path: str) -> tuple[str, dict[str, Any]]:
    item = _object(raw, path)
    _unknown(item, frozenset({"id", "template"}), path)
    for key in ("id", "template"):
        if key not in item:
            raise RankEvalInputError(f"{path}.{key}", "is required", "x_content_parse_exception")
    script = item["template"]
    if isinstance(script, str):
        script = {"source": script}
    script = _object(script, f"{path}.template")
    if "source" not in script and "inline" not in script and "id" not in script:
        raise RankEvalInputError(f"{path}.template", "must hold a source", "parsing_exception")
    return _string(item["id"], f"{path}.id"), script


def parse_spec(body: Any) -> RankEvalSpec:
    """The engine's reading of a ``_rank_eval`` body. Raises RankEvalInputError."""
    raw = _object(body, "")
    _unknown(raw, SPEC_FIELDS, "")
    if "requests" not in raw:
        raise RankEvalInputError("requests", "is required", "x_content_parse_exception")
    if "metric" not in raw:
        raise RankEvalInputError("metric", "is required", "x_content_parse_exception")
    requests = tuple(
        _rated_request(r, f"requests.{i}")
        for i, r in enumerate(_array(raw["requests"], "requests"))
    )
    if not requests:
        raise RankEvalInputError(
            "requests",
            "Cannot evaluate ranking if no search requests with rated results are provided. "
            "Seen: []",
        )
    try:
        metric = parse_metric(_object(raw["metric"], "metric"))
    except MetricError as exc:
        raise RankEvalInputError.of("metric", exc) from None
    templates = dict(
        _template(t, f"templates.{i}")
        for i, t in enumerate(_array(raw.get("templates", []), "templates"))
    )
    for i, request in enumerate(requests):
        if request.request is None and not templates:
            raise RankEvalInputError(
                f"requests.{i}",
                "Cannot evaluate ranking if neither template nor evaluation request is provided. "
                f"Seen for request id: {request.id}",
            )
        if request.template_id is not None and request.template_id not in templates:
            raise RankEvalInputError(
                f"requests.{i}.template_id", f"no template with id [{request.template_id}]"
            )
    concurrency = raw.get("max_concurrent_searches", MAX_CONCURRENT_SEARCHES)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise RankEvalInputError(
            "max_concurrent_searches", "must be a positive integer", "x_content_parse_exception"
        )
    ext = raw.get("ext")
    rerank = None
    if ext is not None:
        ext = _object(ext, "ext")
        _unknown(ext, frozenset({"rerank"}), "ext")
        rerank = _object(ext["rerank"], "ext.rerank") if "rerank" in ext else None
    return RankEvalSpec(requests, metric, templates, concurrency, rerank)


__all__ = [
    "RankEvalInputError",
    "RankEvalSpec",
    "RatedDocument",
    "RatedRequest",
    "check_evaluated_query",
    "parse_spec",
]
