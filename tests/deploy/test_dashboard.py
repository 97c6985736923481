"""deploy/grafana/rerank-sidecar.json against what the product really exports: a real sidecar
(reranking through the session's real Celery worker, score cache on) and that worker's
Prometheus endpoint are scraped after real traffic, and every metric name of every query (the
dashboard's, its variables', and the KEDA triggers the Helm chart renders) must be declared
there, with Prometheus' suffixes (_total, _bucket, _count, _sum) for its type; the labels a query
matches or groups by must be on its samples."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.deploy.helm import VALUES, of_kind, render
from tests.deploy.promql import Exposition, Query, parse, read_exposition
from tests.deploy.tools import ROOT
from tests.sidecar import catalog
from workers.contract import ModelSpec

DASHBOARD = ROOT / "deploy" / "grafana" / "rerank-sidecar.json"
INDEX = "dash-products"
API_KEY = "dashboard-key"
ADMIN_TOKEN = "dashboard-admin"
# Labels Prometheus adds to every target at scrape time (and Kubernetes service discovery's).
TARGET_LABELS = {"instance", "job", "namespace", "pod"}
# Counters of faults this test does not cause (a worker dying, a job expiring in the queue):
# declared by the exposition, but without samples here.
FAULT_COUNTERS = {
    "rerank_worker_expired_jobs_total",
    "rerank_worker_redelivered_jobs_total",
    "rerank_worker_dead_lettered_jobs_total",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> dict[str, str]:
    """Every PromQL expression: panel targets and query variables, by where it is."""
    board = dashboard()
    found = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found[f"variable {variable['name']}"] = text.removeprefix("label_values(").rsplit(
                ",", 1
            )[0]
    return found


@pytest.fixture(scope="module")
def exposition(
    opensearch: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    media_dir: Path,
) -> Exposition:
    """The sidecar's and the worker's expositions after reranked searches (twice: the second
    from the cache), a rerank API call with an unreadable image, pass-through requests, and a
    bulk job submitted (queued: no runner here, its numbers are in Redis all the same)."""
    catalog.load(opensearch.client, INDEX, media_dir)
    # A model in the registry that no worker serves: its searches degrade with no_worker.
    ghost = {"ghost": ModelSpec(path="/nonexistent/ghost", kind="qwen3", device="cpu")}
    settings = Settings(
        models={**tiny_registry, **ghost},
        upstream={"urls": [opensearch.url]},
        celery={"broker_url": scoring_worker.worker.broker_url},
        api={"keys": [API_KEY], "default_model": "tiny-vl", "timeout_ms": 120_000},
        admin={"tokens": [ADMIN_TOKEN]},
        rerank={
            "profiles": {"dash": {"model": "tiny-vl", "window": 4, "fields": {"text": ["title"]}}},
            "rules": [{"index": "dash-*", "profile": "dash"}],
            "timeout_ms": 120_000,
            "max_timeout_ms": 120_000,
        },
    )
    with serve_in_thread(create_app(settings)) as url:
        body = {"query": {"match": {"title": "red shoes"}}, "size": 4}
        for _ in range(2):
            answer = httpx.post(f"{url}/{INDEX}/_search", json=body, timeout=180)
            assert answer.headers["X-Rerank-Status"] == "applied", answer.headers
        ghostly = {**body, "ext": {"rerank": {"model": "ghost"}}}
        answer = httpx.post(f"{url}/{INDEX}/_search", json=ghostly, timeout=180)
        assert answer.headers["X-Rerank-Status"] == "degraded; reason=no_worker"
        answer = httpx.post(
            f"{url}/v1/rerank",
            json={
                "model": "tiny-vl",
                "query": "red",
                "documents": [{"text": "red cap"}, {"image": str(media_dir / "corrupt.png")}],
            },
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=180,
        )
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{url}/_cluster/health", timeout=30).status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        queries = {"inline": [{"id": "a", "text": "red"}]}
        job = {"index": INDEX, "queries": queries, "rerank": {"profile": "dash"},
               "output": {"warm_cache": True}, "name": "dash"}  # fmt: skip
        submitted = httpx.post(f"{url}/_rerank/jobs", json=job, headers=admin, timeout=30)
        assert submitted.status_code == 202, submitted.text
        scraped = read_exposition(httpx.get(f"{url}/_rerank/metrics", timeout=30).text)
        # No runner here: a later test's runner finds the job cancelled and leaves it.
        job_url = f"{url}/_rerank/jobs/{submitted.json()['id']}"
        assert httpx.delete(job_url, headers=admin, timeout=30).status_code == 200
    port = scoring_worker.settings.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        return read_exposition(response.read().decode(), scraped)


def check(where: str, query: Query, exposition: Exposition) -> list[str]:
    problems = []
    for metric in sorted(query.metrics):
        if metric not in exposition.names:
            problems.append(f"{where}: {metric} is not exported")
            continue
        labels = exposition.labels.get(metric)
        if labels is None:
            if metric not in FAULT_COUNTERS:
                problems.append(f"{where}: {metric} has no samples after real traffic")
            continue
        unknown = query.matched.get(metric, set()) - labels - TARGET_LABELS
        if unknown:
            problems.append(f"{where}: {metric} has no label {sorted(unknown)}")
    seen: set[str] = set()
    for metric in query.metrics:
        seen |= exposition.labels.get(metric, set())
    if seen and (unknown := query.grouped - seen - TARGET_LABELS):
        problems.append(f"{where}: grouped by {sorted(unknown)}, which its metrics lack")
    return problems


def test_every_dashboard_query_uses_exported_metrics(exposition: Exposition) -> None:
    queries = dashboard_queries()
    assert len(queries) > 20
    problems = [p for where, expr in queries.items() for p in check(where, parse(expr), exposition)]
    assert not problems, "\n".join(problems)


def test_the_keda_triggers_use_exported_metrics(exposition: Exposition) -> None:
    objects = render(VALUES["two-models"])
    triggers = [
        (s["metadata"]["name"], t["metadata"]["query"])
        for s in of_kind(objects, "ScaledObject")
        for t in s["spec"]["triggers"]
    ]
    assert len(triggers) == 3
    problems = [p for where, expr in triggers for p in check(where, parse(expr), exposition)]
    assert not problems, "\n".join(problems)


def test_the_dashboard_covers_what_operators_ask(exposition: Exposition) -> None:
    used = set().union(*(parse(expr).metrics for expr in dashboard_queries().values()))
    for needed in (
        "rerank_sidecar_requests_total",  # rate and errors per route
        "rerank_sidecar_request_seconds_bucket",  # duration per route
        "rerank_sidecar_searches_total",  # rerank status by reason
        "rerank_sidecar_rerank_seconds_bucket",  # rerank latency
        "rerank_queue_depth",  # queue depth per model and priority
        "rerank_worker_batch_size_bucket",  # batch sizes
        "rerank_worker_pairs_scored_total",  # pairs/s per worker
        "rerank_worker_tokens_total",  # tokens/s per worker
        "rerank_sidecar_cache_lookups_total",  # cache hit ratio
        "rerank_job_queries",  # jobs progress
    ):
        assert needed in used
    # Sanity of the scrape itself: the cache answered the second search.
    assert "rerank_sidecar_cache_lookups_total" in exposition.labels


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["schemaVersion"] >= 36
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"] == datasource
        assert panel["targets"] and all(t["datasource"] == datasource for t in panel["targets"])
    titles = {p["title"] for p in panels(board)}
    assert {"Jobs by state", "Jobs progress", "Job pairs scored per second"} <= titles


def test_the_check_refuses_names_the_product_does_not_export(exposition: Exposition) -> None:
    for expr in (
        "rate(rerank_sidecar_requests[5m])",  # a counter is exported with _total
        "histogram_quantile(0.9, rate(rerank_worker_batch_size[5m]))",  # buckets: _bucket
        "sum by (variant) (rerank_queue_depth)",  # no such label
        'rerank_worker_pairs_scored_total{gpu="0"}',
        "rerank_queue_length",
    ):
        assert check("probe", parse(expr), exposition), expr
    assert not check("probe", parse("sum by (model) (rerank_queue_depth)"), exposition)


def test_a_model_without_workers_still_shows_demand(exposition: Exposition) -> None:
    """What the scale-to-zero trigger reads: no job was queued for the model (the sidecar
    answered no_worker at once), but the rerank attempt was counted under its name."""
    attempts = [
        value
        for name, labels, value in exposition.samples
        if name == "rerank_sidecar_rerank_seconds_count" and labels.get("model") == "ghost"
    ]
    assert attempts == [1.0]
    depth = [
        value
        for name, labels, value in exposition.samples
        if name == "rerank_queue_depth" and labels.get("model") == "ghost"
    ]
    assert depth == [0.0, 0.0]  # interactive and bulk: nothing queued
