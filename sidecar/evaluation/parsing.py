"""Reading the engines' JSON as their ``ObjectParser`` / ``ConstructingObjectParser`` read it:
fields in document order, numbers and booleans coerced from strings as Java coerces them
(``Double.parseDouble``, ``Integer`` ranges), and the same error, cause by cause, for what they
refuse (``MetricError``), with Elasticsearch's "did you mean" suggestions. Used for the metric
object and the ratings of a ``_rank_eval`` body.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.evaluation.models import (
    ILLEGAL_ARGUMENT,
    INT_MAX,
    INT_MIN,
    PARSE_ERROR,
    Flavor,
    MetricError,
    RatedDocument,
    Rating,
)

_DECIMAL = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_HEX = r"0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
_JAVA_DOUBLE = re.compile(rf"([+-]?)(?:(NaN|Infinity)|({_DECIMAL})[fFdD]?|({_HEX})[fFdD]?)")
_JAVA_BLANKS = "".join(chr(c) for c in range(33))


def json_token(value: Any) -> str:
    """The parser token a parsed JSON value was (``VALUE_NUMBER``, ``START_OBJECT``...)."""
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, Mapping):
        return "START_OBJECT"
    if isinstance(value, list | tuple):
        return "START_ARRAY"
    return "VALUE_EMBEDDED_OBJECT"


def _parse_double(text: str) -> float:
    """``Double.parseDouble``: Java's syntax (suffixes, hex, NaN, Infinity), blanks trimmed."""
    trimmed = text.strip(_JAVA_BLANKS)
    if not trimmed:
        raise MetricError("number_format_exception", "empty String")
    match = _JAVA_DOUBLE.fullmatch(trimmed)
    if match is None:
        raise MetricError("number_format_exception", f'For input string: "{trimmed}"')
    sign, special, decimal, hexadecimal = match.groups()
    if special:
        value = math.nan if special == "NaN" else math.inf
    else:
        value = float(decimal) if decimal else float.fromhex(hexadecimal)
    return -value if sign == "-" else value


def _int(value: Any) -> int:
    """``XContentParser.intValue()`` of a number or a string (coerced, fractions truncated)."""
    if isinstance(value, str):
        number = _parse_double(value)
        if number < INT_MIN or number > INT_MAX:
            raise MetricError(ILLEGAL_ARGUMENT, f"Value [{value}] is out of range for an integer")
        return 0 if math.isnan(number) else int(number)
    if not INT_MIN <= value <= INT_MAX:
        raise MetricError(
            "input_coercion_exception",
            f"Numeric value ({value!r}) out of range of int (-2147483648 - 2147483647)",
        )
    return int(value)


def _bool(value: Any) -> bool:
    """``XContentParser.booleanValue()``: a boolean, or exactly ``"true"``/``"false"`` (or "")."""
    if isinstance(value, bool):
        return value
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    reason = f"Failed to parse value [{value}] as only [true] or [false] are allowed."
    raise MetricError(ILLEGAL_ARGUMENT, reason)


_READERS: dict[str, tuple[frozenset[str], Callable[[Any], Any]]] = {
    "int": (frozenset({"VALUE_NUMBER", "VALUE_STRING"}), _int),
    "bool": (frozenset({"VALUE_BOOLEAN", "VALUE_STRING"}), _bool),
    "string": (frozenset({"VALUE_STRING"}), str),
}


