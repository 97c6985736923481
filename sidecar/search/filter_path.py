"""The engines' ``filter_path`` response filtering, as a pure function on parsed JSON.

The sidecar asks the engine without the client's ``filter_path`` (the merge needs every hit's
``_id``, ``_score`` and ``_source``) and filters the reranked answer here:
``apply_filter_path(response, parse_filter_path(values, flavor=...))`` gives what the engine would
have answered had it built the reranked response itself. Checked against real OpenSearch 2.19 /
3.6 and Elasticsearch 8.19 (``tests/sidecar/test_filter_path.py``). The flavor is the engine's
(its answers carry ``X-Elastic-Product``); ``keeps_any(fp, ("hits", "hits"))`` is False when the
filter removes every hit, so a rerank could not show and the engine may filter its own answer.

Semantics (both engines unless said otherwise):

- **Parameter.** A comma-separated list; every item is trimmed of whitespace (Java ``trim``:
  characters up to U+0020) and empty items are dropped, so ``filter_path=`` or ``filter_path=,``
  filters nothing. Given several times, the engines keep only the **last** value (their query
  string parser overwrites), not the union: ``parse_filter_path`` takes a list and does the same.
- **Includes / excludes.** An item starting with ``-`` excludes, the others include. With both,
  the includes are applied first and the excludes to what remains (two stacked filters).
- **Paths.** Segments are separated by ``.``; ``\\.`` escapes a dot so that a segment can name a
  field whose name contains dots (``docs\\.count``); unescaped, ``docs.count`` looks for ``count``
  under ``docs`` and never matches a field named ``docs.count``. ``*`` inside a segment matches
  any characters of one field name (dots included); ``**`` alone as a segment matches **one or
  more** levels (not zero: ``**.took`` does not keep the top-level ``took``; ``a.**`` keeps
  everything under ``a`` but not a scalar ``a``). Matching is case-sensitive.
- **Arrays** are transparent: a path never names an index, and every element of an array is
  filtered with the path that reached the array (nested arrays too).
- **Keeping.** An included field keeps its whole value. A field reached by a partial path keeps
  what its children keep; a scalar (or null) reached by a partial include path is dropped, by a
  partial exclude path kept. Objects and arrays left empty by the filter are dropped, up to the
  root; the root object is always written, so a response where nothing matches is ``{}``.
  Objects and arrays that were empty to begin with are dropped too when reached by a partial
  include path, and kept whole when included whole.
- Duplicate and overlapping paths are an OR (``a`` and ``a.b``: all of ``a``).

Differences found between the engines (``flavor``):

- **Empty containers under an exclusion.** An object or array that was *already empty* in the
  response and is reached by a partial exclude path (``-hits.hits._source`` on a search with no
  hits, whose ``"hits": []`` is reached by it; ``-aggregations.t.buckets.key`` with
  ``"buckets": []``) is **kept** by Elasticsearch 8.19 (its provider ``FilterPathBasedFilter``
  overrides Jackson's ``includeEmptyArray`` / ``includeEmptyObject`` to keep them, citing
  elastic/elasticsearch#109668) and **dropped** by OpenSearch 2.19 and 3.6 (Jackson's defaults).
  Containers emptied by the filter are dropped by both. This one shows on ordinary searches.
- **A lone ``-``** (an exclusion of nothing): Elasticsearch answers the unfiltered response;
  OpenSearch answers ``400 illegal_argument_exception: filters cannot be null or empty``.
  ``parse_filter_path`` raises ``FilterPathError`` for the OpenSearch flavor: forward such a
  request untouched and let the engine answer its own error.
- **Odd paths** (no search response has such field names, but the parse differs). Elasticsearch
  splits at the first dot unless it is the first character, in which case the rest is one last
  segment: ``.a`` names a field ``.a``, ``a..b`` names ``.b`` under ``a``, ``a.`` names ``""``
  under ``a``. OpenSearch splits at every unescaped dot and drops trailing empty segments (Java's
  ``String.split``): ``a..b`` is ``b`` under ``""`` under ``a``, ``a.`` is ``a``, and ``...``
  matches nothing. A backslash followed by any other character also becomes a ``.`` (the Java
  unescaping is ``replaceAll("\\\\.", ".")``, a regex whose ``.`` is any character): always in
  OpenSearch, in Elasticsearch only in a segment that also holds an escaped dot.

Numbers: when it filters, the engine re-serialises the ``_source`` (``1.50`` comes back as
``1.5``), which parses to the same JSON value; compare parsed JSON, not bytes.

Sources read (to learn the rules, nothing copied): elastic/elasticsearch
``libs/x-content/src/main/java/org/elasticsearch/xcontent/support/filtering/FilterPath.java``,
``libs/x-content/impl/src/main/java/org/elasticsearch/xcontent/provider/filtering/FilterPathBasedFilter.java``,
``libs/x-content/impl/.../provider/json/JsonXContentGenerator.java``,
``server/src/main/java/org/elasticsearch/rest/AbstractRestChannel.java``;
opensearch-project/OpenSearch ``libs/core/src/main/java/org/opensearch/core/xcontent/filtering/
FilterPath.java`` and ``FilterPathBasedFilter.java``,
``libs/x-content/src/main/java/org/opensearch/common/xcontent/json/JsonXContentGenerator.java``,
``server/src/main/java/org/opensearch/rest/AbstractRestChannel.java``; and Jackson's
``FilteringGeneratorDelegate`` / ``TokenFilterContext`` behaviour they rely on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

__all__ = [
    "FilterPath",
    "FilterPathError",
    "Flavor",
    "apply_filter_path",
    "keeps_any",
    "parse_filter_path",
]

Flavor = Literal["elasticsearch", "opensearch"]

Path = tuple[str, ...]
# A position in a path: the segment ``path[index]`` is tested against the names of one level.
_State = tuple[Path, int]

_DOUBLE_WILDCARD: Final = "**"
# Java's String.trim() strips every char up to U+0020.
_JAVA_TRIM: Final = "".join(chr(c) for c in range(0x21))
# Java's regex ``\\.``: a backslash and any character but a line terminator.
_JAVA_ESCAPE: Final = re.compile("\\\\[^\n\r\u0085\u2028\u2029]")
_OPENSEARCH_SPLIT: Final = re.compile(r"(?<!\\)\.")


class FilterPathError(ValueError):
    """A ``filter_path`` the engine refuses (it answers a 400 itself)."""


@dataclass(frozen=True)
class FilterPath:
    """A parsed ``filter_path``: the include and exclude paths, each a tuple of segments."""

    includes: tuple[Path, ...] = ()
    excludes: tuple[Path, ...] = ()
    flavor: Flavor = "elasticsearch"

    @property
    def is_empty(self) -> bool:
        """True when the filter changes nothing: ``apply_filter_path`` returns its input."""
        return not self.includes and not self.excludes


def _java_trim(text: str) -> str:
    return text.strip(_JAVA_TRIM)


def _java_unescape(segment: str) -> str:
    return _JAVA_ESCAPE.sub(".", segment)


def _split_elasticsearch(text: str) -> Path:
    segments: list[str] = []
    rest = text
    while True:
        split = -1
        escapes = False
        i = 0
        while i < len(rest):
            char = rest[i]
            if char == ".":
                split = i
                break
            if char == "\\" and i + 1 < len(rest) and rest[i + 1] == ".":
                i += 1
                escapes = True
            i += 1
        if split > 0:
            field = rest[:split]
            segments.append(_java_unescape(field) if escapes else field)
            rest = rest[split + 1 :]
        else:
            # No dot, or a dot in first position: the rest is one last segment.
            segments.append(_java_unescape(rest) if escapes else rest)
            return tuple(segments)


def _split_opensearch(text: str) -> Path:
    # Java's String.split: every dot not preceded by a backslash, trailing empty strings removed.
    segments = _OPENSEARCH_SPLIT.split(text)
    while segments and not segments[-1]:
        segments.pop()
    return tuple(_java_unescape(segment) for segment in segments)


def parse_filter_path(
    values: str | Sequence[str], *, flavor: Flavor = "elasticsearch"
) -> FilterPath:
    """Parse the ``filter_path`` URL parameter: one value, or every value the query string gave
    (the engines use only the last one). Raises ``FilterPathError`` where the engine answers 400.
    """
    if isinstance(values, str):
        value = values
    elif values:
        value = values[-1]
    else:
        return FilterPath(flavor=flavor)
    tokens = {t for t in (_java_trim(item) for item in value.split(",")) if t}
    split = _split_elasticsearch if flavor == "elasticsearch" else _split_opensearch
    includes: list[Path] = []
    excludes: list[Path] = []
    has_exclusion = False
    for token in sorted(tokens):
        if token.startswith("-"):
            has_exclusion = True
            text = _java_trim(token[1:])
            if text:
                excludes.append(split(text))
        else:
            includes.append(split(token))
    if has_exclusion and not excludes and flavor == "opensearch":
        raise FilterPathError("filters cannot be null or empty")
    return FilterPath(tuple(includes), tuple(excludes), flavor)


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> Callable[[str], bool]:
    """Elasticsearch/OpenSearch ``Glob.globMatch``: ``*`` is any run of characters, the rest
    literal, the whole name must match."""
    if "*" not in pattern:
        return pattern.__eq__
    if pattern.strip("*") == "":
        return lambda name: True
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
    return lambda name: regex.fullmatch(name) is not None


class _Matched:
    """The name matches a whole path: its value is kept (include) or removed (exclude)."""


_MATCHED: Final = _Matched()


def _step(name: str, states: Sequence[_State]) -> _Matched | list[_State]:
    """Where the paths are after the field ``name``: matched, or the positions to test on its
    children (none: no path goes through it)."""
    following: dict[_State, None] = {}
    for path, index in states:
        segment = path[index]
        if segment == _DOUBLE_WILDCARD:
            if index + 1 == len(path):
                return _MATCHED
            following[(path, index + 1)] = None
            following[(path, index)] = None
        elif _glob(segment)(name):
            if index + 1 == len(path):
                return _MATCHED
            following[(path, index + 1)] = None
    return list(following)


_DROP: Final = object()


def _filter(value: Any, states: list[_State], inclusive: bool, keep_empty: bool) -> Any:
    """``value`` reached by partial paths: what is left of it, or ``_DROP``."""
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, child in value.items():
            step = _step(key, states)
            if step is _MATCHED:
                if inclusive:
                    kept[key] = child
            elif not step:
                if not inclusive:
                    kept[key] = child
            else:
                assert isinstance(step, list)
                result = _filter(child, step, inclusive, keep_empty)
                if result is not _DROP:
                    kept[key] = result
        if kept or (keep_empty and not value):
            return kept
        return _DROP
    if isinstance(value, list):
        items = [_filter(item, states, inclusive, keep_empty) for item in value]
        left = [item for item in items if item is not _DROP]
        if left or (keep_empty and not value):
            return left
        return _DROP
    return _DROP if inclusive else value


def _pass(document: Any, paths: tuple[Path, ...], inclusive: bool, flavor: Flavor) -> Any:
    # An empty path (OpenSearch, from a filter of dots only) matches nothing.
    states: list[_State] = [(path, 0) for path in paths if path]
    # Elasticsearch keeps containers that were empty to start with under an exclusion.
    keep_empty = flavor == "elasticsearch" and not inclusive
    result = _filter(document, states, inclusive, keep_empty)
    if isinstance(document, dict) and result is _DROP:
        return {}  # the root object is always written
    return None if result is _DROP else result


def apply_filter_path(document: Any, filter: FilterPath) -> Any:
    """What the engine answers for ``document`` under ``filter``.

    ``document`` is parsed JSON (dicts, lists, scalars) and is not modified; kept subtrees are
    shared with it, not copied. A response object where nothing is kept becomes ``{}``; a
    non-object root where nothing is kept (``_cat`` APIs with ``format=json``) gives ``None``,
    for the empty body the engine sends then.
    """
    result = document
    if filter.includes:
        result = _pass(result, filter.includes, True, filter.flavor)
    if filter.excludes and result is not None:
        result = _pass(result, filter.excludes, False, filter.flavor)
    return result


def keeps_any(filter: FilterPath, path: Sequence[str]) -> bool:
    """False when ``filter`` certainly removes everything at and under ``path`` (field names,
    arrays transparent) in any response, e.g. ``keeps_any(fp, ("hits", "hits"))`` is False for
    ``filter_path=took,_shards``: reranking would not show. True when something may be kept."""
    if filter.includes:
        states: list[_State] = [(p, 0) for p in filter.includes if p]
        for name in path:
            step = _step(name, states)
            if step is _MATCHED:
                break
            assert isinstance(step, list)
            if not step:
                return False
            states = step
    if filter.excludes:
        states = [(p, 0) for p in filter.excludes if p]
        for name in path:
            step = _step(name, states)
            if step is _MATCHED:
                return False
            assert isinstance(step, list)
            if not step:
                break
            states = step
    return True
