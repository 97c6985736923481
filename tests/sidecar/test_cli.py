"""The command line, run as a newcomer would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from transformers import AutoConfig

ROOT = Path(__file__).resolve().parents[2]


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


def test_build_tiny_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    result = _cli("models", "build-tiny", "--kind", "qwen3", "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert AutoConfig.from_pretrained(tmp_path / "m").model_type == "qwen3"


def test_build_tiny_rejects_an_unknown_kind(tmp_path: Path) -> None:
    result = _cli("models", "build-tiny", "--kind", "llama", "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "qwen3-vl, qwen3" in result.stderr
    assert not (tmp_path / "m").exists()


def test_testbed_up_prints_urls_and_down_stops_everything(tmp_path: Path) -> None:
    env = {**os.environ, "RERANK_CACHE_DIR": str(tmp_path)}
    up = _cli("testbed", "up", "--worker", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "redis://127.0.0.1:" in up.stdout and "celery-worker" in up.stdout
    try:
        status = _cli("testbed", "status", env=env)
        assert status.stdout.count("running") == 2
        again = _cli("testbed", "up", "--redis", env=env)
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        down = _cli("testbed", "down", env=env)
    assert down.returncode == 0
    assert "stopped redis" in down.stdout and "stopped celery-worker" in down.stdout
    assert "no test bed is up" in _cli("testbed", "status", env=env).stdout
