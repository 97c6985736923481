"""Scoring jobs through the real Redis and real worker processes, checked against load_scorer."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import TaskRevokedError

from sidecar.scoring.celery_client import celery_client
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import RunningWorker, start_worker
from sidecar.testbed.ports import free_port
from tests.conftest import ScoringWorkerHandle
from tests.waiting import wait_for
from workers.contract import SCORE_TASK, ModelSpec, ScoringJob, ScoringResult, queue_name
from workers.scoring import Scorer

TOLERANCE = 1e-5


def _worker_settings(media_dir: Path, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(media_roots=[media_dir], metrics_port=free_port(), **overrides)


def _job(model: str, query: dict[str, Any], docs: list[dict[str, Any]], **extra: Any) -> ScoringJob:
    return ScoringJob(
        model=model,
        query=query,
        documents=[{"id": str(i), **doc} for i, doc in enumerate(docs)],
        deadline=extra.pop("deadline", time.time() + 60),
        **extra,
    )


_clients: dict[str, Any] = {}


def _send(worker: RunningWorker, job: ScoringJob, **options: Any) -> Any:
    return _publish(worker.broker_url, job, **options)


def _publish(broker_url: str, job: ScoringJob, **options: Any) -> Any:
    """Publish ``job``; one Celery client per broker, closed when the module ends, because the
    AsyncResult keeps using its client's result backend."""
    client = _clients.setdefault(broker_url, celery_client("rerank-client", broker_url, broker_url))
    return client.send_task(
        SCORE_TASK,
        args=[job.model_dump(mode="json")],
        queue=queue_name(job.model, job.priority),
        **options,
    )


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for client in _clients.values():
        client.close()
    _clients.clear()


CASES = {
    "text": (
        "tiny-text",
        {"text": "red shoes"},
        [{"text": "red running shoes"}, {"text": "blue jacket " * 30}],
    ),
    "vl-text": (
        "tiny-vl",
        {"text": "red shoes"},
        [{"text": "red running shoes"}, {"text": "scarf"}],
    ),
    "image": ("tiny-vl", {"text": "red shoes"}, [{"image": "red.png"}, {"image": "blue.png"}]),
    "video": ("tiny-vl", {"text": "a clip"}, [{"video": "clip.mp4"}, {"text": "a clip"}]),
    "mixed": (
        "tiny-vl",
        {"text": "red"},
        [{"text": "red", "image": "red.png"}, {}, {"video": "clip.mp4", "text": "x"}],
    ),
    "image-query": (
        "tiny-vl",
        {"image": "red.png"},
        [{"image": "blue.png"}, {"text": "red shoes"}],
    ),
}


def _absolute(side: dict[str, Any], root: Path) -> dict[str, Any]:
    return {k: (str(root / v) if k in ("image", "video") else v) for k, v in side.items()}


@pytest.mark.parametrize("case", CASES)
def test_worker_scores_equal_in_process_scores(
    case: str,
    scoring_worker: ScoringWorkerHandle,
    tiny_scorers: dict[str, Scorer],
    media_dir: Path,
) -> None:
    model, query, docs = CASES[case]
    query, docs = _absolute(query, media_dir), [_absolute(d, media_dir) for d in docs]
    result = ScoringResult.model_validate(
        _send(scoring_worker.worker, _job(model, query, docs)).get(timeout=60)
    )
    local = tiny_scorers[model].score_with_errors(query, docs)
    expected = local.scores
    assert result.tokens == local.tokens > 0
    assert result.errors == []
    assert result.model == model
    assert max(abs(a - b) for a, b in zip(result.scores, expected, strict=True)) <= TOLERANCE  # type: ignore[operator]


def test_bad_document_gets_null_and_an_error_entry(
    scoring_worker: ScoringWorkerHandle, media_dir: Path
) -> None:
    docs = [{"text": "ok"}, {"image": str(media_dir / "corrupt.png")}, {"image": "/etc/hostname"}]
    result = ScoringResult.model_validate(
        _send(scoring_worker.worker, _job("tiny-vl", {"text": "q"}, docs)).get(timeout=60)
    )
    assert result.scores[0] is not None and result.scores[1:] == [None, None]
    reasons = {e.index: e.error for e in result.errors}
    assert "could not be decoded" in reasons[1]
    assert "outside the allowed media directories" in reasons[2]


def test_bulk_priority_goes_to_its_own_queue(
    scoring_worker: ScoringWorkerHandle,
) -> None:
    job = _job("tiny-text", {"text": "q"}, [{"text": "d"}], priority="bulk")
    result = ScoringResult.model_validate(_send(scoring_worker.worker, job).get(timeout=60))
    assert result.scores[0] is not None


def test_invalid_job_is_refused_by_the_contract(
    scoring_worker: ScoringWorkerHandle,
) -> None:
    client = scoring_worker.worker.client()
    try:
        bad = {
            "v": 1,
            "model": "tiny-text",
            "query": {"text": "q"},
            "documents": [],
            "deadline": time.time() + 60,
        }
        result = client.send_task(
            SCORE_TASK, args=[bad], queue=queue_name("tiny-text", "interactive")
        )
        with pytest.raises(Exception, match="documents"):
            result.get(timeout=60)
    finally:
        client.close()


