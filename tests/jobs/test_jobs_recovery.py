"""A job outlives its processes: the job runner and the scoring worker are SIGKILLed mid-job and
new ones started; the job completes with exactly one result document per (query, hit of its
window): nothing lost, nothing written twice, every query counted once.

A Redis of the test's own and short visibility timeouts (chunks 6 s, scoring jobs 7 s), so the
unacknowledged chunk and scoring jobs of the dead processes come back within seconds.
"""

from __future__ import annotations

from typing import Any

from sidecar.app import create_app
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.celery_worker import start_worker
from sidecar.testbed.job_runner import start_job_runner
from sidecar.testbed.redis_server import RunningRedis
from tests.conftest import EngineHandle
from tests.jobs.bed import (
    SOURCE,
    config,
    expected_ids,
    job,
    load_source,
    queries,
    result_docs,
    submit,
    wait_done,
    wait_progress,
)

QUICK_WORKER = {
    "visibility_timeout_s": 7.0,
    "task_soft_time_limit_s": 5.0,
    "task_time_limit_s": 6.0,
    "redelivery_check_s": 1.0,
}


def test_runner_and_scoring_worker_killed_mid_job_then_replaced_give_exactly_the_documents(
    settings: Settings,
    opensearch: EngineHandle,
    own_redis: RunningRedis,
    tiny_registry: dict[str, Any],
) -> None:
    load_source(opensearch)
    text_only = {"tiny-text": tiny_registry["tiny-text"]}
    jobs_config = config(
        opensearch.url, own_redis.url, text_only,
        chunk_size=10, visibility_timeout_s=6.0, redelivery_check_s=1.0,
    )  # fmt: skip
    items = queries()[:120]
    target = "jobs-recovery-results"
    opensearch.client.indices.delete(index=target, ignore_unavailable=True)

    def scoring_worker() -> Any:
        return start_worker(settings, own_redis.url, models=text_only,
                            worker_settings=WorkerSettings(**QUICK_WORKER))  # fmt: skip

    workers = [scoring_worker()]
    runners = [start_job_runner(jobs_config)]
    try:
        with serve_in_thread(create_app(Settings.model_validate(jobs_config))) as url:
            spec = {
                "index": SOURCE,
                "queries": {"inline": items},
                "rerank": {"profile": "titles"},
                "output": {"index": target},
                "limits": {"searches": 2},
            }
            response = submit(url, spec)
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            wait_progress(url, job_id, 25)
            runners[0].kill()
            workers[0].process.kill()
            killed = job(url, job_id)
            assert killed["state"] == "running"
            assert killed["totals"]["done"] < len(items), "the job should still have had work"

            workers.append(scoring_worker())
            runners.append(start_job_runner(jobs_config))
            final = wait_done(url, job_id, timeout_s=300)
    finally:
        for runner in runners:
            runner.stop()
        for worker in workers:
            worker.stop()

    assert final["state"] == "done", final
    totals = final["totals"]
    assert (totals["queries"], totals["done"], totals["failed"]) == (len(items), len(items), 0)
    expected = expected_ids(opensearch, job_id, items)
    documents = result_docs(opensearch, target, job_id)
    assert sorted(d["_id"] for d in documents) == sorted(expected)
    count = opensearch.client.count(index=target, body={"query": {"term": {"job_id": job_id}}})
    assert count["count"] == len(expected) == totals["documents"]
    opensearch.client.indices.delete(index=target)  # the cluster green again for later tests
