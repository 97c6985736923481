"""``rerank_queue_depth{model, priority}``, the gauge the workers' autoscaler reads, against a
real Redis and real Celery messages: jobs published with kombu priorities land in the priority
sub-lists (``<queue>\\x06\\x16<step>``) that a bare LLEN of the queue misses, and jobs a consumer
took but did not acknowledge sit in kombu's ``unacked`` hash; the sidecar's /_rerank/metrics
counts both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import create_app
from sidecar.scoring.celery_client import celery_client
from sidecar.scoring.queue_depth import priority_lists
from sidecar.settings import Settings
from sidecar.testbed import RunningRedis
from sidecar.testbed.app_thread import serve_in_thread
from workers.contract import SCORE_TASK, ModelSpec, ScoringJob, queue_name

MODELS = {
    "alpha": ModelSpec(path="/models/alpha", kind="qwen3"),
    "beta.v2": ModelSpec(path="/models/beta", kind="qwen3-vl"),
}


def publish(client: Celery, model: str, priority: str, kombu_priority: int) -> None:
    job = ScoringJob(
        model=model,
        query={"text": "red shoes"},
        documents=[{"id": "1", "text": "red running shoes"}],
        deadline=time.time() + 600,
        priority=priority,  # type: ignore[arg-type]
    )
    client.send_task(
        SCORE_TASK,
        args=[job.model_dump(mode="json")],
        queue=queue_name(model, priority),  # type: ignore[arg-type]
        priority=kombu_priority,
    )


def gauges(url: str) -> dict[tuple[str, str, str], float]:
    response = httpx.get(f"{url}/_rerank/metrics", timeout=10)
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in ("rerank_queue_depth", "rerank_queue_reserved"):
                labels = sample.labels
                found[(sample.name, labels["model"], labels["priority"])] = sample.value
    return found


@pytest.fixture
def sidecar(own_redis: RunningRedis) -> Iterator[str]:
    settings = Settings(
        models=MODELS, celery={"broker_url": own_redis.url}, dispatch={"cache_enabled": False}
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def publisher(own_redis: RunningRedis) -> Iterator[Celery]:
    client = celery_client("test-publisher", own_redis.url)
    try:
        yield client
    finally:
        client.close()


def test_every_kombu_priority_list_counts(
    sidecar: str, publisher: Celery, own_redis: RunningRedis
) -> None:
    for kombu_priority in (0, 0, 4, 9):  # steps 0, 0, 3 and 9
        publish(publisher, "alpha", "interactive", kombu_priority)
    publish(publisher, "beta.v2", "bulk", 7)

    queue = queue_name("alpha", "interactive")
    raw = redis.Redis.from_url(own_redis.url)
    lengths = [raw.llen(key) for key in priority_lists(queue)]
    raw.close()
    assert lengths == [2, 1, 0, 1]  # the base list alone would say 2

    found = gauges(sidecar)
    assert found[("rerank_queue_depth", "alpha", "interactive")] == 4
    assert found[("rerank_queue_depth", "alpha", "bulk")] == 0
    assert found[("rerank_queue_depth", "beta.v2", "bulk")] == 1
    assert found[("rerank_queue_depth", "beta.v2", "interactive")] == 0
    assert found[("rerank_queue_reserved", "alpha", "interactive")] == 0
    # Every model of the registry has its series (builtins included), at zero when idle: an
    # autoscaler needs a value to scale a model up from zero workers.
    assert found[("rerank_queue_depth", "qwen3-vl-reranker-2b", "interactive")] == 0


def test_jobs_taken_but_not_acknowledged_still_count(
    sidecar: str, publisher: Celery, own_redis: RunningRedis
) -> None:
    for _ in range(3):
        publish(publisher, "alpha", "bulk", 0)
    queue = queue_name("alpha", "bulk")
    with publisher.connection_for_read() as connection:
        channel: Any = connection.default_channel
        # What a worker does with acks_late: take the message, run it, acknowledge at the end.
        taken = channel.basic_get(queue, no_ack=False)
        assert taken is not None
        found = gauges(sidecar)
        assert found[("rerank_queue_depth", "alpha", "bulk")] == 3
        assert found[("rerank_queue_reserved", "alpha", "bulk")] == 1
        channel.basic_ack(taken.delivery_tag)
        found = gauges(sidecar)
        assert found[("rerank_queue_depth", "alpha", "bulk")] == 2
        assert found[("rerank_queue_reserved", "alpha", "bulk")] == 0


def test_redis_down_exports_no_stale_depth(
    sidecar: str, publisher: Celery, own_redis: RunningRedis
) -> None:
    publish(publisher, "alpha", "interactive", 0)
    assert gauges(sidecar)[("rerank_queue_depth", "alpha", "interactive")] == 1
    own_redis.stop()
    started = time.monotonic()
    found = gauges(sidecar)  # the endpoint still answers, within the read timeout
    assert time.monotonic() - started < 5
    assert not [key for key in found if key[0] == "rerank_queue_depth"]
