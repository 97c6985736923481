"""Raw HTTP through the sidecar equals raw HTTP to the engine: request line and header sizes,
body sizes, dot segments and encoded targets, no header the engine did not send, the engine's
own content encoding, and the numbers of a reranked ``_source`` exactly as stored."""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import raw_http

RERANKED = "transparent-products"
PLAIN = "transparent-plain"
# Numbers a JSON writer would spell differently, as a client may have stored them.
ODD_NUMBERS = (
    b'{"title": "red shoes exact", "n": 1E2, "f": 1.10, "big": -9223372036854775809,'
    b' "huge": 18446744073709551616, "z": -0, "small": 0.000001, "long": 3.0000000000000001,'
    b' "list": [2.50, 1e-7]}'
)


@pytest.fixture(
    scope="module", params=["opensearch", "elasticsearch", "elasticsearch9", "opensearch3"]
)
def engine(request: pytest.FixtureRequest) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    for index in (RERANKED, PLAIN):
        raw_http.send(handle.url, "DELETE", f"/{index}")
        # Only title and price are indexed: the odd numbers live in _source alone, as sent.
        mapping = {
            "settings": {"number_of_replicas": 0},
            "mappings": {
                "dynamic": False,
                "properties": {
                    "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                    "price": {"type": "float"},
                },
            },
        }
        created = raw_http.send(
            handle.url,
            "PUT",
            f"/{index}",
            [("Content-Type", "application/json")],
            json.dumps(mapping).encode(),
        )
        assert created.status == 200, created.body
        answer = raw_http.send(
            handle.url,
            "PUT",
            f"/{index}/_doc/odd?refresh=true",
            [("Content-Type", "application/json")],
            ODD_NUMBERS,
        )
        assert answer.status in (200, 201), answer.body
        for i, title in enumerate(["red running shoes", "blue jacket", "red scarf"]):
            body = json.dumps({"title": title, "price": 10.5 + i}).encode()
            raw_http.send(
                handle.url,
                "PUT",
                f"/{index}/_doc/{i}?refresh=true",
                [("Content-Type", "application/json")],
                body,
            )
    return handle


