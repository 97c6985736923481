"""Scoring workers announce themselves per model in Redis, so the sidecar can tell at once that
no worker serves a model. (A gracefully stopped worker removes itself: checked at the end of
test_poisoned_media.py::test_poisoned_videos_leave_the_worker_up_and_within_its_memory, on a
worker of its own.)"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sidecar.testbed.ports import free_port
from tests.conftest import ScoringWorkerHandle
from tests.waiting import wait_for
from workers.contract import WORKER_HEARTBEAT_S, WORKER_STALE_S, heartbeat_key
from workers.runtime import Heartbeat


def test_a_serving_worker_is_in_the_heartbeat_set_of_each_model(
    scoring_worker: ScoringWorkerHandle, redis_client: redis.Redis, tiny_registry: dict[str, Any]
) -> None:
    node = scoring_worker.worker.hostname
    for model in tiny_registry:
        wait_for(
            lambda m=model: redis_client.zscore(heartbeat_key(m), node) is not None,
            WORKER_HEARTBEAT_S * 2,
            f"the heartbeat of {model}",
        )
        beat = redis_client.zscore(heartbeat_key(model), node)
        assert beat is not None
        assert time.time() - WORKER_HEARTBEAT_S * 2 <= beat <= time.time() + 1


def test_heartbeat_beats_prunes_the_stale_and_leaves_on_stop(redis_client: redis.Redis) -> None:
    models = ["hb-a", "hb-b"]
    for model in models:
        redis_client.delete(heartbeat_key(model))
        redis_client.zadd(heartbeat_key(model), {"long-gone": time.time() - WORKER_STALE_S * 11})
        redis_client.zadd(heartbeat_key(model), {"recent": time.time() - WORKER_STALE_S})
    heartbeat = Heartbeat(redis_client, models, interval_s=0.05)
    heartbeat.start("node-1")
    try:
        wait_for(
            lambda: all(redis_client.zscore(heartbeat_key(m), "node-1") for m in models),
            5,
            "the first beat",
        )
        first = redis_client.zscore(heartbeat_key("hb-a"), "node-1")
        wait_for(
            lambda: (redis_client.zscore(heartbeat_key("hb-a"), "node-1") or 0) > (first or 0),
            5,
            "the next beat",
        )
        for model in models:
            members = {m.decode() for m in redis_client.zrange(heartbeat_key(model), 0, -1)}
            assert members == {"recent", "node-1"}  # long-gone pruned, recent kept for the reader
    finally:
        heartbeat.stop()
    for model in models:
        assert redis_client.zscore(heartbeat_key(model), "node-1") is None
        redis_client.delete(heartbeat_key(model))


def test_a_redis_outage_is_logged_once_and_never_stops_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis(
        port=free_port(),
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )
    heartbeat = Heartbeat(dead, ["hb-x"], interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="workers.runtime"):
        heartbeat.start("node-2")
        wait_for(lambda: heartbeat._failing, 5, "a failed beat")
        for _ in range(3):
            heartbeat.beat()
        heartbeat.stop()  # removing its members fails too: logged, not raised
    beats = [r for r in caplog.records if "heartbeat to Redis failed" in r.getMessage()]
    assert len(beats) == 1
    dead.close()
