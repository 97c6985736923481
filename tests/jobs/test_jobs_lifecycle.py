"""A job's life around its runner, on OpenSearch 2 with the session's Redis and scoring worker:
a cancel after which nothing more is written (and a resume that completes the rest), progress
read through a sidecar restarted mid-job, a warm_cache job after which the proxy's searches
never reach the scorer, the CLI's ``jobs submit --wait`` and its exit codes, and a named
credential: its scope enforced, its secret never in Redis, an index or a log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sidecar.app import create_app
from sidecar.jobs.runner import JOBS_QUEUE, runner_celery_app
from sidecar.jobs.spec import DEFAULT_SEARCH, fill
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.job_runner import RunningJobRunner
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.jobs.bed import (
    AUTH,
    SOURCE,
    TOKEN,
    WINDOW,
    config,
    drop_job_indices,
    expected_ids,
    job,
    load_source,
    queries,
    result_docs,
    submit,
    wait_done,
    wait_progress,
)
from tests.waiting import wait_for

SECRET = "s3cret-jobs-password-7f3a"
CREDENTIALS = {
    "reader": {"basic_auth": f"jobs-reader:{SECRET}", "indices": ["jobs-*"]},
    "keyless": {"indices": ["jobs-*"]},  # its secret was never given to this sidecar
}


@pytest.fixture(scope="module")
def jobs_config(
    opensearch: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    load_source(opensearch)
    yield config(opensearch.url, scoring_worker.worker.broker_url, tiny_registry,
                 chunk_size=10, credentials=CREDENTIALS)  # fmt: skip
    drop_job_indices(opensearch)


def count(engine: EngineHandle, index: str, job_id: str) -> int:
    engine.client.indices.refresh(index=index)
    body = {"query": {"term": {"job_id": job_id}}}
    return int(engine.client.count(index=index, body=body)["count"])


def runner_idle(jobs_config: dict[str, Any], runner: RunningJobRunner, broker: Any) -> bool:
    """No chunk runs on the runner and none waits on its queue."""
    app = runner_celery_app(Settings.model_validate(jobs_config))
    try:
        active = app.control.inspect(destination=[runner.hostname], timeout=2.0).active() or {}
    finally:
        app.close()
    return not active.get(runner.hostname, [None]) and broker.llen(JOBS_QUEUE) == 0


def test_nothing_is_written_after_a_cancel_returns_and_a_resume_completes_the_rest(
    opensearch: EngineHandle,
    sidecar: str,
    runner: RunningJobRunner,
    jobs_config: dict[str, Any],
    redis_client: redis.Redis,
) -> None:
    target = "jobs-cancelled-results"
    opensearch.client.indices.delete(index=target, ignore_unavailable=True)
    items = queries()[:100]
    spec = {"index": SOURCE, "queries": {"inline": items}, "rerank": {"profile": "titles"},
            "output": {"index": target}, "limits": {"searches": 2}}  # fmt: skip
    job_id = submit(sidecar, spec).json()["id"]
    wait_progress(sidecar, job_id, 12)
    cancelled = httpx.delete(f"{sidecar}/_rerank/jobs/{job_id}", headers=AUTH, timeout=90)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    at_cancel = count(opensearch, target, job_id)
    assert 0 < at_cancel < len(items) * WINDOW

    wait_for(lambda: runner_idle(jobs_config, runner, redis_client), 120, "the runner to let go")
    assert count(opensearch, target, job_id) == at_cancel
    stopped = job(sidecar, job_id)
    assert stopped["state"] == "cancelled"
    assert stopped["totals"]["documents"] == at_cancel  # what was written is what was counted
    assert stopped["totals"]["done"] < len(items)

    resumed = httpx.post(f"{sidecar}/_rerank/jobs/{job_id}/_resume", headers=AUTH, timeout=10)
    assert resumed.status_code == 202, resumed.text
    final = wait_done(sidecar, job_id)
    assert final["state"] == "done" and final["totals"]["done"] == len(items)
    documents = result_docs(opensearch, target, job_id)
    assert sorted(d["_id"] for d in documents) == sorted(expected_ids(opensearch, job_id, items))
    assert final["totals"]["documents"] == len(documents)


def test_a_sidecar_restarted_mid_job_reads_the_jobs_progress(
    jobs_config: dict[str, Any], runner: RunningJobRunner
) -> None:
    items = queries()[100:160]
    spec = {"index": SOURCE, "queries": {"inline": items}, "rerank": {"profile": "titles"},
            "output": {"warm_cache": True}, "limits": {"searches": 1}}  # fmt: skip
    with serve_in_thread(create_app(Settings.model_validate(jobs_config))) as first:
        job_id = submit(first, spec).json()["id"]
        before = wait_progress(first, job_id, 5)
    with serve_in_thread(create_app(Settings.model_validate(jobs_config))) as second:
        after = job(second, job_id)
        assert after["state"] in ("running", "done")
        assert after["created_at"] == before["created_at"]
        assert after["totals"]["done"] >= before["totals"]["done"] >= 5
        final = wait_done(second, job_id)
    assert final["state"] == "done" and final["totals"]["done"] == len(items)


def test_after_a_warm_cache_job_the_proxys_searches_never_reach_the_scorer(
    sidecar: str, runner: RunningJobRunner, scoring_worker: ScoringWorkerHandle
) -> None:
    # Texts no other test searches for, so no pair of theirs is in the cache already.
    items = [{"id": f"warm-{i}", "text": f"{q['text']} on sale"} for i, q in
             enumerate(queries()[:40])]  # fmt: skip
    spec = {"index": SOURCE, "queries": {"inline": items}, "rerank": {"profile": "titles"},
            "output": {"warm_cache": True}}  # fmt: skip
    final = wait_done(sidecar, submit(sidecar, spec).json()["id"])
    assert final["state"] == "done", final
    assert final["totals"]["cache_hits"] == 0  # the pairs were new: the job scored them all
    assert final["totals"]["pairs"] == len(items) * WINDOW

    scored_before = scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-text")
    for item in items:
        body = {**fill(DEFAULT_SEARCH, item["text"]), "size": WINDOW,
                "ext": {"rerank": {"profile": "titles"}}}  # fmt: skip
        response = httpx.post(f"{sidecar}/{SOURCE}/_search", json=body, timeout=60)
        hits = response.json()["hits"]["hits"]
        assert len(hits) == WINDOW
        assert all("_rerank_score" in hit["fields"] for hit in hits), hits
    assert scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-text") == scored_before


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RERANK_")}
    env["COLUMNS"] = "200"
    argv = [sys.executable, "-m", "sidecar", "jobs", *args, "--token", TOKEN]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def test_cli_submit_wait_follows_the_job_and_exits_by_its_outcome(
    opensearch: EngineHandle, sidecar: str, runner: RunningJobRunner, tmp_path: Path
) -> None:
    items = queries()[160:200]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in items))
    spec = {"index": SOURCE, "rerank": {"profile": "titles"}, "output": {"warm_cache": True},
            "name": "cli"}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = _cli("submit", str(tmp_path / "spec.json"), "--queries", str(tmp_path / "queries.jsonl"),
                "--wait", "--url", sidecar)  # fmt: skip
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    assert ": done" in out and f"{len(items)} ({len(items)} done, 0 failed)" in out, out

    (tmp_path / "bad.json").write_text(json.dumps({**spec, "index": "no-such-index",
                                                   "queries": {"inline": items}}))  # fmt: skip
    refused = _cli("submit", str(tmp_path / "bad.json"), "--wait", "--url", sidecar)
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2, out
    assert "refused (400)" in out and "[index]" in out, out

    # A job whose source index disappears under it ends failed: exit 1, the reason printed.
    doomed = "jobs-doomed"
    load_source(opensearch, doomed)
    failing = {**spec, "index": doomed, "queries": {"inline": queries()}, "name": "doomed",
               "limits": {"searches": 1}}  # fmt: skip
    (tmp_path / "doomed.json").write_text(json.dumps(failing))
    follower = _cli("submit", str(tmp_path / "doomed.json"), "--wait", "--url", sidecar)
    try:

        def doomed_id() -> str | None:
            page = httpx.get(f"{sidecar}/_rerank/jobs?size=5", headers=AUTH, timeout=10).json()
            return next((j["id"] for j in page["jobs"] if j.get("name") == "doomed"), None)

        wait_for(doomed_id, 60, "the doomed job to be listed")
        job_id = doomed_id()
        assert job_id is not None
        wait_progress(sidecar, job_id, 3)
        opensearch.client.indices.delete(index=doomed)
        out, _ = follower.communicate(timeout=300)
    finally:
        follower.kill()
    assert follower.returncode == 1, out
    assert ": failed" in out and "the source index is gone" in out, out


def test_a_credentials_scope_is_enforced_and_its_secret_reaches_no_redis_index_or_log(
    opensearch: EngineHandle,
    sidecar: str,
    runner: RunningJobRunner,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    inline = {"inline": queries()[:20]}
    outside = {"index": SOURCE, "queries": inline, "rerank": {"profile": "titles"},
               "output": {"index": "other-results"}, "credentials": "reader"}  # fmt: skip
    refused = submit(sidecar, outside)
    assert refused.status_code == 403, refused.text
    assert "[credentials]" in refused.json()["error"]["reason"]
    assert not opensearch.client.indices.exists(index="other-results")
    keyless = submit(sidecar, {**outside, "output": {"warm_cache": True}, "credentials": "keyless"})
    assert keyless.status_code == 400, keyless.text
    assert "[credentials]" in keyless.text and "no api_key or basic_auth" in keyless.text

    target = "jobs-credential-results"
    opensearch.client.indices.delete(index=target, ignore_unavailable=True)
    spec = {**outside, "output": {"index": target}}
    response = submit(sidecar, spec)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    final = wait_done(sidecar, job_id)
    assert final["state"] == "done" and final["totals"]["done"] == 20
    assert final["spec"]["credentials"] == "reader"
    assert SECRET not in response.text + json.dumps(final)

    for key in redis_client.scan_iter(count=1000):
        kind = redis_client.type(key).decode()
        if kind == "string":
            values: list[Any] = [redis_client.get(key)]
        elif kind == "hash":
            values = list(redis_client.hgetall(key).values())
        elif kind == "list":
            values = redis_client.lrange(key, 0, -1)
        elif kind == "zset":
            values = redis_client.zrange(key, 0, -1)
        elif kind == "set":
            values = list(redis_client.smembers(key))
        else:
            continue
        assert all(SECRET.encode() not in (v or b"") for v in values), key
    stored = json.dumps(result_docs(opensearch, target, job_id))
    assert SECRET not in stored and "jobs-reader" not in stored
    assert SECRET not in runner.process.log_path.read_text(errors="replace")
    assert SECRET not in caplog.text


def test_a_ubi_query_set_is_the_most_frequent_user_queries_in_the_time_range(
    opensearch: EngineHandle, sidecar: str, runner: RunningJobRunner
) -> None:
    from sidecar.experiments.ubi_schema import queries_mapping

    index = "jobs-ubi-queries"
    client = opensearch.client
    client.indices.delete(index=index, ignore_unavailable=True)
    client.indices.create(index=index, body={"mappings": queries_mapping("opensearch")})
    logged = {"red shoes": 5, "blue jacket": 3, "green scarf": 2, "black boots": 1}
    lines = []
    for text, times in logged.items():
        for n in range(times):
            lines.append(json.dumps({"index": {"_index": index}}))
            lines.append(json.dumps({"user_query": text, "query_id": f"{text}-{n}",
                                     "timestamp": "2026-12-01T10:00:00Z"}))  # fmt: skip
    lines.append(json.dumps({"index": {"_index": index}}))  # too old: outside the range
    lines.append(json.dumps({"user_query": "old query", "timestamp": "2020-01-01T00:00:00Z"}))
    for _ in range(9):
        lines += [lines[-2], lines[-1]]
    client.bulk(body="\n".join(lines) + "\n", refresh=True)

    ubi = {
        "index": index,
        "top": 3,
        "since": "2026-11-30T00:00:00Z",
        "until": "2026-12-02T00:00:00Z",
    }
    spec = {"index": SOURCE, "queries": {"ubi": ubi}, "rerank": {"profile": "titles"},
            "output": {"index": "jobs-ubi-results"}}  # fmt: skip
    client.indices.delete(index="jobs-ubi-results", ignore_unavailable=True)
    response = submit(sidecar, spec)
    assert response.status_code == 202, response.text
    final = wait_done(sidecar, response.json()["id"])
    assert final["state"] == "done" and final["totals"]["queries"] == 3
    texts = {d["query_text"] for d in result_docs(opensearch, "jobs-ubi-results", final["id"])}
    assert texts == {"red shoes", "blue jacket", "green scarf"}
    missing = submit(sidecar, {**spec, "queries": {"ubi": {**ubi, "index": "no-ubi-here"}}})
    assert missing.status_code == 400 and "[queries.ubi]" in missing.text, missing.text
