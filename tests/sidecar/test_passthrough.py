"""Through the sidecar, the official clients see the cluster exactly as they do directly."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle

DOCS = [
    {"title": "red running shoes", "brand": "acme", "price": 80},
    {"title": "blue rain jacket", "brand": "zephyr", "price": 120},
    {"title": "red wool scarf", "brand": "acme", "price": 25},
]


def _proxy(engine: EngineHandle) -> Iterator[str]:
    settings = Settings(upstream={"urls": [engine.url]}, dispatch={"cache_enabled": False})
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def os_proxy(opensearch: EngineHandle) -> Iterator[str]:
    yield from _proxy(opensearch)


@pytest.fixture(scope="module", params=["elasticsearch", "elasticsearch9"])
def es_engine(request: pytest.FixtureRequest) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    return handle


@pytest.fixture(scope="module")
def es_proxy(es_engine: EngineHandle) -> Iterator[str]:
    yield from _proxy(es_engine)


def _raw(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_volatile(v)
            for k, v in value.items()
            if k not in {"took", "_scroll_id", "pit_id", "id", "creation_time"}
        }
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _os_workout(client: Any, index: str) -> list[Any]:
    """The same calls, in order, through any opensearch-py client."""
    out: list[Any] = []
    out.append(client.indices.create(index=index, body={"settings": {"number_of_replicas": 0}}))
    bulk = "".join(
        json.dumps({"index": {"_index": index, "_id": str(i)}}) + "\n" + json.dumps(d) + "\n"
        for i, d in enumerate(DOCS)
    )
    out.append(client.bulk(body=bulk, refresh=True)["errors"])
    out.append(client.get(index=index, id="1"))
    out.append(client.mget(index=index, body={"ids": ["0", "2"]}))
    out.append(
        client.update(index=index, id="2", body={"doc": {"price": 30}}, refresh=True)["result"]
    )
    out.append(client.count(index=index))
    out.append(
        client.search(
            index=index,
            body={
                "query": {"match": {"title": "red"}},
                "highlight": {"fields": {"title": {}}},
                "aggs": {"brands": {"terms": {"field": "brand.keyword"}}},
            },
        )
    )
    out.append(
        client.msearch(
            body=[
                {"index": index},
                {"query": {"match": {"title": "jacket"}}},
                {"index": index},
                {"query": {"match_all": {}}, "size": 1},
            ]
        )
    )
    page = client.search(index=index, scroll="1m", size=2, body={"sort": ["price"]})
    out.append(page["hits"]["hits"])
    out.append(client.scroll(scroll_id=page["_scroll_id"], scroll="1m")["hits"]["hits"])
    client.clear_scroll(scroll_id=page["_scroll_id"])
    pit = client.create_pit(index=index, keep_alive="1m")
    out.append(
        client.search(body={"pit": {"id": pit["pit_id"], "keep_alive": "1m"}, "sort": ["price"]})[
            "hits"
        ]["hits"]
    )
    client.delete_pit(body={"pit_id": [pit["pit_id"]]})
    out.append(client.delete(index=index, id="0", refresh=True)["result"])
    out.append(client.cat.indices(index=index, format="json", h="index,docs.count"))
    out.append(client.cluster.health(index=index)["status"])
    return [_strip_volatile(x) for x in out]


def _es_workout(client: Any, index: str) -> list[Any]:
    out: list[Any] = []
    out.append(client.indices.create(index=index, settings={"number_of_replicas": 0}).body)
    ops: list[dict[str, Any]] = []
    for i, d in enumerate(DOCS):
        ops += [{"index": {"_index": index, "_id": str(i)}}, d]
    out.append(client.bulk(operations=ops, refresh=True)["errors"])
    out.append(client.get(index=index, id="1").body)
    out.append(client.mget(index=index, ids=["0", "2"]).body)
    out.append(client.update(index=index, id="2", doc={"price": 30}, refresh=True)["result"])
    out.append(client.count(index=index).body)
    out.append(
        client.search(
            index=index,
            query={"match": {"title": "red"}},
            highlight={"fields": {"title": {}}},
            aggs={"brands": {"terms": {"field": "brand.keyword"}}},
        ).body
    )
    out.append(
        client.msearch(
            searches=[
                {"index": index},
                {"query": {"match": {"title": "jacket"}}},
                {"index": index},
                {"query": {"match_all": {}}, "size": 1},
            ]
        ).body
    )
    page = client.search(index=index, scroll="1m", size=2, sort=["price"])
    out.append(page["hits"]["hits"])
    out.append(client.scroll(scroll_id=page["_scroll_id"], scroll="1m")["hits"]["hits"])
    client.clear_scroll(scroll_id=page["_scroll_id"])
    pit = client.open_point_in_time(index=index, keep_alive="1m")
    out.append(
        client.search(pit={"id": pit["id"], "keep_alive": "1m"}, sort=["price"])["hits"]["hits"]
    )
    client.close_point_in_time(id=pit["id"])
    out.append(client.delete(index=index, id="0", refresh=True)["result"])
    out.append(client.cat.indices(index=index, format="json", h="index,docs.count").body)
    out.append(client.cluster.health(index=index)["status"])
    return [_strip_volatile(x) for x in out]


def _rename(value: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(value).replace(old, new))


def test_opensearch_py_through_the_sidecar_equals_direct(
    opensearch: EngineHandle, os_proxy: str
) -> None:
    from opensearchpy import OpenSearch

    proxied = OpenSearch(os_proxy)
    try:
        direct = _os_workout(opensearch.client, "pt-direct")
        through = _os_workout(proxied, "pt-proxied")
    finally:
        proxied.close()
    assert _rename(through, "pt-proxied", "pt-direct") == direct


def test_elasticsearch_py_through_the_sidecar_equals_direct(
    es_engine: EngineHandle, es_proxy: str
) -> None:
    from elasticsearch import Elasticsearch

    proxied = Elasticsearch(es_proxy)
    try:
        direct = _es_workout(es_engine.client, "pt-direct")
        through = _es_workout(proxied, "pt-proxied")
    finally:
        proxied.close()
    assert _rename(through, "pt-proxied", "pt-direct") == direct


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/pt-bytes/_doc/1", "GET", None),
        ("/pt-bytes/_search?q=title:red&filter_path=hits.hits._id", "GET", None),
        ("/no-such-index/_doc/1", "GET", None),  # an engine error
        (
            "/pt-bytes/_search",
            "POST",
            b'{"query": {"match": ',
        ),  # malformed JSON: the engine's own 400
        ("/_cluster/settings", "GET", None),
    ],
)
def test_answers_are_byte_equal_to_going_direct(
    es_engine: EngineHandle, es_proxy: str, path: str, method: str, body: bytes | None
) -> None:
    json_type = {"Content-Type": "application/json"}
    # One shard, no replica: a single-node cluster stays green for the tests after this one.
    _raw(
        f"{es_engine.url}/pt-bytes",
        "PUT",
        b'{"settings": {"number_of_replicas": 0}}',
        json_type,
    )
    _raw(
        f"{es_engine.url}/pt-bytes/_doc/1?refresh=true",
        "PUT",
        b'{"title": "red shoes"}',
        {"Content-Type": "application/json"},
    )
    headers = {"Content-Type": "application/json"} if body else {}
    direct = _raw(f"{es_engine.url}{path}", method, body, headers)
    through = _raw(f"{es_proxy}{path}", method, body, headers)
    assert through[0] == direct[0]
    assert through[2] == direct[2]
    assert (
        through[1].get("X-Elastic-Product") == direct[1].get("X-Elastic-Product") == "Elasticsearch"
    )
    assert through[1].get("content-type") == direct[1].get("content-type")


def test_gzip_answers_pass_through_compressed(opensearch: EngineHandle, os_proxy: str) -> None:
    headers = {"Accept-Encoding": "gzip"}
    direct = _raw(f"{opensearch.url}/_cluster/settings?include_defaults=true", headers=headers)
    through = _raw(f"{os_proxy}/_cluster/settings?include_defaults=true", headers=headers)
    assert through[1].get("content-encoding") == direct[1].get("content-encoding") == "gzip"
    assert gzip.decompress(through[2]) == gzip.decompress(direct[2])


def test_compatibility_headers_and_opaque_id_reach_the_engine(
    es_engine: EngineHandle, es_proxy: str
) -> None:
    compat = "application/vnd.elasticsearch+json; compatible-with=8"
    headers = {"Accept": compat, "Content-Type": compat, "X-Opaque-Id": "trace-me-42"}
    status, answer_headers, _ = _raw(f"{es_proxy}/_cluster/health", headers=headers)
    assert status == 200
    assert answer_headers.get("X-Opaque-Id") == "trace-me-42"  # echoed by the engine
    assert "compatible-with=8" in answer_headers.get("content-type", "")


def test_an_unreachable_cluster_is_a_502_in_the_engine_format() -> None:
    from sidecar.testbed.ports import free_port

    settings = Settings(
        upstream={"urls": [f"http://127.0.0.1:{free_port()}"], "retries": 1},
        dispatch={"cache_enabled": False},
    )
    with serve_in_thread(create_app(settings)) as url:
        status, _, body = _raw(f"{url}/_cluster/health")
    assert status == 502
    error = json.loads(body)
    assert (
        error["status"] == 502
        and error["error"]["root_cause"][0]["type"] == "rerank_sidecar_upstream_unavailable"
    )


def test_compressed_request_bodies_pass_through_as_sent(
    opensearch: EngineHandle, os_proxy: str
) -> None:
    """elasticsearch-py / opensearch-py with http_compress=True gzip their request bodies."""
    lines = "".join(
        json.dumps({"index": {"_index": "gzip-bodies", "_id": str(i)}})
        + "\n"
        + json.dumps(d)
        + "\n"
        for i, d in enumerate(DOCS)
    )
    opensearch.client.indices.create(
        index="gzip-bodies", body={"settings": {"number_of_replicas": 0}}
    )
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    status, _, body = _raw(
        f"{os_proxy}/_bulk?refresh=true", "POST", gzip.compress(lines.encode()), headers
    )
    assert status == 200, body
    assert json.loads(body)["errors"] is False
    query = gzip.compress(json.dumps({"query": {"match": {"title": "red"}}}).encode())
    search_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    direct = _raw(f"{opensearch.url}/gzip-bodies/_search", "POST", query, search_headers)
    through = _raw(f"{os_proxy}/gzip-bodies/_search", "POST", query, search_headers)
    assert through[0] == direct[0] == 200
    assert _strip_volatile(json.loads(through[2])) == _strip_volatile(json.loads(direct[2]))
    assert json.loads(through[2])["hits"]["total"]["value"] == 2
