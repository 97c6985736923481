"""Finding the text to rerank against in a search body.

Order (DESIGN.md): ``ext.rerank.query`` (read by the caller), else OpenSearch's rerank-processor
syntax ``ext.rerank.query_context.query_text`` / ``query_text_path``, else the full-text clauses
of the query DSL: match, match_phrase, match_phrase_prefix, match_bool_prefix, multi_match,
combined_fields, query_string, simple_query_string, found inside bool (must, should), dis_max,
function_score, script_score, nested, has_child, has_parent, constant_score and boosting
(positive). Filters and must_not never count: they do not describe what the user looks for.
Several clauses give their texts joined by a space, each text once, in the order they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

FULL_TEXT = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
QUERY_FIELD = ("multi_match", "combined_fields")
LUCENE_SYNTAX = ("query_string", "simple_query_string")
WRAPPERS_ONE = ("function_score", "script_score", "nested", "has_child", "has_parent")

# field:, boolean operators and the syntax characters of query_string / simple_query_string.
_FIELD_PREFIX = re.compile(r"(?<![\w\\])[\w.*]+:(?=\S)")
_OPERATORS = re.compile(r"(?<!\S)(AND|OR|NOT|&&|\|\|)(?!\S)")
_SYNTAX = re.compile(r'(?<=\w)[~^][\d.]*|[+\-|!(){}\[\]^"~*?\\/]')


class QueryTextPathError(ValueError):
    """``query_text_path`` does not lead to a string in the body; the message says where."""


def strip_lucene_syntax(text: str) -> str:
    """``title:(red AND "running shoes") -brand:acme`` → ``red running shoes acme``."""
    text = _FIELD_PREFIX.sub(" ", text)
    text = _OPERATORS.sub(" ", text)
    text = _SYNTAX.sub(" ", text)
    return " ".join(text.split())


def _clause_text(value: Any) -> str | None:
    """``{"field": "text"}`` or ``{"field": {"query": "text", ...}}`` → text."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    (inner,) = value.values()
    if isinstance(inner, Mapping):
        inner = inner.get("query")
    return (
        str(inner) if isinstance(inner, str | int | float) and not isinstance(inner, bool) else None
    )


def _texts(query: Any) -> Iterator[str]:
    if not isinstance(query, Mapping):
        return
    for kind, value in query.items():
        if kind in FULL_TEXT:
            text = _clause_text(value)
            if text:
                yield text
        elif kind in QUERY_FIELD and isinstance(value, Mapping):
            text = value.get("query")
            if isinstance(text, str) and text:
                yield text
        elif kind in LUCENE_SYNTAX and isinstance(value, Mapping):
            text = value.get("query")
            if isinstance(text, str):
                stripped = strip_lucene_syntax(text)
                if stripped:
                    yield stripped
        elif kind == "bool" and isinstance(value, Mapping):
            for occur in ("must", "should"):
                clauses = value.get(occur, [])
                for clause in clauses if isinstance(clauses, list) else [clauses]:
                    yield from _texts(clause)
        elif kind == "dis_max" and isinstance(value, Mapping):
            for clause in value.get("queries", []):
                yield from _texts(clause)
        elif kind in WRAPPERS_ONE and isinstance(value, Mapping):
            yield from _texts(value.get("query"))
        elif kind == "constant_score" and isinstance(value, Mapping):
            yield from _texts(value.get("filter"))
        elif kind == "boosting" and isinstance(value, Mapping):
            yield from _texts(value.get("positive"))


def text_from_dsl(query: Any) -> str | None:
    """The full-text clauses' texts of a query DSL, joined; None when there are none."""
    seen: list[str] = []
    for text in _texts(query):
        if text not in seen:
            seen.append(text)
    return " ".join(seen) if seen else None


def resolve_path(body: Mapping[str, Any], path: str) -> str:
    """OpenSearch's ``query_text_path``: a dot path (``$.`` prefix allowed) into the body."""
    node: Any = body
    walked: list[str] = []
    for part in path.removeprefix("$.").split("."):
        walked.append(part)
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise QueryTextPathError(
                f"query_text_path {path!r} finds nothing at {'.'.join(walked)!r}"
            )
    if not isinstance(node, str):
        raise QueryTextPathError(
            f"query_text_path {path!r} leads to a {type(node).__name__}, not text"
        )
    return node


def query_text(
    body: Mapping[str, Any], query_context: Mapping[str, Any] | None = None
) -> str | None:
    """The text to rerank against, from OpenSearch's query_context or else the DSL."""
    if query_context:
        text = query_context.get("query_text")
        if isinstance(text, str) and text.strip():
            return text
        path = query_context.get("query_text_path")
        if isinstance(path, str):
            return resolve_path(body, path)
    return text_from_dsl(body.get("query"))
