"""Reranked _search and _msearch through the official clients of every engine in the test bed.

The raw-HTTP tests (test_rerank_proxy.py) send plain ``application/json``; the clients send their
own media types: elasticsearch-py and @elastic/elasticsearch ``application/vnd.elasticsearch+json;
compatible-with=8`` (9 for the 9.x clients) and ``application/vnd.elasticsearch+x-ndjson;
compatible-with=…`` for _msearch, opensearch-py ``application/json`` for both, and
@opensearch-project/opensearch ``application/x-ndjson`` for _msearch. Each client must get the
reranked order (the tiny model's reference scores, as in the raw-HTTP tests), parse the answer
without complaint, and see ``X-Rerank-Status: applied`` (one status per sub-search for _msearch).

Clients: the Python client of the engine's major (opensearch-py; elasticsearch-py 8 in process;
elasticsearch-py 9 from ``.venv/clients/es9`` in a subprocess, since it cannot share the venv with
8), elasticsearch-py 8 on Elasticsearch 9 too (its REST compatibility mode), and the JavaScript
client of the engine's major (tests/clients/js, one Node process per client for both searches).
scripts/bootstrap.sh installs the 9.x Python client and the JavaScript clients.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.testbed.app_thread import serve_in_thread
from tests.clients.python import elasticsearch_search
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog
from tests.sidecar.test_rerank_proxy import (
    QUERY,
    QUERY_TEXT,
    TOL,
    WINDOW,
    direct_hits,
    reference_scores,
    rerank_settings,
    reranked_ids,
)

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "clients" / "js"
ES9_PY_DIR = ROOT / ".venv" / "clients" / "es9"
INDEX = "catalog-clients"  # the catalog profile's rule (catalog-*) applies
SIZE = 5
SECOND_QUERY = {"match": {"title": "running"}}
SECOND_TEXT = "running"
SECOND_SIZE = 4

# (engine, client): each engine's own Python and JavaScript clients, and the 8.x Python client
# on Elasticsearch 9 (which serves 8.x clients in compatibility mode).
CASES = [
    ("opensearch", "opensearch-py"),
    ("opensearch", "opensearch-js"),
    ("opensearch3", "opensearch-py"),
    ("opensearch3", "opensearch-js"),
    ("elasticsearch", "elasticsearch-py-8"),
    ("elasticsearch", "elasticsearch-js-8"),
    ("elasticsearch9", "elasticsearch-py-9"),
    ("elasticsearch9", "elasticsearch-py-8"),
    ("elasticsearch9", "elasticsearch-js-9"),
]
JS_CLIENTS = {
    "opensearch-js": "opensearch",
    "elasticsearch-js-8": "elasticsearch8",
    "elasticsearch-js-9": "elasticsearch9",
}
# The Content-Type each client gets back: Elasticsearch answers in the compatible-with version
# the client asked for, and the sidecar keeps the engine's Content-Type; OpenSearch answers JSON.
ANSWER_MEDIA = {
    "opensearch-py": "application/json",
    "opensearch-js": "application/json",
    "elasticsearch-py-8": "application/vnd.elasticsearch+json;compatible-with=8",
    "elasticsearch-js-8": "application/vnd.elasticsearch+json;compatible-with=8",
    "elasticsearch-py-9": "application/vnd.elasticsearch+json;compatible-with=9",
    "elasticsearch-js-9": "application/vnd.elasticsearch+json;compatible-with=9",
}
# @elastic/elasticsearch 9 runs on undici 7, which needs Node 20.18.1+.
MIN_NODE = {"elasticsearch-js-9": (20, 18, 1)}

parametrize_cases = pytest.mark.parametrize(
    ("engine_name", "client"), CASES, scope="module", ids=[f"{e}-{c}" for e, c in CASES]
)


@pytest.fixture(scope="module")
def engine(engine_name: str, request: pytest.FixtureRequest, media_dir: Path) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(engine_name)
    catalog.load(handle.client, INDEX, media_dir)
    return handle


@pytest.fixture(scope="module")
def proxy(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def expected(engine: EngineHandle, tiny_scorers: dict[str, Any]) -> dict[str, Any]:
    """The reranked window of both queries, from the engine's own order (raw HTTP, direct) and
    the tiny model's reference scores: hit id → score, and the ids in reranked order."""
    out: dict[str, Any] = {}
    for name, query, text in (("first", QUERY, QUERY_TEXT), ("second", SECOND_QUERY, SECOND_TEXT)):
        baseline = direct_hits(engine, {"query": query, "size": WINDOW}, INDEX)
        scores = reference_scores(tiny_scorers, baseline, text)
        out[name] = {
            "ids": reranked_ids(baseline, scores),
            "scores": {h["_id"]: s for h, s in zip(baseline, scores, strict=True)},
        }
    return out


def _spec(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "index": INDEX,
        "search": {"query": QUERY, "size": SIZE},
        "msearch": [
            {"index": INDEX},
            {"query": QUERY, "size": SIZE},
            {"index": INDEX},
            {"query": SECOND_QUERY, "size": SECOND_SIZE},
        ],
    }


def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in re.findall(r"\d+", out)[:3])


