"""The sidecar's own routes match the raw request target as the engines' path tries do."""

from __future__ import annotations

import pytest

from sidecar.proxy.routing import matches_exactly


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/products/_search", "/{index}/_search"),
        ("/_search", "/_search"),
        ("/p%2A/_search", "/{index}/_search"),  # the engine decodes the index: p*
        ("/%3Clogs-%7Bnow%2Fd%7D%3E/_search", "/{index}/_search"),  # date math, %2F inside
        ("/_rerank/metrics", "/_rerank/metrics"),
    ],
)
def test_targets_the_engine_reads_the_same_way_match(raw: str, canonical: str) -> None:
    assert matches_exactly(raw, canonical)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/%5Frerank/metrics", "/_rerank/metrics"),  # literal segments compare as sent
        ("/products/%5Fsearch", "/{index}/_search"),
        ("/%2e%2e/_search", "/{index}/_search"),  # an index named ".."
        ("/./_search", "/{index}/_search"),
        ("//_search", "/{index}/_search"),  # an empty index
        ("/a/../_rerank/metrics", "/_rerank/metrics"),
        ("/products/_search/", "/{index}/_search"),
    ],
)
def test_targets_the_engine_reads_otherwise_do_not_match(raw: str, canonical: str) -> None:
    assert not matches_exactly(raw, canonical)
