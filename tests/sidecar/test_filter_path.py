"""filter_path: hand-made cases, one rule each, then an oracle test against the real engines
(the same search with and without ``?filter_path=``; our filter of the unfiltered answer must
equal the engine's filtered one)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.search.filter_path import (
    FilterPath,
    FilterPathError,
    Flavor,
    apply_filter_path,
    keeps_any,
    parse_filter_path,
)
from tests.conftest import EngineHandle

FLAVORS: tuple[Flavor, ...] = ("elasticsearch", "opensearch")


def filtered(document: Any, value: str | list[str], flavor: Flavor = "elasticsearch") -> Any:
    return apply_filter_path(document, parse_filter_path(value, flavor=flavor))


# ---------------------------------------------------------------------------------------------
# Parsing the parameter


def test_items_are_split_on_commas_and_trimmed() -> None:
    fp = parse_filter_path(" took , hits.total ,, ")
    assert set(fp.includes) == {("took",), ("hits", "total")}
    assert fp.excludes == ()


def test_an_empty_value_filters_nothing() -> None:
    document = {"took": 1, "hits": {"total": 2}}
    for value in ("", ",", "  ,  ", []):
        fp = parse_filter_path(value)
        assert fp.is_empty
        assert apply_filter_path(document, fp) == document


def test_the_last_of_several_values_wins() -> None:
    fp = parse_filter_path(["took", "_shards"])
    assert fp.includes == (("_shards",),)


def test_a_leading_dash_makes_an_exclusion_and_spaces_after_it_are_trimmed() -> None:
    fp = parse_filter_path("- hits.hits._source,took")
    assert fp.includes == (("took",),)
    assert fp.excludes == (("hits", "hits", "_source"),)


def test_duplicate_paths_collapse() -> None:
    assert parse_filter_path("took,took, took").includes == (("took",),)


def test_a_backslash_escapes_a_dot_in_a_field_name() -> None:
    for flavor in FLAVORS:
        fp = parse_filter_path(r"hits.docs\.count", flavor=flavor)
        assert fp.includes == (("hits", "docs.count"),)


def test_a_lone_dash_is_no_filter_in_elasticsearch() -> None:
    document = {"took": 1, "a": {"b": []}}
    fp = parse_filter_path("-", flavor="elasticsearch")
    assert apply_filter_path(document, fp) == document


def test_a_lone_dash_is_refused_by_opensearch() -> None:
    with pytest.raises(FilterPathError, match="filters cannot be null or empty"):
        parse_filter_path("-", flavor="opensearch")
    # With another exclusion it is just ignored.
    assert parse_filter_path("-,-took", flavor="opensearch").excludes == (("took",),)


def test_a_leading_dot_is_literal_in_elasticsearch_and_an_empty_segment_in_opensearch() -> None:
    assert parse_filter_path("a..b", flavor="elasticsearch").includes == (("a", ".b"),)
    assert parse_filter_path("a..b", flavor="opensearch").includes == (("a", "", "b"),)


def test_a_trailing_dot_names_an_empty_field_in_elasticsearch_and_is_dropped_in_opensearch() -> (
    None
):
    document = {"a": {"": 1, "b": 2}}
    assert filtered(document, "a.", "elasticsearch") == {"a": {"": 1}}
    assert filtered(document, "a.", "opensearch") == document


def test_a_path_of_dots_only_names_a_field_in_elasticsearch_and_nothing_in_opensearch() -> None:
    document = {"...": 1, "": {"": 2}}
    assert filtered(document, "...", "elasticsearch") == {"...": 1}
    assert filtered(document, "...", "opensearch") == {}


def test_a_backslash_before_another_character_becomes_a_dot() -> None:
    # A Java regex quirk: replaceAll("\\\\.", ".") replaces a backslash and any character.
    assert parse_filter_path(r"a\s", flavor="opensearch").includes == (("a.",),)
    # Elasticsearch unescapes only a segment that holds an escaped dot.
    assert parse_filter_path(r"a\s", flavor="elasticsearch").includes == ((r"a\s",),)
    assert parse_filter_path(r"a\s\.t", flavor="elasticsearch").includes == (("a..t",),)


# ---------------------------------------------------------------------------------------------
# Includes


def test_an_included_field_keeps_its_whole_value() -> None:
    document = {"took": 3, "hits": {"total": {"value": 2}, "hits": [{"_id": "1"}]}}
    assert filtered(document, "hits") == {"hits": document["hits"]}


def test_a_dotted_path_keeps_only_that_leaf_and_its_parents() -> None:
    document = {"took": 3, "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": 1.0}}
    assert filtered(document, "hits.total.value") == {"hits": {"total": {"value": 2}}}


def test_nothing_matching_gives_an_empty_object() -> None:
    assert filtered({"took": 3, "hits": {"total": 1}}, "nope,hits.nope") == {}


def test_matching_is_case_sensitive() -> None:
    assert filtered({"took": 3}, "TOOK") == {}


def test_arrays_are_traversed_transparently() -> None:
    document = {"hits": {"hits": [{"_id": "1", "_score": 2.0}, {"_id": "2", "_score": 1.0}]}}
    assert filtered(document, "hits.hits._id") == {"hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}}


def test_nested_arrays_are_traversed_too() -> None:
    document = {"a": [[{"b": 1, "c": 2}], [{"c": 3}]]}
    assert filtered(document, "a.b") == {"a": [[{"b": 1}]]}


def test_a_path_never_names_an_array_index() -> None:
    assert filtered({"a": [{"b": 1}, {"b": 2}]}, "a.0") == {}


def test_a_scalar_reached_by_a_partial_include_path_is_dropped() -> None:
    document = {"a": 1, "b": [1, {"c": 2}, None]}
    assert filtered(document, "a.c,b.c") == {"b": [{"c": 2}]}


def test_objects_and_arrays_emptied_by_an_include_are_dropped() -> None:
    document = {"a": {"b": {"c": 1}}, "d": [{"e": 1}], "f": 1}
    assert filtered(document, "a.b.x,d.x,f") == {"f": 1}


def test_containers_empty_from_the_start_are_dropped_by_a_partial_include() -> None:
    for flavor in FLAVORS:
        assert filtered({"a": {}, "b": [], "c": 1}, "a.x,b.x,c", flavor) == {"c": 1}


def test_an_empty_container_included_whole_is_kept() -> None:
    assert filtered({"a": {}, "b": [], "c": 1}, "a,b") == {"a": {}, "b": []}


def test_overlapping_paths_are_an_or() -> None:
    document = {"a": {"b": 1, "c": 2}, "d": 3}
    assert filtered(document, "a.b,a") == {"a": {"b": 1, "c": 2}}
    assert filtered(document, "a,a.b") == {"a": {"b": 1, "c": 2}}


def test_a_star_matches_any_characters_within_one_field_name() -> None:
    document = {"took": 1, "timed_out": False, "hits": {"total": 2}, "t": 0}
    assert filtered(document, "t*") == {"took": 1, "timed_out": False, "t": 0}
    assert filtered(document, "*o*t") == {"timed_out": False}
    assert filtered(document, "h*s.*") == {"hits": {"total": 2}}


def test_a_star_matches_dots_inside_a_field_name() -> None:
    assert filtered({"a.b": 1, "ab": 2, "c": 3}, "a*b") == {"a.b": 1, "ab": 2}


def test_a_dotted_path_does_not_match_a_field_whose_name_has_a_dot() -> None:
    document = {"docs.count": 3, "docs": {"count": 4}}
    assert filtered(document, "docs.count") == {"docs": {"count": 4}}
    assert filtered(document, r"docs\.count") == {"docs.count": 3}


def test_double_star_matches_one_or_more_levels() -> None:
    document = {"a": {"x": 1, "b": {"x": 2, "c": [{"x": 3}]}}, "x": 0}
    assert filtered(document, "**.x") == {"a": {"x": 1, "b": {"x": 2, "c": [{"x": 3}]}}}
    assert filtered(document, "a.**.x") == {"a": {"b": {"x": 2, "c": [{"x": 3}]}}}


def test_double_star_does_not_match_zero_levels() -> None:
    assert filtered({"took": 1, "a": {"b": 2}}, "**.took") == {}
    assert filtered({"a": {"b": 2}}, "a.**.b") == {}


def test_a_trailing_double_star_keeps_everything_below_but_not_a_scalar() -> None:
    document = {"a": {"b": {"c": 1}}, "d": 2}
    assert filtered(document, "a.**,d.**") == {"a": {"b": {"c": 1}}}
    assert filtered(document, "**") == document


def test_the_root_object_stays_an_object() -> None:
    assert filtered({}, "a") == {}
    assert filtered({"a": 1}, "-a") == {}


def test_a_root_array_with_nothing_kept_gives_no_body() -> None:
    rows = [{"index": "a", "health": "green"}, {"index": "b", "health": "red"}]
    assert filtered(rows, "index") == [{"index": "a"}, {"index": "b"}]
    assert filtered(rows, "nope") is None


def test_the_document_is_not_modified() -> None:
    document = {"a": {"b": 1, "c": [1, {"d": 2}]}}
    copy = json.loads(json.dumps(document))
    filtered(document, "a.c.d,-a.b")
    filtered(document, "-a.c.d")
    assert document == copy


# ---------------------------------------------------------------------------------------------
# Excludes


def test_an_exclusion_removes_the_field_and_keeps_the_rest() -> None:
    document = {"took": 1, "hits": {"hits": [{"_id": "1", "_source": {"t": "x"}}]}}
    assert filtered(document, "-hits.hits._source") == {"took": 1, "hits": {"hits": [{"_id": "1"}]}}


def test_a_scalar_reached_by_a_partial_exclude_path_is_kept() -> None:
    assert filtered({"a": 1, "b": [1, {"c": 2}]}, "-a.c,-b.c") == {"a": 1, "b": [1]}


def test_objects_and_arrays_emptied_by_an_exclusion_are_dropped() -> None:
    document = {"a": {"b": 1}, "c": [{"d": 1}], "e": 2}
    for flavor in FLAVORS:
        assert filtered(document, "-a.b,-c.d", flavor) == {"e": 2}


def test_elasticsearch_keeps_containers_already_empty_under_an_exclusion() -> None:
    document = {"hits": {"total": 0, "hits": []}, "aggregations": {"t": {"buckets": []}}}
    assert filtered(document, "-hits.hits._source,-aggregations.t.buckets.x") == document


def test_opensearch_drops_containers_already_empty_under_an_exclusion() -> None:
    document = {"hits": {"total": 0, "hits": []}, "aggregations": {"t": {"buckets": []}}}
    expected = {"hits": {"total": 0}}
    assert filtered(document, "-hits.hits._source,-aggregations.t.buckets.x", "opensearch") == (
        expected
    )


def test_excluding_everything_gives_an_empty_object() -> None:
    assert filtered({"took": 1, "hits": {}}, "-*") == {}
    assert filtered({"took": 1, "hits": {}}, "-**") == {}


def test_double_star_in_an_exclusion_removes_a_field_at_any_depth() -> None:
    document = {"k": 0, "a": {"k": 1, "b": [{"k": 2, "m": 3}]}}
    assert filtered(document, "-**.k") == {"k": 0, "a": {"b": [{"m": 3}]}}


# ---------------------------------------------------------------------------------------------
# Includes and excludes together


def test_excludes_apply_to_what_the_includes_kept() -> None:
    document = {"took": 1, "hits": {"hits": [{"_id": "1", "_source": {"t": "x", "u": "y"}}]}}
    assert filtered(document, "hits.hits,-hits.hits._source.u") == {
        "hits": {"hits": [{"_id": "1", "_source": {"t": "x"}}]}
    }


def test_excluding_what_is_included_leaves_nothing() -> None:
    assert filtered({"took": 1, "a": 2}, "took,-took") == {}
    assert filtered({"took": 1, "a": 2}, "-took,took") == {}


def test_an_exclusion_outside_the_includes_changes_nothing() -> None:
    assert filtered({"took": 1, "a": 2}, "took,-a") == {"took": 1}


def test_an_included_empty_object_is_dropped_by_an_opensearch_exclusion_below_it() -> None:
    document = {"a": {"e": {}}, "b": 1}
    assert filtered(document, "a,-a.e.x", "elasticsearch") == {"a": {"e": {}}}
    assert filtered(document, "a,-a.e.x", "opensearch") == {}


# ---------------------------------------------------------------------------------------------
# keeps_any


def test_keeps_any_says_whether_something_under_a_path_can_survive() -> None:
    hits = ("hits", "hits")
    assert keeps_any(FilterPath(), hits)
    assert keeps_any(parse_filter_path("hits.hits._id"), hits)
    assert keeps_any(parse_filter_path("hits"), hits)
    assert keeps_any(parse_filter_path("**._id"), hits)
    assert keeps_any(parse_filter_path("-hits.hits._source"), hits)
    assert not keeps_any(parse_filter_path("took,_shards,hits.total"), hits)
    assert not keeps_any(parse_filter_path("-hits.hits"), hits)
    assert not keeps_any(parse_filter_path("-hits"), hits)
    assert not keeps_any(parse_filter_path("hits.hits,-hits"), hits)
    assert not keeps_any(parse_filter_path("...", flavor="opensearch"), hits)
    assert keeps_any(parse_filter_path("-...", flavor="opensearch"), hits)


# ---------------------------------------------------------------------------------------------
# Oracle: the real engines

INDEX = "filter-path-oracle"

# Raw JSON, so that numbers like 1.50 and 1e3 reach the engines as written. ``w`` is not indexed
# (enabled: false), so it may hold names the mapper refuses: "", ".a", "b.".
DOCS = [
    '{"title": "alpha", "rank": 1.50, "tags": ["x", "y"],'
    ' "obj": {"x": 1, "y": {"z": [1, 2], "q": {}}, "e": {}, "a.b": {"c": 3}},'
    ' "arr": [{"k": 1, "m": 2}, {"k": 3}, 5, [], [{"k": 9}], null, {}],'
    ' "dotted.name": 7, "empty": [], "eo": {}, "nul": null, "t": true,'
    ' "w": {"": {"": 1}, ".a": 1, "x": {".b": 2, "": {"b": 3}}, "st*r": 1, "b.": 4},'
    ' "deep": {"deep": {"deep": {"v": 1}}}}',
    '{"title": "beta", "rank": 2, "tags": [], "obj": {"x": 2, "a": {"b": 1}}, "arr": [],'
    ' "big": 12345678901234567890, "e1": 1e3, "neg": -0.0, "nested": [[1, [2]]]}',
    '{"title": "gamma", "rank": 3, "obj": {}, "arr": [{"k": 4}], "dotted.name": 8}',
]

SEARCH = {
    "sort": [{"rank": "asc"}],
    "size": 10,
    "aggs": {"top": {"max": {"field": "rank"}}, "titles": {"terms": {"field": "title"}}},
}
NO_HITS = {"query": {"term": {"title": "nothing"}}, "aggs": {"t": {"terms": {"field": "title"}}}}

SEARCH_EXPRESSIONS = [
    "took",
    "_shards",
    "hits.total.value",
    "aggregations",
    "aggregations.top.value,aggregations.titles.buckets.key",
    "hits.hits._id",
    "hits.hits._source",
    "hits.hits._source.title",
    "hits.hits._source.obj.y.z",
    "hits.hits._source.arr.k",
    r"hits.hits._source.dotted\.name",
    "hits.hits._source.dotted.name",
    r"hits.hits._source.obj.a\.b.c",
    "hits.hits._source.w.st*r,hits.hits._source.w.x.*",
    r"hits.hits._source.w.x.\.b",
    "hits.hits._source.w..a",
    "hits.hits._source.w.",
    "hits.*._source.t*",
    "h*s.h*s._id",
    "**.k",
    "**._id,**.value",
    "hits.hits._source.**.v",
    "hits.hits._source.deep.**.deep",
    "hits.hits._source.e1,hits.hits._source.big,hits.hits._source.neg,hits.hits._source.rank",
    "hits.hits._source.obj.e,hits.hits._source.eo,hits.hits._source.empty",
    "hits.hits._source.nul,hits.hits._source.tags.x",
    "nothing,hits.nothing",
    "TOOK",
    "*",
    "**",
    "-**",
    "-*",
    "-took",
    "-hits.hits._source",
    "-hits.hits._source.arr.k",
    "-hits.hits._source.arr.*",
    "-hits.hits._source.obj.x,-hits.hits._source.obj.q",
    "-**.k,-**.m,-**.title",
    "-hits.hits._source,-hits.hits._index,-hits.hits._score,-hits.hits.sort,-hits.hits._id",
    "-hits.hits._source.w.",
    "hits.hits,-hits.hits._source.obj",
    "hits.hits._source.eo,-hits.hits._source.eo.x",
    "hits.hits._source.obj,-hits.hits._source.obj.x,-hits.hits._source.obj.y.z",
    "took,-took",
    " took , _shards.total ,, hits.total ",
    "- hits.hits._source , hits.hits._id",
    "hits.hits._source.title,hits.hits._source,hits.hits._source.title",
    "--a",
    "...",
]
NO_HITS_EXPRESSIONS = [
    "-hits.hits._source",
    "-aggregations.t.buckets.key",
    "hits.hits._id",
    "hits.hits,aggregations",
]
MSEARCH_EXPRESSIONS = [
    "responses.hits.hits._id",
    "responses.hits.total.value,responses.status",
    "-responses.hits.hits._source",
    "responses.took",
    "took",
    "**.value",
]


def http(
    method: str, url: str, body: bytes | None = None, ctype: str = "application/json"
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def without_took(value: Any) -> Any:
    """``took`` differs between two calls: zero it wherever a search response has one."""
    if isinstance(value, dict):
        value = dict(value)
        if isinstance(value.get("took"), int):
            value["took"] = 0
        if isinstance(value.get("responses"), list):
            value["responses"] = [without_took(r) for r in value["responses"]]
    return value


class Oracle:
    def __init__(self, handle: EngineHandle) -> None:
        self.url = handle.url.rstrip("/")
        self.flavor: Flavor = "elasticsearch" if handle.name.startswith("elastic") else "opensearch"

    def call(self, path: str, body: bytes, filter_path: str | None, ndjson: bool = False) -> Any:
        query = "" if filter_path is None else "?filter_path=" + urllib.parse.quote(filter_path)
        ctype = "application/x-ndjson" if ndjson else "application/json"
        status, raw = http("POST", self.url + path + query, body, ctype)
        assert status == 200, raw[:500]
        return without_took(json.loads(raw)) if raw else None

    def check(self, path: str, body: bytes, expressions: list[str], ndjson: bool = False) -> None:
        unfiltered = self.call(path, body, None, ndjson)
        mismatches = []
        for expression in expressions:
            expected = self.call(path, body, expression, ndjson)
            ours = apply_filter_path(unfiltered, parse_filter_path(expression, flavor=self.flavor))
            if ours != expected:
                mismatches.append(f"{expression!r}:\n  engine {expected}\n  ours   {ours}")
        assert not mismatches, "\n".join(mismatches)


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch", "opensearch3"])
def oracle(request: pytest.FixtureRequest) -> Iterator[Oracle]:
    handle: EngineHandle = request.getfixturevalue(request.param)
    oracle = Oracle(handle)
    http("DELETE", f"{oracle.url}/{INDEX}")
    mappings = {
        "dynamic": False,
        "properties": {
            "title": {"type": "keyword"},
            "rank": {"type": "double"},
            "w": {"type": "object", "enabled": False},
        },
    }
    settings = {"number_of_shards": 1, "number_of_replicas": 0}
    body = json.dumps({"settings": settings, "mappings": mappings}).encode()
    status, raw = http("PUT", f"{oracle.url}/{INDEX}", body)
    assert status == 200, raw
    lines = []
    for number, doc in enumerate(DOCS, start=1):
        lines += [json.dumps({"index": {"_index": INDEX, "_id": str(number)}}), doc]
    bulk = ("\n".join(lines) + "\n").encode()
    status, raw = http("POST", f"{oracle.url}/_bulk?refresh=true", bulk, "application/x-ndjson")
    assert status == 200 and json.loads(raw)["errors"] is False, raw[:1000]
    yield oracle
    http("DELETE", f"{oracle.url}/{INDEX}")


def test_search_matches_the_engine(oracle: Oracle) -> None:
    oracle.check(f"/{INDEX}/_search", json.dumps(SEARCH).encode(), SEARCH_EXPRESSIONS)


def test_search_without_hits_matches_the_engine(oracle: Oracle) -> None:
    oracle.check(f"/{INDEX}/_search", json.dumps(NO_HITS).encode(), NO_HITS_EXPRESSIONS)


def test_msearch_matches_the_engine(oracle: Oracle) -> None:
    header = json.dumps({"index": INDEX})
    lines = [header, json.dumps(SEARCH), header, json.dumps(NO_HITS)]
    body = ("\n".join(lines) + "\n").encode()
    oracle.check("/_msearch", body, MSEARCH_EXPRESSIONS, ndjson=True)


def test_the_engine_keeps_the_last_of_several_filter_paths(oracle: Oracle) -> None:
    url = f"{oracle.url}/{INDEX}/_search?filter_path=took&filter_path=_shards.total"
    status, raw = http("POST", url, json.dumps(SEARCH).encode())
    assert status == 200
    expected = json.loads(raw)
    unfiltered = oracle.call(f"/{INDEX}/_search", json.dumps(SEARCH).encode(), None)
    fp = parse_filter_path(["took", "_shards.total"], flavor=oracle.flavor)
    assert apply_filter_path(unfiltered, fp) == expected == {"_shards": {"total": 1}}


def test_a_lone_dash_matches_the_engine(oracle: Oracle) -> None:
    url = f"{oracle.url}/{INDEX}/_search?filter_path=-"
    status, raw = http("POST", url, json.dumps(SEARCH).encode())
    if oracle.flavor == "opensearch":
        assert status == 400 and b"filters cannot be null or empty" in raw
        with pytest.raises(FilterPathError):
            parse_filter_path("-", flavor=oracle.flavor)
    else:
        assert status == 200
        unfiltered = oracle.call(f"/{INDEX}/_search", json.dumps(SEARCH).encode(), None)
        fp = parse_filter_path("-", flavor=oracle.flavor)
        assert apply_filter_path(unfiltered, fp) == without_took(json.loads(raw))
