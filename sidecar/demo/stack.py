"""Start the whole product on loopback and show what it does.

OpenSearch (test-bed distribution) + Redis + a Celery worker serving one model (the tiny
random-weight Qwen3-VL reranker unless a real hub id or path is given) + the sidecar, each its
own process recorded in the test bed's state, so ``rerank-sidecar testbed down`` (``make down``)
stops them all. The sample catalog is indexed through the sidecar, then each sample query runs
twice through it: with ``X-Rerank: off`` (the engine's order) and reranked. A job runner
(``rerank-sidecar jobs-worker``) runs the demo's bulk job: the sample queries rescored into an
index and the score cache warmed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from sidecar.demo.catalog import build_catalog
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import Service, ServiceStartError, start_worker, up
from sidecar.testbed.bed import load_state, save_state
from sidecar.testbed.job_runner import start_job_runner
from sidecar.testbed.ports import free_port
from sidecar.testbed.process import ManagedProcess
from workers.contract import ModelSpec

INDEX = "demo-catalog"
MODEL = "demo"
PROFILE = "catalog"
SEARCH_FIELDS = ["title^2", "description", "tags"]
QUERIES = ["red running shoes", "warm clothes for winter", "something to drink from on a run"]
JOB_QUERIES = [*QUERIES, "blue jacket", "trail shoes", "a bag for the gym", "gloves", "rain gear"]
RESULTS_INDEX = "demo-rerank-results"


@dataclass(frozen=True)
class SearchComparison:
    query: str
    baseline: list[str]
    reranked: list[tuple[str, float]]
    status: str


def demo_dir(settings: Settings) -> Path:
    return settings.cache_dir / "demo"


def tiny_model(settings: Settings) -> Path:
    """The tiny Qwen3-VL reranker, built once (offline, CPU) by the CLI in a child process, so
    this process never loads torch."""
    out = demo_dir(settings) / "tiny-qwen3-vl"
    if not (out / "config.json").is_file():
        command = [sys.executable, "-m", "sidecar", "models", "build-tiny", "--kind", "qwen3-vl"]
        subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
    return out


def _sidecar_config(
    settings: Settings,
    engine_url: str,
    redis_url: str,
    spec: ModelSpec,
    model: str = MODEL,
    admin_token: str | None = None,
) -> dict[str, Any]:
    fields: dict[str, list[str]] = {"text": ["title", "description"]}
    if spec.kind == "qwen3-vl":
        fields["image"] = ["image"]
    return {
        "cache_dir": str(settings.cache_dir),
        "server": {"host": "127.0.0.1", "port": free_port()},
        "upstream": {"urls": [engine_url]},
        "celery": {"broker_url": redis_url},
        "models": {model: spec.model_dump(mode="json", exclude_none=True)},
        "api": {"default_model": model},
        # The jobs API's token; `rerank-sidecar jobs ... --config sidecar.yaml` reads it here.
        "admin": {"tokens": [admin_token or secrets.token_urlsafe(24)]},
        "rerank": {
            "profiles": {PROFILE: {"model": model, "window": 16, "fields": fields}},
            "rules": [{"index": "demo-*", "profile": PROFILE}],
            # The tiny model on a laptop's CPU, or a real one without a GPU, can take seconds.
            "timeout_ms": 60_000,
            "max_timeout_ms": 60_000,
        },
    }


def config_path(settings: Settings) -> Path:
    """The demo sidecar's settings (the admin token included): what ``--config`` takes."""
    return demo_dir(settings) / "sidecar.yaml"


def job_spec() -> dict[str, Any]:
    """The demo's bulk job: the sample queries against the catalog, each search as the demo's
    searches are, its results into an index and its scores into the cache."""
    return {
        "name": "demo catalog",
        "index": INDEX,
        "queries": {"inline": [{"id": f"q{i}", "text": q} for i, q in enumerate(JOB_QUERIES)]},
        "search": {"query": {"multi_match": {"query": "{{query}}", "fields": SEARCH_FIELDS}}},
        "rerank": {"profile": PROFILE},
        "output": {"index": RESULTS_INDEX, "warm_cache": True},
    }


def _start_sidecar(config: dict[str, Any], directory: Path, timeout_s: float = 60) -> Service:
    config_path = directory / "sidecar.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    config_path.chmod(0o600)  # it holds the admin token
    process = ManagedProcess.spawn(
        "sidecar",
        [sys.executable, "-m", "sidecar", "serve", "--config", str(config_path)],
        log_path=directory / "sidecar.log",
    )
    url = f"http://127.0.0.1:{config['server']['port']}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.is_running():
            raise ServiceStartError(f"the sidecar exited while starting:\n{process.log_tail()}")
        try:
            if httpx.get(f"{url}/_rerank/ready", timeout=2).status_code == 200:
                return Service("sidecar", url, process, f"config {config_path}")
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.stop()
    raise ServiceStartError(
        f"the sidecar was not ready within {timeout_s:g}s:\n{process.log_tail()}"
    )