@dataclass(frozen=True)
class ObjectParser:
    """One engine parser: its name (as its errors say it), its fields in declaration order
    (every one a constructor argument), the required ones, and the constructor."""

    name: str
    fields: tuple[tuple[str, str], ...]
    build: Callable[[dict[str, Any]], Any]
    required: frozenset[str] = frozenset()

    def _read(self, field: str, kind: str, value: Any) -> Any:
        tokens, read = _READERS[kind]
        token = json_token(value)
        if token not in tokens:
            reason = f"[{self.name}] {field} doesn't support values of type: {token}"
            raise MetricError(PARSE_ERROR, reason)
        try:
            return read(value)
        except MetricError as exc:
            reason = f"[{self.name}] failed to parse field [{field}]"
            raise MetricError(PARSE_ERROR, reason, exc) from None

    def _build(self, args: dict[str, Any]) -> Any:
        try:
            return self.build(args)
        except MetricError as exc:
            reason = f"Failed to build [{self.name}] after last required field arrived"
            raise MetricError(PARSE_ERROR, reason, exc) from None

    def parse(self, raw: Any, flavor: Flavor) -> Any:
        """Fields in document order; the object is built as soon as every argument is in (an
        error then names the last field), else at the end, after the required check."""
        if not isinstance(raw, Mapping):
            reason = f"[{self.name}] Expected START_OBJECT but was: {json_token(raw)}"
            raise MetricError(PARSE_ERROR, reason)
        kinds = dict(self.fields)
        args: dict[str, Any] = {}
        built: Any = None
        for field, value in raw.items():
            if field not in kinds:
                reason = f"[{self.name}] unknown field [{field}]"
                if flavor == "elasticsearch":
                    reason += did_you_mean(field, list(kinds))
                raise MetricError(PARSE_ERROR, reason)
            args[field] = self._read(field, kinds[field], value)
            if built is None and len(args) == len(kinds):
                try:
                    built = self._build(args)
                except MetricError as exc:
                    reason = f"[{self.name}] failed to parse field [{field}]"
                    raise MetricError(PARSE_ERROR, reason, exc) from None
        if built is not None:
            return built
        missing = [
            field for field, _ in self.fields if field in self.required and field not in args
        ]
        if missing:
            raise MetricError(ILLEGAL_ARGUMENT, f"Required [{', '.join(missing)}]")
        return self._build(args)


def _float32(value: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def _lucene_similarity(target: str, other: str) -> float:
    """Lucene's ``LevenshteinDistance.getDistance``: 1 − edits / longer length, in floats."""
    n, m = len(target), len(other)
    if n == 0 or m == 0:
        return 1.0 if n == m else 0.0
    previous = list(range(n + 1))
    for j, char in enumerate(other, start=1):
        current = [j] + [0] * n
        for i in range(1, n + 1):
            cost = 0 if target[i - 1] == char else 1
            current[i] = min(current[i - 1] + 1, previous[i] + 1, previous[i - 1] + cost)
        previous = current
    return _float32(1.0 - _float32(previous[n] / max(n, m)))


def did_you_mean(field: str, candidates: Sequence[str]) -> str:
    """Elasticsearch's ``SuggestingErrorOnUnknown`` tail (OpenSearch adds none)."""
    scored = [(_lucene_similarity(field, c), c) for c in candidates]
    close = sorted((s for s in scored if s[0] > 0.5), key=lambda s: (-s[0], s[1]))
    if not close:
        return ""
    names = [name for _, name in close]
    return (
        f" did you mean [{names[0]}]?"
        if len(names) == 1
        else f" did you mean any of [{', '.join(names)}]?"
    )


# --- Ratings ------------------------------------------------------------------------------------

_RATED_DOCUMENT = ObjectParser(
    "rated_document",
    (("_index", "string"), ("_id", "string"), ("rating", "int")),
    lambda a: RatedDocument(a["_index"], a["_id"], a["rating"]),
    frozenset({"_index", "_id", "rating"}),
)


def parse_rated_document(raw: Any, *, flavor: Flavor = "opensearch") -> RatedDocument:
    """One entry of a rated request's ``ratings``, read as the engine reads it (``"2"`` and
    ``2.5`` are rating 2). Raises the engine's error, from ``[rank_eval] failed to parse field
    [requests]`` down."""
    try:
        document: RatedDocument = _RATED_DOCUMENT.parse(raw, flavor)
        return document
    except MetricError as exc:
        raise MetricError(
            PARSE_ERROR,
            "[rank_eval] failed to parse field [requests]",
            MetricError(PARSE_ERROR, "[request] failed to parse field [ratings]", exc),
        ) from None


def _duplicate(request_id: str, index: str, id_: str) -> MetricError:
    key = ('{"_index":"' + index + '","_id":"' + id_ + '"}').replace("\n", "").replace("  ", " ")
    reason = f"Found duplicate rated document key [{key}] in evaluation request [{request_id}]"
    return MetricError(
        PARSE_ERROR,
        "[rank_eval] failed to parse field [requests]",
        MetricError(
            PARSE_ERROR,
            "Failed to build [request] after last required field arrived",
            MetricError(ILLEGAL_ARGUMENT, reason),
        ),
    )


def validate_ratings(request_id: str, ratings: Sequence[Rating]) -> None:
    """``RatedRequest``'s check: one rating per (``_index``, ``_id``), or the engine's 400."""
    seen: set[tuple[str, str]] = set()
    for doc in ratings:
        if (doc.index, doc.id) in seen:
            raise _duplicate(request_id, doc.index, doc.id)
        seen.add((doc.index, doc.id))


__all__ = ["ObjectParser", "did_you_mean", "json_token", "parse_rated_document", "validate_ratings"]
