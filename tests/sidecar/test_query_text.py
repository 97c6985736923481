"""Query text comes from OpenSearch's query_context or from every full-text clause of the DSL."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sidecar.search.query_text import (
    QueryTextPathError,
    query_text,
    strip_lucene_syntax,
    text_from_dsl,
)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"match": {"title": "red shoes"}}, "red shoes"),
        ({"match": {"title": {"query": "red shoes", "operator": "and"}}}, "red shoes"),
        ({"match_phrase": {"title": "red shoes"}}, "red shoes"),
        ({"match_phrase_prefix": {"title": {"query": "red sho"}}}, "red sho"),
        ({"multi_match": {"query": "red shoes", "fields": ["title", "body"]}}, "red shoes"),
        ({"combined_fields": {"query": "red shoes", "fields": ["title"]}}, "red shoes"),
        (
            {"query_string": {"query": 'title:(red AND "running shoes") -brand:acme'}},
            "red running shoes acme",
        ),
        (
            {"simple_query_string": {"query": '"red shoes" +trail -road | sneaker*'}},
            "red shoes trail road sneaker",
        ),
        (
            {"bool": {"must": [{"match": {"t": "red"}}], "should": {"match": {"t": "shoes"}}}},
            "red shoes",
        ),
        (
            {
                "bool": {
                    "must": {"match": {"t": "red"}},
                    "filter": [{"match": {"brand": "acme"}}],
                    "must_not": [{"match": {"t": "blue"}}],
                }
            },
            "red",
        ),
        (
            {"dis_max": {"queries": [{"match": {"a": "red"}}, {"match": {"b": "shoes"}}]}},
            "red shoes",
        ),
        (
            {"function_score": {"query": {"match": {"t": "red shoes"}}, "functions": []}},
            "red shoes",
        ),
        ({"nested": {"path": "variants", "query": {"match": {"variants.color": "red"}}}}, "red"),
        ({"constant_score": {"filter": {"match": {"t": "red shoes"}}}}, "red shoes"),
        (
            {
                "boosting": {
                    "positive": {"match": {"t": "shoes"}},
                    "negative": {"match": {"t": "used"}},
                }
            },
            "shoes",
        ),
        (
            {
                "bool": {
                    "must": [
                        {
                            "function_score": {
                                "query": {
                                    "bool": {
                                        "should": [{"match": {"a": "red"}}, {"match": {"b": "red"}}]
                                    }
                                }
                            }
                        }
                    ]
                }
            },
            "red",
        ),
    ],
)
def test_text_from_dsl(query: dict[str, Any], text: str) -> None:
    assert text_from_dsl(query) == text


@pytest.mark.parametrize(
    "query",
    [
        {"match_all": {}},
        {"term": {"brand": "acme"}},
        {"bool": {"filter": [{"match": {"t": "red"}}]}},
        {"range": {"price": {"lt": 10}}},
        None,
    ],
)
def test_no_full_text_clause_means_no_text(query: Any) -> None:
    assert text_from_dsl(query) is None


def test_opensearch_query_context_text_wins_over_the_dsl() -> None:
    body = {"query": {"match": {"t": "from dsl"}}}
    assert query_text(body, {"query_text": "from context"}) == "from context"


def test_opensearch_query_text_path() -> None:
    body = {"query": {"match_phrase": {"text": {"query": "red shoes"}}}}
    assert query_text(body, {"query_text_path": "query.match_phrase.text.query"}) == "red shoes"
    assert query_text(body, {"query_text_path": "$.query.match_phrase.text.query"}) == "red shoes"
    with pytest.raises(QueryTextPathError, match=re.escape("finds nothing at 'query.match'")):
        query_text(body, {"query_text_path": "query.match.text"})
    with pytest.raises(QueryTextPathError, match="leads to a dict"):
        query_text(body, {"query_text_path": "query.match_phrase"})


def test_lucene_syntax_is_stripped_but_words_stay() -> None:
    assert (
        strip_lucene_syntax("brand:acme AND (red OR crimson) NOT used~2") == "acme red crimson used"
    )
    assert strip_lucene_syntax("price:[10 TO 20]") == "10 TO 20"
    assert strip_lucene_syntax("title:shoes^2.5 trail") == "shoes trail"
