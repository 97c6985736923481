"""The sidecar's own Celery task messages: what ``send_task`` would store, key for key, and
scored by a real worker exactly like jobs sent with Celery's client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sidecar.scoring.celery_backend import CeleryDispatcher
from sidecar.scoring.celery_client import celery_client
from sidecar.scoring.celery_message import task_message
from sidecar.settings import DispatchSettings
from sidecar.testbed.redis_server import RunningRedis
from tests.conftest import ScoringWorkerHandle
from workers.contract import SCORE_TASK, ScoringJob, queue_name

DOCUMENTS = [{"id": "0", "text": "red running shoes"}, {"id": "1", "text": "a scarf"}]
JOB = {
    "model": "tiny-text",
    "query": {"text": "red shoes"},
    "deadline": 0.0,
    "documents": DOCUMENTS,
}


def decoded(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_the_message_is_the_one_send_task_stores(own_redis: RunningRedis) -> None:
    queue = queue_name("tiny-text", "interactive")
    deadline = time.time() + 30
    job = ScoringJob.model_validate({**JOB, "deadline": deadline})
    client = celery_client("rerank-sidecar", own_redis.url)
    try:
        client.send_task(SCORE_TASK, args=[job.model_dump(mode="json")], task_id="rs-a.1",
                         queue=queue, expires=datetime.fromtimestamp(deadline, UTC))  # fmt: skip
    finally:
        client.close()
    store = redis.Redis.from_url(own_redis.url)
    try:
        (theirs,) = [decoded(m) for m in store.lrange(queue, 0, -1)]
    finally:
        store.close()
    ours = decoded(task_message(SCORE_TASK, "rs-a.1", job.model_dump_json().encode(), queue,
                                expires_at=deadline))  # fmt: skip
    assert ours.keys() == theirs.keys()
    assert ours["body"] == theirs["body"]  # args (the job), kwargs, embed
    for part in ("headers", "properties"):
        assert ours[part].keys() == theirs[part].keys(), part
    unique = {"origin", "argsrepr", "expires"}  # who sent it, a log string, float rounding
    assert {k: v for k, v in ours["headers"].items() if k not in unique} == {
        k: v for k, v in theirs["headers"].items() if k not in unique
    }
    expiry = [datetime.fromisoformat(m["headers"]["expires"]) for m in (ours, theirs)]
    assert abs((expiry[0] - expiry[1]).total_seconds()) < 0.01
    for key in ("delivery_mode", "delivery_info", "priority", "body_encoding", "correlation_id"):
        assert ours["properties"][key] == theirs["properties"][key], key
    ttl = [int(m["properties"]["expiration"]) for m in (ours, theirs)]
    assert abs(ttl[0] - ttl[1]) < 1000


@pytest.mark.parametrize("publisher", ["direct", "celery"])
def test_a_real_worker_scores_both_publishers_jobs_alike(
    scoring_worker: ScoringWorkerHandle, tiny_scorers: dict[str, Any], publisher: str
) -> None:
    async def scored() -> list[float | None]:
        options = DispatchSettings(publisher=publisher)  # type: ignore[arg-type]
        dispatcher = CeleryDispatcher(scoring_worker.worker.broker_url, None, options)
        try:
            job = ScoringJob.model_validate({**JOB, "deadline": time.time() + 60})
            return (await dispatcher.score(job)).scores
        finally:
            await dispatcher.close()

    scores = asyncio.run(scored())
    expected = tiny_scorers["tiny-text"].score(JOB["query"], JOB["documents"])
    assert scores == pytest.approx(expected, abs=1e-5)
