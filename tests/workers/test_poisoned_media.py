"""Hostile media against real Celery workers: the worker stays up and within its memory limit,
every job is answered, and a job that kills workers is dead-lettered instead of going round."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from sidecar.scoring.celery_client import celery_client
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import start_worker
from sidecar.testbed.ports import free_port
from tests.conftest import ScoringWorkerHandle
from tests.waiting import wait_for
from workers.contract import (
    SCORE_TASK,
    ModelSpec,
    ScoringJob,
    ScoringResult,
    heartbeat_key,
    queue_name,
)
from workers.scoring import Scorer
from workers.tasks import DEAD_LETTER_KEY, DELIVERIES_KEY

WORKER_MEMORY_LIMIT_KB = int(2.5 * 1024 * 1024)
"""Peak resident memory (VmHWM) a worker with the two tiny models may reach while scoring the
hostile files: it starts at ~1.15 GiB (torch, both models, warm-up) and scoring the GIF's 64
sampled frames (upscaled to 384x384 float32, patches, the forward pass) took it to ~1.9 GiB
(measured on 2 cores). The stock reader alone adds 3.0 GB for this GIF (every frame decoded),
so the old worker passes 4 GiB (docs/decisions/0007-worker-media-limits.md)."""


def _job(model: str, docs: list[dict[str, Any]], **extra: Any) -> ScoringJob:
    return ScoringJob(
        model=model,
        query={"text": "a clip"},
        documents=[{"id": str(i), **doc} for i, doc in enumerate(docs)],
        deadline=extra.pop("deadline", time.time() + 120),
        **extra,
    )


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_poisoned_videos_leave_the_worker_up_and_within_its_memory(
    settings: Settings,
    own_redis_url: str,
    tiny_registry: dict[str, ModelSpec],
    media_dir: Path,
    hostile_media: dict[str, Path],
    tiny_scorers: dict[str, Scorer],
) -> None:
    worker_settings = WorkerSettings(
        media_roots=[media_dir],
        metrics_port=free_port(),
        media_max_video_duration_s=1800,  # the one-hour MP4 is refused, the GIF (1000 s) read
    )
    worker = start_worker(
        settings, own_redis_url, models=tiny_registry, worker_settings=worker_settings
    )
    client = celery_client("rerank-client", own_redis_url, own_redis_url)
    broker = redis.Redis.from_url(own_redis_url)
    try:
        before_kb = _vm_hwm_kb(worker.process.pid)
        docs = [
            {"video": str(hostile_media["gif"])},
            {"video": str(hostile_media["mp4"])},
            {"video": str(media_dir / "clip.mp4")},
            {"text": "a clip"},
        ]
        job = _job("tiny-vl", docs)
        sent = client.send_task(
            SCORE_TASK,
            args=[job.model_dump(mode="json")],
            queue=queue_name("tiny-vl", "interactive"),
        )
        result = ScoringResult.model_validate(sent.get(timeout=120))
        peak_kb = _vm_hwm_kb(worker.process.pid)
        assert worker.process.is_running()
        assert client.control.ping(destination=[worker.hostname], timeout=5)
        reasons = {e.index: e.error for e in result.errors}
        assert list(reasons) == [1]
        assert "3600.0 s long, over the worker.media_max_video_duration_s limit" in reasons[1]
        assert None not in (result.scores[0], result.scores[2], result.scores[3])
        [expected] = tiny_scorers["tiny-vl"].score(job.query.model_dump(), [docs[0]])
        assert abs(result.scores[0] - expected) <= 1e-5  # type: ignore[operator]
        # Answered once: no redelivery, no dead letter, the delivery count cleared.
        assert sent.state == "SUCCESS"
        assert broker.get(DELIVERIES_KEY + sent.id) is None
        assert broker.llen(DEAD_LETTER_KEY) == 0
        print(f"worker VmHWM: {before_kb / 1024:.0f} MiB at start, {peak_kb / 1024:.0f} MiB peak")
        assert peak_kb < WORKER_MEMORY_LIMIT_KB, (before_kb, peak_kb)
    finally:
        client.close()
        worker.stop()
    # A gracefully stopped worker takes itself out of the heartbeat sets.
    for model in tiny_registry:
        assert broker.zscore(heartbeat_key(model), worker.hostname) is None
    broker.close()


QUICK = {
    "visibility_timeout_s": 3.0,
    "task_soft_time_limit_s": 1.5,
    "task_time_limit_s": 2.5,
    "redelivery_check_s": 0.5,
    "max_deliveries": 1,
}


def _text_worker(
    settings: Settings, broker_url: str, tiny_registry: dict[str, ModelSpec], media_dir: Path
) -> ScoringWorkerHandle:
    worker_settings = WorkerSettings(media_roots=[media_dir], metrics_port=free_port(), **QUICK)
    worker = start_worker(
        settings,
        broker_url,
        models={"tiny-text": tiny_registry["tiny-text"]},
        worker_settings=worker_settings,
    )
    return ScoringWorkerHandle(worker, worker_settings)


def test_a_job_that_killed_its_workers_is_dead_lettered(
    settings: Settings,
    own_redis_url: str,
    tiny_registry: dict[str, ModelSpec],
    media_dir: Path,
) -> None:
    """max_deliveries 1: the job runs once; its worker is SIGKILLed mid-job (as the OOM killer
    would); the redelivery is answered with an error for every document, not run. (With the
    default 2, the one redelivery runs: test_worker_killed_mid_job_loses_no_job.)"""
    broker = redis.Redis.from_url(own_redis_url)
    client = celery_client("rerank-client", own_redis_url, own_redis_url)
    first = _text_worker(settings, own_redis_url, tiny_registry, media_dir).worker
    second: ScoringWorkerHandle | None = None
    try:
        docs = [{"text": f"document {i} " + "long text " * 400} for i in range(80)]
        job = _job("tiny-text", docs)
        sent = client.send_task(
            SCORE_TASK,
            args=[job.model_dump(mode="json")],
            queue=queue_name("tiny-text", "interactive"),
        )
        counter = DELIVERIES_KEY + sent.id
        wait_for(lambda: broker.get(counter) == b"1", 60, "the first delivery")
        first.process.kill()  # mid-job: the job is unacknowledged and goes back to the queue
        second = _text_worker(settings, own_redis_url, tiny_registry, media_dir)
        result = ScoringResult.model_validate(sent.get(timeout=60))
        assert result.scores == [None] * len(docs)
        assert {e.index for e in result.errors} == set(range(len(docs)))
        assert all(
            e.error.startswith("dropped after 2 deliveries: a worker died while scoring this job")
            for e in result.errors
        )
        [entry] = [json.loads(raw) for raw in broker.lrange(DEAD_LETTER_KEY, 0, -1)]
        assert entry["task_id"] == sent.id and entry["model"] == "tiny-text"
        assert entry["deliveries"] == 2 and entry["documents"] == len(docs)
        assert set(entry) == {
            "task_id",
            "model",
            "priority",
            "documents",
            "deliveries",
            "deadline",
            "at",
            "worker",
        }
        assert second.metric("rerank_worker_dead_lettered_jobs_total", "tiny-text") == 1
        # Acknowledged: nothing is left for Redis to deliver again.
        wait_for(lambda: broker.hlen("unacked") == 0, 30, "the acknowledgement")
        # The worker that answered is up and scores the next job.
        assert second.worker.process.is_running()
        ok = client.send_task(
            SCORE_TASK,
            args=[_job("tiny-text", [{"text": "a clip"}]).model_dump(mode="json")],
            queue=queue_name("tiny-text", "interactive"),
        )
        assert ScoringResult.model_validate(ok.get(timeout=60)).scores[0] is not None
        assert broker.get(counter) == b"2"
    finally:
        client.close()
        first.stop()
        if second is not None:
            second.worker.stop()
        broker.close()
