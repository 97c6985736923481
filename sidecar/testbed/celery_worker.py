"""A real Celery worker process (``rerank-sidecar worker``) against the test bed's Redis."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from sidecar.scoring.celery_client import celery_client
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed.errors import ServiceStartError
from sidecar.testbed.process import ManagedProcess
from workers.contract import ModelSpec, heartbeat_key


@dataclass
class RunningWorker:
    broker_url: str
    hostname: str
    process: ManagedProcess

    def client(self) -> Celery:
        """A Celery client for publishing to this worker's broker (tasks are sent by name)."""
        return celery_client("rerank-client", self.broker_url, self.broker_url)

    def stop(self) -> None:
        self.process.stop()


def start_worker(
    settings: Settings,
    broker_url: str,
    *,
    models: Mapping[str, ModelSpec] | None = None,
    worker_settings: WorkerSettings | None = None,
    start_timeout_s: float = 180.0,
) -> RunningWorker:
    """Start ``rerank-sidecar worker`` on ``broker_url`` and wait until it answers a ping and,
    for each of its models, its heartbeat is in Redis (so a sidecar sees it serving at once).

    ``models`` are registry entries to load and serve (e.g. tiny test models); the worker answers
    pings only once they are loaded and warmed up.
    """
    hostname = f"testbed-{uuid.uuid4().hex[:8]}@localhost"
    scratch = Path(tempfile.mkdtemp(prefix="rerank-testbed-worker-"))
    argv = [
        sys.executable,
        "-m",
        "sidecar",
        "worker",
        "--hostname",
        hostname,
        "--concurrency",
        str(settings.testbed.worker_concurrency),
    ]
    env = {**os.environ, "RERANK_CELERY__BROKER_URL": broker_url}
    env.pop("RERANK_CELERY__RESULT_BACKEND", None)
    if models:
        argv += ["--models", ",".join(models)]
        env["RERANK_MODELS"] = json.dumps({k: v.model_dump(mode="json") for k, v in models.items()})
    if worker_settings is not None:
        env["RERANK_WORKER"] = worker_settings.model_dump_json()
    process = ManagedProcess.spawn(
        "celery-worker", argv, log_path=scratch / "worker.log", env=env, scratch_dir=scratch
    )
    worker = RunningWorker(broker_url, hostname, process)
    client = worker.client()
    deadline = time.monotonic() + start_timeout_s
    try:
        while True:
            if not process.is_running():
                raise ServiceStartError(
                    f"the Celery worker exited with code {process.exit_code()} while starting. "
                    f"Its log ends:\n{process.log_tail()}"
                )
            if client.control.ping(destination=[hostname], timeout=1.0) and _beating(
                broker_url, hostname, list(models or ())
            ):
                return worker
            if time.monotonic() >= deadline:
                raise ServiceStartError(
                    f"the Celery worker did not answer a ping within {start_timeout_s:g}s. "
                    f"Its log ends:\n{process.log_tail()}"
                )
    except BaseException:
        worker.stop()
        raise
    finally:
        client.close()


def _beating(broker_url: str, hostname: str, models: list[str]) -> bool:
    """Has the worker's heartbeat reached Redis for every model it serves?"""
    if not models:
        return True
    client = redis.Redis.from_url(broker_url, socket_timeout=2.0)
    try:
        return all(client.zscore(heartbeat_key(model), hostname) is not None for model in models)
    finally:
        client.close()
