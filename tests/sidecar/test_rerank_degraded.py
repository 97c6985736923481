"""When scoring fails, the search still answers: the engine's own page, and a header saying why;
or, when the request asks for it (on_error: fail), a 502/504 in the engine's error format.
Real failures only: a worker that was stopped, a Redis that was stopped, a deadline shorter than
the model needs, a job the worker fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import start_worker
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog
from tests.sidecar.test_rerank_proxy import QUERY, direct_hits, ids, post, rerank_settings

INDEX = "catalog-degraded"


@pytest.fixture(scope="module")
def engine(opensearch: EngineHandle, media_dir: Path) -> EngineHandle:
    catalog.load(opensearch.client, INDEX, media_dir)
    return opensearch


def _baseline(engine: EngineHandle, start: int = 0, size: int = 5) -> list[str]:
    hits = direct_hits(engine, {"query": QUERY, "from": start, "size": size}, INDEX)
    return [h["_id"] for h in hits]


def _search(url: str, rerank: dict[str, Any] | None = None, **page: int) -> Any:
    body: dict[str, Any] = {"query": QUERY, "size": 5, **page}
    if rerank is not None:
        body["ext"] = {"rerank": rerank}
    return post(f"{url}/{INDEX}/_search", body)


def _assert_engine_error(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status
    error = response.json()
    assert error["status"] == status
    assert error["error"]["type"] == f"rerank_sidecar_{reason}"
    assert response.headers["X-Rerank-Status"] == f"failed; reason={reason}"


def test_a_deadline_shorter_than_the_model_needs(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        degraded = _search(url, {"timeout_ms": 1}, **{"from": 2})
        failed = _search(url, {"timeout_ms": 1, "on_error": "fail"})
        in_time = _search(url, {"timeout_ms": 120_000})

    assert degraded.status_code == 200
    assert degraded.headers["X-Rerank-Status"] == "degraded; reason=timeout"
    assert ids(degraded) == _baseline(engine, start=2)
    hits = degraded.json()["hits"]["hits"]
    assert all("_rerank_score" not in h.get("fields", {}) for h in hits)
    assert set(hits[0]["_source"]) >= {"title", "brand"}  # the client's view: everything
    _assert_engine_error(failed, 504, "timeout")
    assert in_time.headers["X-Rerank-Status"] == "applied"


def test_a_job_the_worker_fails(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    broken_query = {"text": "red shoes", "image": "/no/such/query.png"}
    with serve_in_thread(create_app(settings)) as url:
        degraded = _search(url, {"query": broken_query})
        failed = _search(url, {"query": broken_query, "on_error": "fail"})

    assert degraded.status_code == 200
    assert degraded.headers["X-Rerank-Status"] == "degraded; reason=worker_error"
    assert ids(degraded) == _baseline(engine)
    _assert_engine_error(failed, 502, "worker_error")


def test_a_stopped_worker(
    engine: EngineHandle,
    settings: Settings,
    own_redis: Any,
    tiny_registry: dict[str, Any],
    media_dir: Path,
) -> None:
    worker = start_worker(
        settings,
        own_redis.url,
        models=tiny_registry,
        worker_settings=WorkerSettings(media_roots=[media_dir]),
    )
    sidecar = rerank_settings(engine.url, own_redis.url, tiny_registry)
    try:
        with serve_in_thread(create_app(sidecar)) as url:
            before = _search(url)
            worker.stop()
            degraded = _search(url, {"timeout_ms": 1500})
            failed = _search(url, {"timeout_ms": 1500, "on_error": "fail"})
    finally:
        worker.stop()

    # A worker that stopped took its heartbeat with it: no job waits for a deadline.
    assert before.headers["X-Rerank-Status"] == "applied"
    assert degraded.status_code == 200
    assert degraded.headers["X-Rerank-Status"] == "degraded; reason=no_worker"
    assert float(degraded.headers["X-Rerank-Took-Ms"]) < 500
    assert ids(degraded) == _baseline(engine)
    _assert_engine_error(failed, 502, "no_worker")


def test_a_stopped_redis(
    engine: EngineHandle, own_redis: Any, tiny_registry: dict[str, Any]
) -> None:
    settings = rerank_settings(engine.url, own_redis.url, tiny_registry)
    cached = settings.model_copy(
        update={"dispatch": settings.dispatch.model_copy(update={"cache_enabled": True})}
    )
    own_redis.stop()
    with serve_in_thread(create_app(cached)) as url:
        degraded = _search(url, {"timeout_ms": 5000})
        failed = _search(url, {"timeout_ms": 5000, "on_error": "fail"})

    assert degraded.status_code == 200
    assert degraded.headers["X-Rerank-Status"] == "degraded; reason=broker_unavailable"
    assert ids(degraded) == _baseline(engine)
    _assert_engine_error(failed, 502, "broker_unavailable")
