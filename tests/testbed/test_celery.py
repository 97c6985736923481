"""A task goes through the real Redis to the real worker process and its result comes back."""

from __future__ import annotations

import os

from tests.conftest import WorkerHandle
from workers.celery_app import DEFAULT_QUEUE
from workers.tasks import ECHO_TASK


def test_task_round_trips_through_redis_and_worker(celery_worker: WorkerHandle) -> None:
    payload = {"query": "red shoes", "documents": ["a", "b"], "n": 2}
    result = celery_worker.client.send_task(ECHO_TASK, args=[payload], queue=DEFAULT_QUEUE)
    reply = result.get(timeout=30)
    assert reply["payload"] == payload
    # The work happened in the worker process, not here.
    assert reply["worker_pid"] != os.getpid()


def test_worker_answers_ping_by_name(celery_worker: WorkerHandle) -> None:
    replies = celery_worker.client.control.ping(destination=[celery_worker.hostname], timeout=5)
    assert replies and celery_worker.hostname in replies[0]


def test_results_are_stored_in_redis(celery_worker: WorkerHandle, redis_client) -> None:  # type: ignore[no-untyped-def]
    result = celery_worker.client.send_task(ECHO_TASK, args=[{"k": "v"}], queue=DEFAULT_QUEUE)
    result.get(timeout=30)
    assert redis_client.exists(f"celery-task-meta-{result.id}") == 1
