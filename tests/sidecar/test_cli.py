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


def test_serve_refuses_an_invalid_config_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        "rerank:\n  rules:\n    - {index: 'products*', profile: products}\n", encoding="utf-8"
    )
    result = _cli("serve", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert "rerank.rules.0.profile" in result.stderr
    assert "no profile named 'products'" in result.stderr


def test_serve_starts_from_yaml_with_environment_overrides(tmp_path: Path) -> None:
    import json
    import time
    import urllib.request

    from sidecar.testbed.ports import free_port

    port = free_port()
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        "server: {port: 1}\n"
        "upstream: {urls: ['http://127.0.0.1:9']}\n"
        "rerank:\n  profiles: {p: {window: 5}}\n  rules: [{index: 'x*', profile: p}]\n",
        encoding="utf-8",
    )
    env = {**os.environ, "RERANK_SERVER__PORT": str(port)}  # the environment wins over YAML
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_rerank/health") as answer:
                    health = json.loads(answer.read())
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.2)
        assert health == {"status": "ok"}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # The access log is JSON lines on stderr.
    access = [line for line in stderr.splitlines() if '"target": "/_rerank/health"' in line]
    assert access, stderr[-2000:]
