"""JSON on the search path, where a window of engine hits is parsed and a page written back on
every reranked search: orjson, several times faster than the standard library there.

A reranked answer must carry the numbers of each ``_source`` exactly as the engine stored them
(``1E2`` stays ``1E2``, ``1.10`` stays ``1.10``, ``-9223372036854775809`` stays an integer).
orjson writes a float in its own shortest form and turns integers outside 64 bits into floats, so
text holding a number it would not give back as written takes the exact path: the standard
library's parser with every float and out-of-range integer kept as its literal, written back
verbatim (``orjson.Fragment``). Which text needs it is decided by a C-speed scan that may say yes
too often (a long digit run or ``1e5`` inside a string), never too rarely:
- a run of 17 or more digits and dots (17+ significant digits, integers beyond 64 bits);
- a digit followed by an exponent (``1E2``, ``2e-05``);
- a fraction ending in a zero after another digit (``1.10``, ``2.00``);
- ``.0000`` (orjson writes numbers below 1e-5 with an exponent);
- ``-0`` as a whole number.
The standard library also takes over where orjson refuses output (lone surrogates, nesting
beyond 255 levels). Output is compact UTF-8 either way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# The shape of the text: digits and dots → "0", exponent letters → "e", signs → "-", anything
# else → " "; C-speed finds on it stand in for a slower regex scan of every byte.
_SHAPE = bytes(
    ord("0")
    if byte in b"0123456789."
    else ord("e")
    if byte in b"eE"
    else ord("-")
    if byte in b"+-"
    else ord(" ")
    for byte in range(256)
)
_LONG_RUN = b"0" * 17
_FRACTION = re.compile(rb"\.(?:\d+0(?!\d)|0000)")  # 1.10, 2.00, 0.00001
_MINUS_ZERO = re.compile(rb"-0(?![\d.eE])")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class ExactFloat(float):
    """A float that is written back as the literal it was read from."""

    __slots__ = ("literal",)
    literal: bytes


class ExactInt(int):
    """An integer orjson cannot hold (beyond 64 bits, or ``-0``), written back as read."""

    literal: bytes  # (int subclasses cannot have __slots__)


def _exact_float(text: str) -> ExactFloat:
    value = ExactFloat(text)
    value.literal = text.encode()
    return value


def _exact_int(text: str) -> int:
    value = int(text)
    if _INT64_MIN <= value <= _UINT64_MAX and text != "-0":
        return value
    exact = ExactInt(value)
    exact.literal = text.encode()
    return exact


def needs_exact_path(raw: bytes) -> bool:
    """Could orjson give back a number of ``raw`` differently from how it is written?"""
    shape = raw.translate(_SHAPE)
    if _LONG_RUN in shape or b"0e0" in shape or b"0e-" in shape:
        return True
    return _FRACTION.search(raw) is not None or _MINUS_ZERO.search(raw) is not None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Parse ``data``; raises ValueError when it is not JSON (``NaN`` and ``Infinity`` are not:
    the engines refuse them too) or is nested too deeply to parse."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        if needs_exact_path(raw):
            return json.loads(
                raw, parse_float=_exact_float, parse_int=_exact_int, parse_constant=_no_constant
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to parse") from None


def _verbatim(value: Any) -> orjson.Fragment:
    if isinstance(value, ExactFloat | ExactInt):
        return orjson.Fragment(value.literal)
    if isinstance(value, float):
        return orjson.Fragment(orjson.dumps(float(value)))
    if isinstance(value, int):  # a subclass such as bool is never passed here
        return orjson.Fragment(str(int(value)).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; raises ValueError for a value nested too deeply to write."""
    try:
        return _encoded(value)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to write") from None


def _encoded(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_verbatim, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, or nesting beyond 255 levels
        pass
    # Only the part orjson refused is written here, one level at a time; each child goes back
    # to orjson, so a deep subtree costs a few retries, not a slow writer.
    if isinstance(value, str):
        return json.dumps(value).encode()  # ASCII escapes keep a lone surrogate writable
    if isinstance(value, dict):
        members = [_encoded(str(key)) + b":" + _encoded(item) for key, item in value.items()]
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join([_encoded(item) for item in value]) + b"]"
    if isinstance(value, int) and not isinstance(value, bool):  # beyond 64 bits
        return str(value).encode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


__all__ = ["ExactFloat", "ExactInt", "dumps", "loads", "needs_exact_path"]