def _subprocess(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, f"{argv[:2]} failed:\n{result.stdout}\n{result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _run_js(client: str, spec: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js (scripts/bootstrap.sh installs Debian's nodejs)")
    if not (JS_DIR / "node_modules" / ".package-lock.json").is_file():
        pytest.skip(f"the JavaScript clients are not installed: run `npm ci` in {JS_DIR}")
    minimum = MIN_NODE.get(client)
    if minimum and _node_version(node) < minimum:
        pytest.skip(f"{client} needs Node.js {'.'.join(map(str, minimum))}+")
    spec = {**spec, "client": JS_CLIENTS[client]}
    return _subprocess([node, str(JS_DIR / "search.mjs"), json.dumps(spec)])


def _run_es9_py(spec: dict[str, Any]) -> dict[str, Any]:
    if not (ES9_PY_DIR / "elasticsearch").is_dir():
        pytest.skip(f"elasticsearch-py 9 is not installed in {ES9_PY_DIR} (scripts/bootstrap.sh)")
    env = {**os.environ, "PYTHONPATH": str(ES9_PY_DIR)}
    script = Path(elasticsearch_search.__file__)
    return _subprocess([sys.executable, str(script), json.dumps(spec)], env)


def _run_opensearch_py(spec: dict[str, Any]) -> dict[str, Any]:
    from opensearchpy import OpenSearch, Urllib3HttpConnection

    class RecordingConnection(Urllib3HttpConnection):
        """opensearch-py returns only the body; its connection sees the raw response."""

        last: tuple[int, dict[str, str]] = (0, {})

        def perform_request(self, *args: Any, **kwargs: Any) -> Any:
            status, headers, raw = super().perform_request(*args, **kwargs)
            RecordingConnection.last = (status, dict(headers))
            return status, headers, raw

    client = OpenSearch(spec["url"], connection_class=RecordingConnection, timeout=180)
    out: dict[str, Any] = {"client": "opensearch-py"}
    try:
        for name, call in (
            ("search", lambda: client.search(index=spec["index"], body=spec["search"])),
            ("msearch", lambda: client.msearch(body=spec["msearch"])),
        ):
            try:
                body = call()
            except Exception as exc:
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                status, headers = RecordingConnection.last
                out[name] = {"status": status, "headers": headers, "body": body}
    finally:
        client.close()
    return out


@pytest.fixture(scope="module")
def answers(proxy: str, client: str) -> dict[str, Any]:
    """Both searches through ``client``, pointed at the sidecar: one run of the client."""
    spec = _spec(proxy)
    if client in JS_CLIENTS:
        return _run_js(client, spec)
    if client == "elasticsearch-py-9":
        return _run_es9_py(spec)
    if client == "elasticsearch-py-8":
        import elasticsearch

        assert elasticsearch.__versionstr__.startswith("8.")
        return elasticsearch_search.run(spec)
    assert client == "opensearch-py"
    return _run_opensearch_py(spec)


def _accepted(answers: dict[str, Any], name: str, client: str) -> tuple[dict[str, str], Any]:
    answer = answers[name]
    assert "error" not in answer, f"{answers['client']} refused the {name} answer: {answer}"
    assert answer["status"] == 200
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    media = headers["content-type"].replace(" ", "").split(";")
    assert (
        ";".join(m for m in media if not m.lower().startswith("charset=")) == (ANSWER_MEDIA[client])
    )
    return headers, answer["body"]


def _assert_reranked(hits: list[Any], expected: dict[str, Any], size: int) -> None:
    assert [h["_id"] for h in hits] == expected["ids"][:size]
    for hit in hits:
        assert hit["_score"] == pytest.approx(expected["scores"][hit["_id"]], abs=TOL)
        assert hit["fields"]["_rerank_score"][0] == pytest.approx(hit["_score"], abs=TOL)


@parametrize_cases
def test_search_through_the_official_client(
    answers: dict[str, Any], client: str, engine: EngineHandle, expected: dict[str, Any]
) -> None:
    headers, body = _accepted(answers, "search", client)
    assert headers["x-rerank-status"] == "applied", answers["client"]
    assert headers["x-rerank-model"] == "tiny-vl"
    if engine.name.startswith("elasticsearch"):
        assert headers["x-elastic-product"] == "Elasticsearch"
    _assert_reranked(body["hits"]["hits"], expected["first"], SIZE)
    assert body["hits"]["max_score"] == pytest.approx(
        max(expected["first"]["scores"].values()), abs=TOL
    )


@parametrize_cases
def test_msearch_through_the_official_client(
    answers: dict[str, Any], client: str, engine: EngineHandle, expected: dict[str, Any]
) -> None:
    headers, body = _accepted(answers, "msearch", client)
    assert headers["x-rerank-status"].split(", ") == ["applied", "applied"], answers["client"]
    if engine.name.startswith("elasticsearch"):
        assert headers["x-elastic-product"] == "Elasticsearch"
    first, second = body["responses"]
    assert first["status"] == second["status"] == 200
    _assert_reranked(first["hits"]["hits"], expected["first"], SIZE)
    _assert_reranked(second["hits"]["hits"], expected["second"], SECOND_SIZE)
