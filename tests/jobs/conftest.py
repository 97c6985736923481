"""The job modules' sidecar and job runner, built from the ``jobs_config`` each module defines
(its engine, its Redis, its credentials)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.job_runner import RunningJobRunner, start_job_runner


@pytest.fixture(scope="module")
def sidecar(jobs_config: dict[str, Any]) -> Iterator[str]:
    with serve_in_thread(create_app(Settings.model_validate(jobs_config))) as url:
        yield url


@pytest.fixture(scope="module")
def runner(jobs_config: dict[str, Any]) -> Iterator[RunningJobRunner]:
    running = start_job_runner(jobs_config)
    try:
        yield running
    finally:
        running.stop()
