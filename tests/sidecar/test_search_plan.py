"""The pure parts of a reranked search: which searches are reranked and how, documents built
from hits, and the client's _source view."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.search.documents import build_document, values_at
from sidecar.search.options import Fields, RerankInputError
from sidecar.search.plan import UNTOUCHED, decide, index_names
from sidecar.search.source import client_view, fetch_source, filter_source
from sidecar.settings import Settings

SETTINGS = Settings(
    rerank={
        "profiles": {
            "products": {"model": "qwen3-reranker-0.6b", "window": 30, "fields": {"text": "title"}},
            "docs": {"window": 10, "combine": {"mode": "rrf"}},
        },
        "rules": [
            {"index": ["products*", "catalog"], "profile": "products"},
            {"index": "docs-*", "profile": "docs"},
        ],
    }
)
MATCH = {"query": {"match": {"title": "red shoes"}}}


@pytest.mark.parametrize(
    ("index", "profile"),
    [
        ("products-2025", "products"),
        ("logs,products-v2", "products"),
        ("catalog", "products"),  # an alias is matched by its name
        ("logs", None),
        (None, None),
        ("-products-x,logs", None),  # exclusions select nothing
    ],
)
def test_rules_match_names_patterns_and_lists(index: str | None, profile: str | None) -> None:
    decision = decide(SETTINGS, index, dict(MATCH), {}, None)
    if profile is None:
        assert decision == UNTOUCHED
    else:
        assert decision.plan is not None and decision.plan.profile == profile


def test_rule_order_decides_between_two_matching_rules() -> None:
    decision = decide(SETTINGS, "docs-a,products", dict(MATCH), {}, None)
    assert decision.plan is not None and decision.plan.profile == "products"


def test_ext_overrides_profile_overrides_defaults() -> None:
    body = {**MATCH, "ext": {"rerank": {"window": 5, "combine": {"mode": "weighted"}}}}
    plan = decide(SETTINGS, "products", body, {}, None).plan
    assert plan is not None
    assert (plan.window, plan.model, plan.combine.mode) == (5, "qwen3-reranker-0.6b", "weighted")
    assert plan.fields == Fields(text=["title"])
    assert plan.timeout_ms == SETTINGS.rerank.timeout_ms
    plain = decide(SETTINGS, "logs", {**MATCH, "ext": {"rerank": {}}}, {}, None).plan
    assert plain is not None
    assert (plain.window, plain.model) == (SETTINGS.rerank.window, SETTINGS.api.default_model)


def test_ext_rerank_is_stripped_and_other_ext_kept() -> None:
    body = {**MATCH, "ext": {"rerank": {"enabled": False}, "other": {"a": 1}}}
    decision = decide(SETTINGS, "logs", body, {}, None)
    assert decision.body == {**MATCH, "ext": {"other": {"a": 1}}}
    alone = decide(SETTINGS, "logs", {**MATCH, "ext": {"rerank": {"enabled": False}}}, {}, None)
    assert alone.body == MATCH


@pytest.mark.parametrize(
    ("body", "params", "reason"),
    [
        ({**MATCH, "size": 0}, {}, "size_0"),
        ({**MATCH, "sort": ["price"]}, {}, "sort"),
        ({**MATCH, "search_after": [1]}, {}, "search_after"),
        (MATCH, {"scroll": "1m"}, "scroll"),
        (MATCH, {"filter_path": "took,_shards"}, "filter_path"),  # no hit would show
        (MATCH, {"filter_path": "-"}, "filter_path"),  # OpenSearch refuses it: the engine says so
        ({"query": {"term": {"brand": "acme"}}}, {}, "no_query_text"),
    ],
)
def test_searches_it_cannot_rerank_say_why(
    body: dict[str, Any], params: dict[str, str], reason: str
) -> None:
    decision = decide(SETTINGS, "products", dict(body), params, None)
    assert decision.plan is None
    assert decision.status == f"skipped; reason={reason}"


@pytest.mark.parametrize("value", ["hits.hits._id", "-hits.hits._source", "**._score", "hits"])
def test_a_filter_path_that_keeps_hits_is_reranked_and_applied_after(value: str) -> None:
    assert decide(SETTINGS, "products", dict(MATCH), {"filter_path": value}, None).plan is not None


def test_score_sort_and_url_query_are_rerankable() -> None:
    sorted_by_score = {**MATCH, "sort": ["_score", {"_score": "desc"}]}
    assert decide(SETTINGS, "products", sorted_by_score, {}, None).plan is not None
    url_only = decide(SETTINGS, "products", {}, {"q": "title:(red shoes)"}, None).plan
    assert url_only is not None and url_only.query.text == "red shoes"


def test_query_context_only_passes_through_without_a_rule() -> None:
    body = {**MATCH, "ext": {"rerank": {"query_context": {"query_text": "x"}}}}
    assert decide(SETTINGS, "logs", body, {}, None) == UNTOUCHED
    plan = decide(SETTINGS, "products", body, {}, None).plan
    assert plan is not None and plan.query.text == "x"
    bad_path = {**MATCH, "ext": {"rerank": {"query_context": {"query_text_path": "query.nope"}}}}
    with pytest.raises(RerankInputError) as raised:
        decide(SETTINGS, "products", bad_path, {}, None)
    assert raised.value.path == "ext.rerank.query_context.query_text_path"


def test_index_names() -> None:
    assert index_names(None) == ["_all"]
    assert index_names("a, b*,-c") == ["a", "b*"]
    assert index_names(["x", "y"]) == ["x", "y"]


SOURCE = {
    "title": "Red shoes",
    "meta.brand": "acme",
    "tags": ["sale", "new"],
    "images": [{"url": "a.png"}, {"url": "b.png"}],
    "variants": [{"color": "red", "size": 40}, {"color": "black", "stock": {"n": 3}}],
    "clips": ["one.mp4", "two.mp4"],
    "empty": None,
}


def test_values_at_walks_objects_arrays_and_dotted_keys() -> None:
    assert values_at(SOURCE, "variants.color") == ["red", "black"]
    assert values_at(SOURCE, "variants.stock.n") == [3]
    assert values_at(SOURCE, "meta.brand") == ["acme"]
    assert values_at(SOURCE, "tags") == ["sale", "new"]
    assert values_at(SOURCE, "missing.path") == []
    assert values_at(SOURCE, "empty") == []


def test_documents_from_fields() -> None:
    fields = Fields(text=["title", "tags"], image=["images.url"], video=["clips"])
    doc = build_document("3", SOURCE, fields)
    assert doc is not None
    assert doc.text == "Red shoes\nsale\nnew"
    assert doc.image == ["a.png", "b.png"]
    assert doc.video == ["one.mp4", "two.mp4"]  # several videos, as the official code reads them
    only_missing = Fields(text=["nothing"])
    assert build_document("4", SOURCE, only_missing) is None
    whole = build_document("5", {"a": {"b": "x"}, "n": 2, "f": False}, Fields())
    assert whole is not None and whole.text == "a.b: x\nn: 2\nf: false"


@pytest.mark.parametrize(
    ("source", "params", "expected"),
    [
        (None, {}, {"everything": True}),
        (False, {}, {"nothing": True}),
        (["title"], {}, {"includes": ("title",)}),
        ({"excludes": ["tags"]}, {}, {"excludes": ("tags",)}),
        ({"includes": "title"}, {"_source": "false"}, {"nothing": True}),
        (None, {"_source_includes": "a,b"}, {"includes": ("a", "b")}),
        (None, {"_source": "title,tags"}, {"includes": ("title", "tags")}),
    ],
)
def test_client_view(source: Any, params: dict[str, str], expected: dict[str, Any]) -> None:
    body = {} if source is None else {"_source": source}
    view = client_view(body, params)
    for key, value in expected.items():
        assert getattr(view, key) == value
    if "everything" not in expected:
        assert not view.everything


def test_stored_fields_hide_source_unless_asked() -> None:
    assert client_view({"stored_fields": ["a"]}, {}).nothing
    assert client_view({"stored_fields": ["a"], "_source": True}, {}).everything


def test_fetch_source_widens_the_view() -> None:
    needed = ["title", "image"]
    assert fetch_source(client_view({}, {}), needed) is None
    assert fetch_source(client_view({"_source": False}, {}), needed) == {"includes": needed}
    assert fetch_source(client_view({"_source": ["brand", "title"]}, {}), needed) == {
        "includes": ["brand", "title", "image"]
    }
    assert fetch_source(client_view({"_source": {"excludes": ["title"]}}, {}), needed) is True
    assert fetch_source(client_view({"_source": False}, {}), []) is True


def test_filter_source_like_the_engines() -> None:
    includes = client_view({"_source": ["title", "variants.color", "images"]}, {})
    assert filter_source(SOURCE, includes) == {
        "title": "Red shoes",
        "images": [{"url": "a.png"}, {"url": "b.png"}],
        "variants": [{"color": "red"}, {"color": "black"}],
    }
    excludes = client_view({"_source": {"excludes": ["variants.stock", "images", "t*"]}}, {})
    assert filter_source(SOURCE, excludes) == {
        "meta.brand": "acme",
        "variants": [{"color": "red", "size": 40}, {"color": "black"}],
        "clips": ["one.mp4", "two.mp4"],
        "empty": None,
    }
    wildcard = client_view({"_source": ["var*.s*"]}, {})
    assert filter_source(SOURCE, wildcard) == {"variants": [{"size": 40}, {"stock": {"n": 3}}]}


@pytest.mark.parametrize(
    ("ext", "path"),
    [
        ({"window": True}, "ext.rerank.window"),  # a boolean is not a number
        ({"window": "10"}, "ext.rerank.window"),
        ({"window": 10.5}, "ext.rerank.window"),
        ({"min_score": float("nan")}, "ext.rerank.min_score"),
        ({"min_score": float("inf")}, "ext.rerank.min_score"),
        ({"combine": {"mode": "weighted", "query_weight": float("-inf")}}, "ext.rerank.combine"),
        ({"enabled": 1}, "ext.rerank.enabled"),
        ({"timeout_ms": 10**9}, "ext.rerank.timeout_ms"),
    ],
)
def test_ext_values_are_taken_as_json_types_and_finite(ext: dict[str, Any], path: str) -> None:
    body = {**MATCH, "ext": {"rerank": ext}}
    with pytest.raises(RerankInputError) as caught:
        decide(SETTINGS, "products", body, {}, None)
    assert caught.value.path.startswith(path)


@pytest.mark.parametrize(
    "sort",
    [[1], 5, [None], [{}], [{"_score": "asc"}], [{"_score": {"order": "asc"}}], ["price"]],
)
def test_any_sort_but_score_descending_is_left_to_the_engine(sort: Any) -> None:
    decision = decide(SETTINGS, "products", {**MATCH, "sort": sort}, {}, None)
    assert decision.plan is None and decision.skip_reason == "sort"


@pytest.mark.parametrize("sort", ["_score", [{"_score": "desc"}], [{"_score": {"order": "DESC"}}]])
def test_score_descending_sorts_are_reranked(sort: Any) -> None:
    assert decide(SETTINGS, "products", {**MATCH, "sort": sort}, {}, None).plan is not None


@pytest.mark.parametrize("value", [float("inf"), 1e400, -1, 10.5, True, "ten", 2**40, None])
def test_paging_the_sidecar_does_not_rewrite_is_left_to_the_engine(value: Any) -> None:
    from sidecar.search.rerank import Unsupported, prepare

    plan = decide(SETTINGS, "products", dict(MATCH), {}, None).plan
    assert plan is not None
    if value is None:
        assert prepare(plan, {**MATCH, "size": value}, []).page.size == 10
        return
    with pytest.raises(Unsupported) as caught:
        prepare(plan, {**MATCH, "size": value}, [])
    assert caught.value.reason == "paging"


def test_msearch_headers_of_any_shape_name_indices_or_nothing() -> None:
    assert index_names(["products", 5, None]) == ["products"]
    assert index_names(5) == ["_all"]
    assert index_names({"a": 1}) == ["_all"]


def test_the_msearch_status_lists_each_sub_search_or_counts_them_when_long() -> None:
    from sidecar.proxy.msearch import MAX_STATUS_HEADER, status_header

    assert status_header(["applied", "skipped; reason=no_rule"]) == (
        "applied, skipped; reason=no_rule"
    )
    many = ["applied"] * 600 + ["degraded; reason=timeout"] * 3 + ["applied"]
    counted = status_header(many)
    assert counted == "applied; count=601, degraded; reason=timeout; count=3"
    assert len(status_header(["applied"] * 10_000)) < MAX_STATUS_HEADER