def test_expired_task_never_reaches_the_model(
    scoring_worker: ScoringWorkerHandle,
) -> None:
    worker = scoring_worker.worker
    before = scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-text")
    # Expired in the broker: Celery revokes it on receipt.
    stale = _job("tiny-text", {"text": "q"}, [{"text": "d"}], deadline=time.time() - 1)
    with pytest.raises(TaskRevokedError):
        _send(worker, stale, expires=datetime.now(UTC) - timedelta(seconds=1)).get(timeout=60)
    # Expired by its own deadline (no broker expiry): the task drops it before the model.
    result = ScoringResult.model_validate(_send(worker, stale).get(timeout=60))
    assert result.scores == [None]
    assert "deadline passed" in result.errors[0].error
    assert scoring_worker.metric("rerank_worker_expired_jobs_total", "tiny-text") >= 1
    assert scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-text") == before


def test_worker_health_and_metrics(scoring_worker: ScoringWorkerHandle) -> None:
    worker, port = scoring_worker.worker, scoring_worker.settings.metrics_port
    _send(worker, _job("tiny-text", {"text": "q"}, [{"text": "a"}, {"text": "b"}])).get(timeout=60)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
        health = response.read()
    assert b'"models": ["tiny-text", "tiny-vl"]' in health
    assert scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-text") >= 2
    assert scoring_worker.metric("rerank_worker_tokens_total", "tiny-text") > 0


def test_worker_killed_mid_job_loses_no_job(
    settings: Settings,
    own_redis_url: str,
    tiny_registry: dict[str, ModelSpec],
    media_dir: Path,
    tiny_scorers: dict[str, Scorer],
) -> None:
    # The worker caps a job at task_time_limit_s (the threads pool enforces no Celery limit):
    # the job below takes about 1.5 s on 2 cores, so it runs when killed and finishes in time.
    quick = dict(
        visibility_timeout_s=7.0,
        task_soft_time_limit_s=5.0,
        task_time_limit_s=6.0,
        redelivery_check_s=1.0,
    )
    text_only = {"tiny-text": tiny_registry["tiny-text"]}
    first = start_worker(
        settings,
        own_redis_url,
        models=text_only,
        worker_settings=_worker_settings(media_dir, **quick),
    )
    docs = [{"text": f"document {i} " + "long text " * 400} for i in range(80)]
    job = _job("tiny-text", {"text": "red shoes"}, docs, deadline=time.time() + 120)
    result = _send(first, job)
    try:
        deadline = time.time() + 60
        while result.state != "STARTED" and time.time() < deadline:
            time.sleep(0.02)
        assert result.state == "STARTED", "the job should have started on the first worker"
        first.process.kill()  # SIGKILL the whole worker mid-job
        second = start_worker(
            settings,
            own_redis_url,
            models=text_only,
            worker_settings=_worker_settings(media_dir, **quick),
        )
        try:
            scored = ScoringResult.model_validate(result.get(timeout=120))
        finally:
            second.stop()
    finally:
        first.stop()
    assert None not in scored.scores
    expected = tiny_scorers["tiny-text"].score(job.query.model_dump(exclude_none=True), docs[:3])
    assert max(abs(a - b) for a, b in zip(scored.scores[:3], expected, strict=True)) <= TOLERANCE  # type: ignore[operator]


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    settings: Settings,
    own_redis_url: str,
    tiny_registry: dict[str, ModelSpec],
    media_dir: Path,
) -> None:
    """Celery's warm shutdown: the job being scored when SIGTERM comes is answered in full, then
    the worker closes its batchers and exits 0 (what a pod's termination grace period waits
    for)."""
    worker = start_worker(
        settings,
        own_redis_url,
        models={"tiny-text": tiny_registry["tiny-text"]},
        worker_settings=_worker_settings(media_dir),
    )
    try:
        docs = [{"text": f"document {i} " + "long text " * 400} for i in range(80)]
        result = _send(worker, _job("tiny-text", {"text": "red shoes"}, docs))
        deadline = time.time() + 60
        while result.state != "STARTED" and time.time() < deadline:
            time.sleep(0.02)
        assert result.state == "STARTED"
        os.kill(worker.process.pid, signal.SIGTERM)
        scored = ScoringResult.model_validate(result.get(timeout=120))
        assert None not in scored.scores and not scored.errors
        wait_for(lambda: not worker.process.is_running(), 60, "the worker to exit")
        assert worker.process.exit_code() == 0, worker.process.log_tail()
    finally:
        worker.stop()


def test_interactive_jobs_go_ahead_of_queued_bulk_jobs(
    settings: Settings, own_redis_url: str, tiny_registry: dict[str, ModelSpec], media_dir: Path
) -> None:
    one_at_a_time = settings.model_copy(
        update={"testbed": settings.testbed.model_copy(update={"worker_concurrency": 1})}
    )
    text_only = {"tiny-text": tiny_registry["tiny-text"]}
    # Six bulk jobs queued first, then one interactive job, all before any worker runs: in
    # queue order the interactive job would be last.
    heavy = [{"text": "long text " * 300} for _ in range(48)]
    bulk = [
        _publish(own_redis_url, _job("tiny-text", {"text": f"bulk {i}"}, heavy, priority="bulk"))
        for i in range(6)
    ]
    interactive = _publish(own_redis_url, _job("tiny-text", {"text": "now"}, [{"text": "d"}]))
    worker = start_worker(
        one_at_a_time, own_redis_url, models=text_only, worker_settings=_worker_settings(media_dir)
    )
    try:
        interactive.get(timeout=120)
        for job in bulk:
            job.get(timeout=120)
    finally:
        worker.stop()
    # The times the backend stored when each job finished: at most one bulk job (one the worker
    # had already reserved beside the interactive one) finished before it; the rest waited.
    done_at = interactive.date_done
    finished_before = [job for job in bulk if job.date_done < done_at]
    assert len(finished_before) <= 1, [job.date_done for job in bulk]
    assert bulk[-1].date_done > done_at