@pytest.fixture(scope="module")
def proxy(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    settings = Settings(
        models=tiny_registry,
        upstream={"urls": [engine.url]},
        celery={"broker_url": scoring_worker.worker.broker_url},
        dispatch={"cache_enabled": False},
        server={"keepalive_timeout_s": 1.5, "body_idle_timeout_s": 1.0},
        rerank={
            "profiles": {"text": {"model": "tiny-text", "fields": {"text": ["title"]}}},
            "rules": [{"index": RERANKED, "profile": "text"}],
            "timeout_ms": 30_000,
        },
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


def both(
    engine: EngineHandle, proxy: str, method: str, target: str, **kwargs: Any
) -> tuple[raw_http.RawAnswer, raw_http.RawAnswer]:
    return (
        raw_http.send(engine.url, method, target, **kwargs),
        raw_http.send(proxy, method, target, **kwargs),
    )


TOOK = re.compile(rb'"took":\d+')


def assert_same(direct: raw_http.RawAnswer, through: raw_http.RawAnswer) -> None:
    """Byte for byte, but for a search's ``took`` (and so its length), which two calls of the
    same search need not share."""
    assert through.status == direct.status
    assert through.reason == direct.reason
    if TOOK.search(direct.body):
        drop = {"content-length"}
        assert [h for h in through.headers if h[0].lower() not in drop] == [
            h for h in direct.headers if h[0].lower() not in drop
        ]
        assert TOOK.sub(b'"took":0', through.body) == TOOK.sub(b'"took":0', direct.body)
        return
    assert through.headers == direct.headers
    assert through.body == direct.body


@pytest.mark.parametrize("size", [12 * 1024, 16 * 1024 - 200, 20 * 1024, 40 * 1024])
def test_header_lines_up_to_the_engines_limits_and_beyond_are_answered_by_the_engine(
    engine: EngineHandle, proxy: str, size: int
) -> None:
    direct, through = both(
        engine,
        proxy,
        "GET",
        "/_cluster/health?pretty=false&filter_path=status",
        headers=[("X-Big", "a" * size)],
    )
    assert_same(direct, through)


def test_a_long_request_line_is_answered_by_the_engine(engine: EngineHandle, proxy: str) -> None:
    target = f"/{PLAIN}/_search?q=" + "a" * 10_000
    direct, through = both(engine, proxy, "GET", target)
    assert direct.status >= 400  # the engines' initial line limit is 4 KiB
    assert_same(direct, through)


@pytest.mark.parametrize(
    "target",
    [
        f"/{PLAIN}/_search/%2e%2e/%2e%2e/_cluster/settings",
        f"/{PLAIN}/_search/../../_cluster/settings",
        "/x/../_cluster/health",
        "/%2e%2e/_search",
        "/./_search",
        "/%5Fcluster/health",
        f"/{PLAIN}/%5Fsearch",
        f"/{PLAIN}/_search/",
        f"//{PLAIN}/_search",
        "/_cluster//health",
        f"/{PLAIN}/_count?q=title:red%20OR%20title:blue",
        "/_cat/indices/transparent-*?h=index&s=index",
        "/transparent-plai%6E/_doc/odd",
        "/x/%2e%2e/_rerank/metrics",
        "/%5Frerank/metrics",
    ],
)
def test_request_targets_reach_the_engine_exactly_as_sent(
    engine: EngineHandle, proxy: str, target: str
) -> None:
    direct, through = both(engine, proxy, "GET", target)
    assert_same(direct, through)


def test_the_sidecar_adds_no_header_to_what_the_engine_sends(
    engine: EngineHandle, proxy: str
) -> None:
    for method, target in (("GET", "/"), ("HEAD", f"/{PLAIN}"), ("GET", f"/{PLAIN}/_doc/0")):
        direct, through = both(engine, proxy, method, target)
        # Transfer-Encoding is hop-by-hop: a proxy frames its own answer (RFC 9110 §7.6.1).
        assert _names(through, FRAMING) == _names(direct, FRAMING)
        assert "server" not in through.names() and "date" not in through.names()


FRAMING = {"transfer-encoding"}


def _names(answer: raw_http.RawAnswer, ignored: set[str]) -> list[str]:
    return [name for name in answer.names() if name not in ignored]


def test_search_bodies_larger_than_the_inspection_limit_go_to_the_engine(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = Settings(upstream={"urls": [engine.url]}, server={"max_inspect_bytes": 50_000})
    body = json.dumps(
        {
            "query": {
                "bool": {
                    "should": [{"match": {"title": "red"}}],
                    "filter": [
                        {
                            "terms": {
                                "title.keyword": [f"term-{i}" for i in range(6000)] + ["red scarf"]
                            }
                        }
                    ],
                }
            }
        }
    ).encode()
    assert len(body) > 50_000
    with serve_in_thread(create_app(settings)) as url:
        for index in (PLAIN, RERANKED):
            direct, through = both(
                engine,
                url,
                "POST",
                f"/{index}/_search",
                headers=[("Content-Type", "application/json")],
                body=body,
            )
            assert through.status == direct.status == 200
            assert _hits(through.body) == _hits(direct.body)


def test_a_17_mib_search_on_an_index_no_rule_matches_is_not_refused(
    engine: EngineHandle, proxy: str
) -> None:
    padding = "x" * (17 * 1024 * 1024)
    body = json.dumps({"query": {"match": {"title": "red"}}, "_name_padding": padding}).encode()
    direct, through = both(
        engine,
        proxy,
        "POST",
        f"/{PLAIN}/_search",
        headers=[("Content-Type", "application/json")],
        body=body,
    )
    assert through.status == direct.status  # whatever the engine says of it, it said itself
    assert _without_took(through.body) == _without_took(direct.body)


def _hits(raw: bytes) -> list[str]:
    return [hit["_id"] for hit in json.loads(raw)["hits"]["hits"]]


def _without_took(raw: bytes) -> Any:
    value = json.loads(raw)
    if isinstance(value, dict):
        value.pop("took", None)
    return value


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate", "deflate", "br", "identity"])
def test_pass_through_answers_keep_the_engines_encoding(
    engine: EngineHandle, proxy: str, accept: str
) -> None:
    target = f"/{PLAIN}/_doc/0"
    direct, through = both(engine, proxy, "GET", target, headers=[("Accept-Encoding", accept)])
    assert_same(direct, through)


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate", "deflate", "identity", "br"])
def test_reranked_answers_use_the_encoding_the_engine_chose(
    engine: EngineHandle, proxy: str, accept: str
) -> None:
    body = json.dumps({"query": {"match": {"title": "red"}}, "size": 2}).encode()
    headers = [("Content-Type", "application/json"), ("Accept-Encoding", accept)]
    direct, through = both(
        engine, proxy, "POST", f"/{RERANKED}/_search", headers=headers, body=body
    )
    assert (through.header("X-Rerank-Status") or "").startswith("applied")
    assert through.header("Content-Encoding") == direct.header("Content-Encoding")
    decoded = _decoded(through)
    assert len(json.loads(decoded)["hits"]["hits"]) == 2
    # A rewritten answer has the engine's headers plus ours, framed by the sidecar (a length
    # where the engine may stream chunks), in an order that may differ.
    ours = {"x-rerank-status", "x-rerank-model", "x-rerank-took-ms"}
    framing = {"content-length", "transfer-encoding"}
    assert sorted(_names(through, ours | framing)) == sorted(_names(direct, framing))


def _decoded(answer: raw_http.RawAnswer) -> bytes:
    encoding = (answer.header("Content-Encoding") or "").lower()
    if encoding == "gzip":
        return gzip.decompress(answer.body)
    if encoding == "deflate":
        return zlib.decompress(answer.body)
    return answer.body


def test_a_rewritten_body_is_sent_as_utf8_json(engine: EngineHandle, proxy: str) -> None:
    # UTF-8 bytes under a wrong charset label: not the sidecar's to read, so the engine
    # answers exactly what it would answer the client.
    body = json.dumps({"query": {"match": {"title": "red"}}, "ext": {"rerank": {}}}).encode()
    headers = [("Content-Type", "application/json; charset=utf-16")]
    direct, through = both(
        engine, proxy, "POST", f"/{RERANKED}/_search", headers=headers, body=body
    )
    assert through.status == direct.status
    assert _without_took(through.body) == _without_took(direct.body)


def test_reranked_source_carries_the_stored_numbers_exactly(
    engine: EngineHandle, proxy: str
) -> None:
    body = json.dumps({"query": {"match": {"title": "exact"}}}).encode()
    headers = [("Content-Type", "application/json")]
    through = raw_http.send(proxy, "POST", f"/{RERANKED}/_search", headers, body)
    assert (through.header("X-Rerank-Status") or "").startswith("applied")
    for literal in (
        b'"n":1E2',
        b'"f":1.10',
        b'"big":-9223372036854775809',
        b'"huge":18446744073709551616',
        b'"z":-0',
        b'"small":0.000001',
        b'"long":3.0000000000000001',
        b'"list":[2.50,1e-7]',
    ):
        assert literal in through.body.replace(b" ", b"")


def test_a_client_sending_headers_slowly_is_cut_off(proxy: str) -> None:
    parts = urlsplit(proxy)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET /_cluster/health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        sock.settimeout(10)
        data = sock.recv(1024)  # the sidecar closes the connection: b""
        assert data == b""
        assert time.monotonic() - started < 5


def test_a_client_whose_body_stalls_gets_a_408(proxy: str) -> None:
    parts = urlsplit(proxy)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            f"POST /{PLAIN}/_search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"query":'.encode()
        )
        sock.settimeout(10)
        data = b""
        while not raw_http.complete(data, "POST"):
            data += sock.recv(65536)
    answer = raw_http.parse(data)
    assert answer.status == 408
    assert json.loads(answer.body)["error"]["type"] == "rerank_sidecar_request_timeout"
