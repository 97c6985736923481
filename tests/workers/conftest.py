"""Fixtures of the worker tests: hostile and parity media written once per run under the
session's ``media_dir`` (so the session's scorers and workers may read them), and a Redis of
a test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.testbed import RunningRedis
from tests.workers.media_files import long_gif, long_mp4, mp4, parity_videos


@pytest.fixture(scope="session")
def hostile_media(media_dir: Path) -> dict[str, Path]:
    """A 10 000-frame GIF (1000 s, ~260 KB) and a one-hour MP4 (7200 frames, ~140 KB): the
    stock reader decodes every frame of them (2-3 GB); written in about 1.5 s."""
    root = media_dir / "hostile"
    root.mkdir(exist_ok=True)
    return {"gif": long_gif(root / "long.gif"), "mp4": long_mp4(root / "hour.mp4")}


@pytest.fixture(scope="session")
def parity_media(media_dir: Path) -> dict[str, Path]:
    root = media_dir / "parity"
    root.mkdir(exist_ok=True)
    files = parity_videos(root)
    files["clip.mp4"] = mp4(root / "clip.mp4")
    return files


@pytest.fixture
def own_redis_url(own_redis: RunningRedis) -> str:
    """A Redis of its own for tests that must know which worker takes a job: the session's
    scoring worker serves the same models and would take jobs from a shared queue."""
    return own_redis.url
