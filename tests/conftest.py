"""Session fixtures: real servers, each started once per test run and stopped at its end.

- ``opensearch`` / ``opensearch3`` / ``elasticsearch`` / ``elasticsearch9``: an EngineHandle
  (url + official client; elasticsearch-py 8 for both Elasticsearch majors, which Elasticsearch 9
  answers in its REST compatibility mode for 8.x clients)
- ``redis_url``: the URL of a real redis-server; ``redis_client``: a redis-py client on it
- ``celery_worker``: a WorkerHandle (broker url + node name + Celery client) of a real worker
- ``tiny_model_dirs``: tiny random-weight checkpoints, built once and cached outside the repo
- ``media_dir``: small images and a video made for the run; ``tiny_registry``: registry entries
  for the tiny models; ``scoring_worker``: a real worker process serving them
- ``tiny_scorers``: in-process reference scorers (load_scorer) of the tiny models, by registry name
- ``sidecar_api``: the URL of a real sidecar (rerank API) scoring through that worker; its key
  is ``API_KEY``
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import (
    RunningRedis,
    RunningWorker,
    engine_specs,
    runnable_engines,
    start_engine,
    start_redis,
    start_worker,
)

API_KEY = "test-key-Zx81"


@dataclass
class EngineHandle:
    name: str
    url: str
    client: Any  # elasticsearch.Elasticsearch or opensearchpy.OpenSearch


@dataclass
class WorkerHandle:
    url: str  # the broker the worker consumes from
    hostname: str
    client: Any  # celery.Celery, for send_task


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


def _engine(settings: Settings, name: str) -> Iterator[EngineHandle]:
    if name not in engine_specs(settings):
        pytest.skip(f"{name} is switched off (RERANK_TESTBED__{name.upper()}_VERSION is unset)")
    if name not in runnable_engines(settings):
        pytest.skip(f"{name} needs a Java {engine_specs(settings)[name].min_java}+")
    engine = start_engine(engine_specs(settings)[name], settings)
    if engine.spec.flavor == "opensearch":
        from opensearchpy import OpenSearch

        client: Any = OpenSearch(engine.url)
    else:
        from elasticsearch import Elasticsearch

        client = Elasticsearch(engine.url)
    try:
        yield EngineHandle(name, engine.url, client)
    finally:
        client.close()
        engine.stop()


@pytest.fixture(scope="session")
def opensearch(settings: Settings) -> Iterator[EngineHandle]:
    yield from _engine(settings, "opensearch")


@pytest.fixture(scope="session")
def opensearch3(settings: Settings) -> Iterator[EngineHandle]:
    yield from _engine(settings, "opensearch3")


@pytest.fixture(scope="session")
def elasticsearch(settings: Settings) -> Iterator[EngineHandle]:
    yield from _engine(settings, "elasticsearch")


@pytest.fixture(scope="session")
def elasticsearch9(settings: Settings) -> Iterator[EngineHandle]:
    # elasticsearch-py 8 (the venv's pin) sends compatible-with=8, which Elasticsearch 9 serves;
    # elasticsearch-py 9 cannot share the venv with 8 (tests/sidecar/test_official_clients.py
    # drives it from a subprocess).
    yield from _engine(settings, "elasticsearch9")


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> Iterator[str]:
    server = start_redis(settings)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_redis(settings: Settings) -> Iterator[RunningRedis]:
    """A Redis of the test's own, to stop, restart or fill without touching the session's."""
    server = start_redis(settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def celery_worker(settings: Settings, redis_url: str) -> Iterator[WorkerHandle]:
    worker = start_worker(settings, redis_url)
    client = worker.client()
    try:
        yield WorkerHandle(worker.broker_url, worker.hostname, client)
    finally:
        client.close()
        worker.stop()


@pytest.fixture(scope="session")
def tiny_model_dirs(settings: Settings) -> dict[str, Path]:
    from workers.random_models import MODEL_KINDS, cached_tiny_model

    return {kind: cached_tiny_model(kind, settings.cache_dir) for kind in MODEL_KINDS}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.workers.media_files import mp4, png

    root = tmp_path_factory.mktemp("media")
    png(root / "red.png", (320, 240), (220, 20, 20))
    png(root / "blue.png", (200, 300), (20, 20, 220))
    mp4(root / "clip.mp4")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    return root


@pytest.fixture(scope="session")
def tiny_registry(tiny_model_dirs: dict[str, Path]) -> dict[str, Any]:
    from workers.contract import ModelSpec

    return {
        "tiny-vl": ModelSpec(path=str(tiny_model_dirs["qwen3-vl"]), kind="qwen3-vl", device="cpu"),
        "tiny-text": ModelSpec(path=str(tiny_model_dirs["qwen3"]), kind="qwen3", device="cpu"),
    }


@dataclass
class ScoringWorkerHandle:
    worker: RunningWorker
    settings: WorkerSettings

    def metric(self, name: str, model: str) -> float:
        """A counter of the worker's Prometheus endpoint (0 when not yet reported)."""
        import urllib.request

        url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        with urllib.request.urlopen(url) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(f'{name}{{model="{model}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="session")
def scoring_worker(
    settings: Settings, redis_url: str, tiny_registry: dict[str, Any], media_dir: Path
) -> Iterator[ScoringWorkerHandle]:
    from sidecar.testbed.ports import free_port

    worker_settings = WorkerSettings(media_roots=[media_dir], metrics_port=free_port())
    worker = start_worker(
        settings, redis_url, models=tiny_registry, worker_settings=worker_settings
    )
    try:
        yield ScoringWorkerHandle(worker, worker_settings)
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def sidecar_api(
    scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    from sidecar.app import create_app
    from sidecar.testbed.app_thread import serve_in_thread

    settings = Settings(
        models=tiny_registry,
        api={
            "keys": [API_KEY],
            "default_model": "tiny-vl",
            "timeout_ms": 60_000,
            "max_documents": 50,
        },
        celery={"broker_url": scoring_worker.worker.broker_url},
        server={"max_body_bytes": 200_000},
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def tiny_scorers(tiny_model_dirs: dict[str, Path], media_dir: Path) -> dict[str, Any]:
    """load_scorer() of the tiny models, keyed like ``tiny_registry``: the reference that scores
    from workers, the API and the plugins are compared with."""
    from workers.scoring import load_scorer

    return {
        "tiny-vl": load_scorer(tiny_model_dirs["qwen3-vl"], media_roots=[media_dir]),
        "tiny-text": load_scorer(tiny_model_dirs["qwen3"]),
    }
