"""deploy/nginx/rerank-sidecar.conf with Debian's nginx in front of a real engine and a real
sidecar (scoring through a real Celery worker): only searches, _rank_eval and the sidecar's own
APIs reach the sidecar; bulk indexing, document and cluster APIs go straight to the cluster,
which the sidecar's access log (no such request) and nginx's own log (the upstream it used) both
show; the official clients see the cluster through the edge and get reranked searches."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.deploy.edge import RunningEdge, run_edge
from tests.deploy.tools import system_tool
from tests.sidecar import catalog, raw_http

INDEX = "edge-products"
QUERY = {"match": {"title": "red shoes"}}
WINDOW = 6


class Recorder(logging.Handler):
    """Keeps the sidecar's access-log records (JSON lines, as ``serve`` writes them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@dataclass
class Stack:
    engine: EngineHandle
    sidecar: str
    edge: RunningEdge
    sidecar_log: Recorder


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def stack(
    request: pytest.FixtureRequest,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    nginx = system_tool("nginx", "nginx")
    engine: EngineHandle = request.getfixturevalue(request.param)
    settings = Settings(
        models=tiny_registry,
        upstream={"urls": [engine.url]},
        celery={"broker_url": scoring_worker.worker.broker_url},
        dispatch={"cache_enabled": False},
        rerank={
            "profiles": {
                "edge": {
                    "model": "tiny-vl",
                    "window": WINDOW,
                    "fields": {"text": ["title", "description"], "image": ["image"]},
                }
            },
            "rules": [{"index": "edge-*", "profile": "edge"}],
            "timeout_ms": 120_000,
            "max_timeout_ms": 120_000,
        },
    )
    recorder = Recorder()
    access = logging.getLogger(f"tests.edge.access.{request.param}")
    access.setLevel(logging.INFO)
    access.propagate = False
    access.addHandler(recorder)
    directory = tmp_path_factory.mktemp(f"edge-{request.param}")
    try:
        with (
            serve_in_thread(create_app(settings), access_log=access) as sidecar,
            run_edge(nginx, directory, [engine.url], [sidecar]) as edge,
        ):
            yield Stack(engine, sidecar, edge, recorder)
    finally:
        access.removeHandler(recorder)


def official_client(stack: Stack) -> Any:
    if stack.engine.name == "opensearch":
        from opensearchpy import OpenSearch

        return OpenSearch(stack.edge.url)
    from elasticsearch import Elasticsearch

    return Elasticsearch(stack.edge.url)


def hostport(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def direct_logged(stack: Stack, seen: int) -> list[dict[str, Any]]:
    """The records after ``seen`` up to the search's, once the search's is written."""
    deadline = time.monotonic() + 5
    while True:
        records = stack.edge.records()[seen:]
        targets = [r["target"] for r in records]
        if f"/{INDEX}/_search" in targets or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


def search_body() -> dict[str, Any]:
    return {"query": QUERY, "size": WINDOW}


def test_official_client_sees_the_cluster_and_its_searches_are_reranked(
    stack: Stack, media_dir: Path
) -> None:
    client = official_client(stack)
    seen = len(stack.sidecar_log.records)
    edge_seen = len(stack.edge.records())
    try:
        catalog.load(client, INDEX, media_dir)  # exists, delete, create, _bulk with refresh
        assert client.cluster.health(wait_for_status="yellow")["status"] in ("green", "yellow")
        assert client.count(index=INDEX)["count"] == len(catalog.TITLES)
        assert client.get(index=INDEX, id="0")["_source"]["title"] == catalog.TITLES[0][0]
        direct = [
            h["_id"]
            for h in httpx.post(
                f"{stack.engine.url}/{INDEX}/_search", json=search_body(), timeout=60
            ).json()["hits"]["hits"]
        ]
        answer = client.search(index=INDEX, body=search_body())
        hits = answer["hits"]["hits"]
        assert sorted(h["_id"] for h in hits) == sorted(direct)
        assert all("_rerank_score" in h["fields"] for h in hits)  # reranked by the sidecar
        if hasattr(answer, "meta"):  # elasticsearch-py keeps the response headers
            assert answer.meta.headers["X-Rerank-Status"] == "applied"
    finally:
        client.close()

    through_sidecar = [r["target"] for r in stack.sidecar_log.records[seen:]]
    assert through_sidecar == [f"/{INDEX}/_search"], through_sidecar
    # nginx logs a request once it has answered: wait for the last one's record (the search).
    records = direct_logged(stack, edge_seen)
    engine, sidecar = hostport(stack.engine.url), hostport(stack.sidecar)
    direct_targets = [r["target"] for r in records if r["upstream"] == engine]
    assert any(t.startswith("/_bulk") for t in direct_targets), direct_targets
    assert any(t.startswith("/_cluster/health") for t in direct_targets), direct_targets
    assert [r["target"] for r in records if r["upstream"] == sidecar] == through_sidecar
    assert {r["backend"] for r in records if r["upstream"] == engine} == {"rerank_cluster"}


def test_searches_through_the_edge_say_applied(stack: Stack, media_dir: Path) -> None:
    client = official_client(stack)
    try:
        catalog.load(client, INDEX, media_dir)
    finally:
        client.close()
    for target, body in [
        (f"/{INDEX}/_search", json.dumps(search_body())),
        (
            f"/{INDEX}/_msearch",
            json.dumps({}) + "\n" + json.dumps(search_body()) + "\n",
        ),
    ]:
        content_type = "application/x-ndjson" if "_msearch" in target else "application/json"
        answer = httpx.post(
            stack.edge.url + target,
            content=body,
            headers={"Content-Type": content_type},
            timeout=180,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Rerank-Status"] == "applied"  # _msearch: one per sub-search
        if "_msearch" in target:
            hits = answer.json()["responses"][0]["hits"]["hits"]
        else:
            hits = answer.json()["hits"]["hits"]
        assert all("_rerank_score" in h["fields"] for h in hits)


# (method, target as sent, where it must go)
SCRATCH = "edge-scratch"
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/_search", "sidecar"),
    ("POST", "/_search?typed_keys=true", "sidecar"),
    ("POST", f"/{INDEX}/_search", "sidecar"),
    ("GET", "/edge-*,other/_search?q=red", "sidecar"),
    ("GET", "/a%2Cb/_search", "sidecar"),
    ("POST", "/_msearch", "sidecar"),
    ("POST", f"/{INDEX}/_msearch", "sidecar"),
    ("POST", "/_rank_eval", "sidecar"),
    ("GET", f"/{INDEX}/_rank_eval", "sidecar"),
    ("GET", "/_rerank/health", "sidecar"),
    ("GET", "/_rerank/metrics", "sidecar"),
    ("GET", "/_rerank", "sidecar"),
    ("POST", "/rerank", "sidecar"),
    ("POST", "/v1/rerank", "sidecar"),
    ("POST", "/v2/rerank", "sidecar"),
    ("GET", "/openapi.json", "sidecar"),
    ("POST", "/ubi_events", "sidecar"),
    ("GET", "/", "cluster"),
    ("POST", "/_bulk", "cluster"),
    ("PUT", f"/{SCRATCH}/_doc/1", "cluster"),
    ("GET", "/_cluster/health", "cluster"),
    ("POST", "/_search/scroll", "cluster"),
    ("POST", f"/{INDEX}/_search/template", "cluster"),
    ("POST", "/_msearch/template", "cluster"),
    ("GET", f"/{INDEX}/_count", "cluster"),
    ("GET", "/_cat/indices", "cluster"),
    ("GET", f"/{INDEX}/_searchx", "cluster"),
    ("GET", "/_search/", "cluster"),
    ("GET", "/%5Fsearch", "cluster"),  # not a search to the engine either: literal segments
    ("GET", "/a/b/_search", "cluster"),
    ("GET", "/_rerankx", "cluster"),
    ("POST", "/v3/rerank", "cluster"),
    ("POST", "/rerank/x", "cluster"),
    ("GET", "/ubi_events/_doc/1", "cluster"),
]


def test_routing_table(stack: Stack) -> None:
    upstream = {"sidecar": hostport(stack.sidecar), "cluster": hostport(stack.engine.url)}
    wrong = []
    # The PUT below writes a document: its index gets no replica, so the shared single-node
    # engine stays green for the tests after this one.
    scratch = stack.engine.client.indices
    scratch.delete(index=SCRATCH, ignore_unavailable=True)
    scratch.create(index=SCRATCH, body={"settings": {"number_of_replicas": 0}})
    try:
        for method, target, expected in ROUTES:
            before = len(stack.edge.records())
            body = b"{}" if method in ("POST", "PUT") else b""
            headers = [("Content-Type", "application/json")] if body else []
            raw_http.send(stack.edge.url, method, target, headers, body)
            (record,) = stack.edge.records_after(before, 1)
            assert record["target"] == target  # the target reached nginx (and went on) as sent
            if record["upstream"] != upstream[expected]:
                wrong.append((method, target, expected, record["backend"]))
    finally:
        scratch.delete(index=SCRATCH, ignore_unavailable=True)
    assert not wrong


def test_answers_reach_the_client_unchanged(stack: Stack) -> None:
    for base, target in [(stack.engine.url, "/"), (stack.sidecar, "/_rerank/health")]:
        via_edge = raw_http.send(stack.edge.url, "GET", target)
        direct = raw_http.send(base, "GET", target)
        assert (via_edge.status, via_edge.body) == (direct.status, direct.body)
        for name in ("Content-Type", "X-Elastic-Product"):
            assert via_edge.header(name) == direct.header(name)
