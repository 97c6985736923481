"""A real job runner process (``rerank-sidecar jobs-worker``) for tests and benchmarks."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sidecar.jobs.runner import runner_celery_app
from sidecar.settings import Settings
from sidecar.testbed.errors import ServiceStartError
from sidecar.testbed.process import ManagedProcess


@dataclass
class RunningJobRunner:
    hostname: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


def start_job_runner(
    config: dict[str, Any], *, concurrency: int = 2, start_timeout_s: float = 60.0
) -> RunningJobRunner:
    """Start ``rerank-sidecar jobs-worker`` with ``config`` (the settings, as YAML) and wait
    until it answers a ping."""
    hostname = f"jobs-{uuid.uuid4().hex[:8]}@localhost"
    scratch = Path(tempfile.mkdtemp(prefix="rerank-testbed-jobs-"))
    config_file = scratch / "settings.yaml"
    config_file.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "sidecar", "jobs-worker", "--hostname", hostname,
            "--concurrency", str(concurrency), "--config", str(config_file)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RERANK_")}
    process = ManagedProcess.spawn(
        "job-runner", argv, log_path=scratch / "runner.log", env=env, scratch_dir=scratch
    )
    client = runner_celery_app(Settings.model_validate(config))
    deadline = time.monotonic() + start_timeout_s
    try:
        while True:
            if not process.is_running():
                raise ServiceStartError(
                    f"the job runner exited with code {process.exit_code()} while starting. "
                    f"Its log ends:\n{process.log_tail()}"
                )
            if client.control.ping(destination=[hostname], timeout=1.0):
                return RunningJobRunner(hostname, process)
            if time.monotonic() >= deadline:
                process.stop()
                raise ServiceStartError(f"the job runner did not answer a ping. Log:\n"
                                        f"{process.log_tail()}")  # fmt: skip
    finally:
        client.close()
