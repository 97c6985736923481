"""The sidecar's own endpoints (health, readiness, metrics) and its access log."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.ports import free_port
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar.test_rerank_proxy import QUERY, post, rerank_settings

INDEX = "catalog-admin"


def _one_doc_index(engine: EngineHandle) -> None:
    """No replica, so the shared test cluster stays green."""
    if not engine.client.indices.exists(index=INDEX):
        engine.client.indices.create(
            index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
        )
    engine.client.index(index=INDEX, body={"title": "red shoes"}, refresh=True)


def test_health_readiness_and_metrics(
    opensearch: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    _one_doc_index(opensearch)
    settings = rerank_settings(opensearch.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        health = httpx.get(f"{url}/_rerank/health")
        ready = httpx.get(f"{url}/_rerank/ready")
        reranked = post(f"{url}/{INDEX}/_search", {"query": QUERY})
        plain = httpx.get(f"{url}/_cat/indices")
        metrics = httpx.get(f"{url}/_rerank/metrics")

    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"cluster": "ok", "redis": "ok"}}
    assert reranked.headers["X-Rerank-Status"] == "applied"
    assert plain.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.text
    assert 'rerank_sidecar_searches_total{outcome="applied",reason=""} 1.0' in text
    assert 'rerank_sidecar_requests_total{code="200",route="search"} 1.0' in text
    assert 'rerank_sidecar_requests_total{code="200",route="passthrough"} 1.0' in text
    assert 'rerank_sidecar_rerank_seconds_count{model="tiny-vl"} 1.0' in text


def test_not_ready_when_no_cluster_node_answers(tiny_registry: dict[str, Any]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        models=tiny_registry,
        upstream={"urls": [closed], "retries": 0},
        celery={"broker_url": f"redis://127.0.0.1:{free_port()}/0"},
    )
    with serve_in_thread(create_app(settings)) as url:
        ready = httpx.get(f"{url}/_rerank/ready")
        search = httpx.get(f"{url}/any/_search")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["cluster"].startswith("unreachable")
    assert checks["redis"].startswith("unreachable")
    assert search.status_code == 502
    assert search.json()["error"]["type"] == "rerank_sidecar_upstream_unavailable"


def test_access_log_is_json_without_secrets(
    opensearch: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _one_doc_index(opensearch)
    settings = rerank_settings(opensearch.url, scoring_worker.worker.broker_url, tiny_registry)
    logger = logging.getLogger("rerank_sidecar.access")
    secret = "c2VjcmV0LWtleS1aeDgx"
    headers = {"Authorization": f"ApiKey {secret}", "X-Opaque-Id": "trace-7"}
    with (
        caplog.at_level(logging.INFO, logger="rerank_sidecar.access"),
        serve_in_thread(create_app(settings), access_log=logger) as url,
    ):
        ok = post(f"{url}/{INDEX}/_search", {"query": QUERY}, headers)
        # The engine refuses the unknown parameter; the point is what the log keeps of it.
        refused = post(f"{url}/{INDEX}/_search?api_key={secret}", {"query": QUERY}, headers)
    records = [r for r in caplog.records if r.name == "rerank_sidecar.access"]
    first, second = (json.loads(r.getMessage()) for r in records[-2:])
    assert first["method"] == "POST"
    assert first["status"] == ok.status_code == 200
    assert first["rerank"] == "applied"
    assert first["opaque_id"] == "trace-7"
    assert first["target"] == f"/{INDEX}/_search"
    assert second["status"] == refused.status_code
    assert second["target"] == f"/{INDEX}/_search?api_key=%5Bredacted%5D"
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_client_that_leaves_is_counted_as_499_not_500(
    opensearch: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    _one_doc_index(opensearch)
    settings = rerank_settings(opensearch.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            # Half a body, then gone: the handler is cancelled while it reads.
            sock.sendall(
                f"POST /{INDEX}/_search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                '\r\nContent-Length: 500\r\n\r\n{"query": '.encode()
            )
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{url}/_rerank/metrics").text
            if 'code="499"' in text:
                break
            time.sleep(0.05)
    assert 'rerank_sidecar_requests_total{code="499",route="search"} 1.0' in text
    assert 'code="500"' not in text