def _record(settings: Settings, service: Service) -> None:
    save_state(settings, [*load_state(settings), service])


def start_stack(settings: Settings, spec: ModelSpec, on_started: Any) -> str:
    """Start engine, Redis, worker, job runner and sidecar; return the sidecar's URL."""
    directory = demo_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    images = directory / "images"
    build_catalog(images)
    services = up(
        settings, ["opensearch"], with_redis=True, with_worker=False, on_started=on_started
    )
    engine = next(s for s in services if s.name == "opensearch")
    redis = next(s for s in services if s.name == "redis")
    worker = start_worker(
        settings,
        redis.url,
        models={MODEL: spec},
        worker_settings=WorkerSettings(media_roots=[images]),
    )
    worker_service = Service("celery-worker", worker.broker_url, worker.process, worker.hostname)
    _record(settings, worker_service)
    on_started(worker_service)
    config = _sidecar_config(settings, engine.url, redis.url, spec)
    runner = start_job_runner(config)
    runner_service = Service("job-runner", redis.url, runner.process, runner.hostname)
    _record(settings, runner_service)
    on_started(runner_service)
    sidecar = _start_sidecar(config, directory)
    _record(settings, sidecar)
    on_started(sidecar)
    return sidecar.url


def load_catalog(url: str, settings: Settings) -> int:
    """Index the sample catalog through the sidecar (a pass-through bulk request)."""
    docs = build_catalog(demo_dir(settings) / "images")
    lines = "".join(
        json.dumps({"index": {"_index": INDEX, "_id": str(i)}}) + "\n" + json.dumps(doc) + "\n"
        for i, doc in enumerate(docs)
    )
    response = httpx.post(
        f"{url}/_bulk?refresh=true",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    response.raise_for_status()
    if response.json().get("errors"):
        raise RuntimeError(f"indexing the sample catalog failed: {response.text[:500]}")
    return len(docs)


def compare(url: str, query: str, size: int = 5) -> SearchComparison:
    body = {
        "query": {"multi_match": {"query": query, "fields": SEARCH_FIELDS}},
        "size": size,
    }
    baseline = httpx.post(
        f"{url}/{INDEX}/_search", json=body, headers={"X-Rerank": "off"}, timeout=120
    )
    reranked = httpx.post(f"{url}/{INDEX}/_search", json=body, timeout=120)
    baseline.raise_for_status()
    reranked.raise_for_status()
    return SearchComparison(
        query=query,
        baseline=[h["_source"]["title"] for h in baseline.json()["hits"]["hits"]],
        reranked=[(h["_source"]["title"], h["_score"]) for h in reranked.json()["hits"]["hits"]],
        status=reranked.headers.get("X-Rerank-Status", "?"),
    )


def eval_arguments(url: str, out: Path) -> list[str]:
    """``rerank-sidecar eval`` of the reranked catalog against the engine's order, on the
    demo's judgments (stored in rerank-judgments first, see ``store_judgments``)."""
    args = ["eval", "--url", url, "--index", INDEX, "--judgments", "index", "--baseline"]
    args += ["--profile", PROFILE, "--metric", "ndcg@5", "--metric", "precision@3"]
    args += ["--metric", "mrr@10", "--image-field", "image", "--out", str(out)]
    for field in SEARCH_FIELDS:
        args += ["--field", field]
    return args


def store_judgments(url: str) -> int:
    """The demo's judgments into rerank-judgments, through the sidecar."""
    from sidecar.demo.judgments import demo_judgments
    from sidecar.evaluation.cluster import Cluster
    from sidecar.evaluation.judgments.store import write_judgments

    with Cluster(url) as cluster:
        return write_judgments(cluster, demo_judgments(INDEX))


def run_job(url: str, settings: Settings) -> Path:
    """The demo's bulk job through ``rerank-sidecar jobs submit --wait`` (its progress bar and
    summary shown as the command prints them); returns the spec file, for running it again."""
    spec = demo_dir(settings) / "job.json"
    spec.write_text(json.dumps(job_spec(), indent=2), encoding="utf-8")
    command = [sys.executable, "-m", "sidecar", "jobs", "submit", str(spec), "--wait"]
    command += ["--url", url, "--config", str(config_path(settings))]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rerank-sidecar jobs submit exited with {result.returncode}")
    return spec


def run_eval(url: str, settings: Settings) -> Path:
    """The demo's eval run, its output shown as the command prints it; returns the report."""
    out = demo_dir(settings) / "eval"
    command = [sys.executable, "-m", "sidecar", *eval_arguments(url, out)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rerank-sidecar eval exited with {result.returncode}")
    return out / "report.html"
