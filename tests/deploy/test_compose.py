"""docker-compose.yml, offline (no Docker engine here): compose-go's own validator (its cmd,
built from the Go module proxy) accepts the file; compose-go's loader, run as `docker compose
--profile P config` runs it (tests/deploy/composecheck), loads every profile with its
consistency checks; every rerank-sidecar service's settings (deploy/compose/sidecar.yaml plus
its environment) load with sidecar.settings; healthchecks, ports and commands agree with the
settings and with deploy/*.Dockerfile."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sidecar.settings import Settings, load_settings
from tests.deploy.tools import ROOT, go_tool

COMPOSE = ROOT / "docker-compose.yml"
SETTINGS_FILE = ROOT / "deploy" / "compose" / "sidecar.yaml"
CONFIG_PATH = "/etc/rerank-sidecar/sidecar.yaml"
PROFILES = {
    "default": [],
    "cpu": ["cpu"],
    "elasticsearch": ["elasticsearch"],
    "edge": ["edge"],
    "all": ["cpu", "elasticsearch", "edge"],
}
SERVICES = {
    "default": {"opensearch", "redis", "worker", "sidecar", "jobs-runner"},
    "cpu": {"opensearch", "redis", "worker", "sidecar", "jobs-runner", "tiny-model", "worker-cpu"},
    "elasticsearch": {"opensearch", "redis", "worker", "sidecar", "jobs-runner", "elasticsearch",
                      "sidecar-elasticsearch"},
    "edge": {"opensearch", "redis", "worker", "sidecar", "jobs-runner", "edge"},
}  # fmt: skip
ONE_SHOT = {"tiny-model"}
NO_ENDPOINT = {"jobs-runner"}  # rerank-sidecar jobs-worker is a Celery worker: no HTTP


def clean_env(**extra: str) -> dict[str, str]:
    """No RERANK_* or COMPOSE_* of this machine: the file's own defaults are interpolated."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {**env, **extra}


def load_project(profiles: list[str], **env: str) -> dict[str, Any]:
    argv = [str(go_tool("composecheck"))]
    for profile in profiles:
        argv += ["-profile", profile]
    result = subprocess.run(
        [*argv, str(COMPOSE)], capture_output=True, text=True, env=clean_env(**env), check=False
    )
    assert result.returncode == 0, result.stderr
    project: dict[str, Any] = json.loads(result.stdout)
    return project


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_project(PROFILES["all"])


def test_compose_go_validator_accepts_the_file() -> None:
    result = subprocess.run(
        [str(go_tool("compose-spec")), "--format", "json", str(COMPOSE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "rerank-sidecar"


def test_the_checkers_refuse_broken_files(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.yml"
    bogus.write_text("services:\n  a:\n    image: x\n    healthcheck: {tset: [CMD, true]}\n")
    result = subprocess.run(
        [str(go_tool("compose-spec")), str(bogus)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "tset" in result.stderr
    # A dependency only a disabled profile defines: the schema allows it, the loader does not.
    orphan = tmp_path / "orphan.yml"
    orphan.write_text(
        "services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_healthy}}\n"
        "  b:\n    image: y\n    profiles: [p]\n"
    )
    result = subprocess.run(
        [str(go_tool("composecheck")), str(orphan)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and '"b"' in result.stderr


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_loads_as_docker_compose_would(profile: str) -> None:
    services = set(load_project(PROFILES[profile])["services"])
    expected = SERVICES.get(profile) or set().union(*SERVICES.values())
    assert services == expected


def test_healthchecks_and_start_order(project: dict[str, Any]) -> None:
    services = project["services"]
    for name, service in services.items():
        if name in ONE_SHOT | NO_ENDPOINT:
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    def condition(name: str, on: str) -> str:
        depends: dict[str, Any] = services[name]["depends_on"]
        return str(depends[on]["condition"])

    assert condition("sidecar", "opensearch") == "service_healthy"
    assert condition("sidecar", "redis") == "service_healthy"
    assert "worker" not in services["sidecar"]["depends_on"]  # degrades without one
    assert condition("sidecar-elasticsearch", "elasticsearch") == "service_healthy"
    assert condition("worker", "redis") == "service_healthy"
    assert condition("worker-cpu", "tiny-model") == "service_completed_successfully"
    assert condition("edge", "sidecar") == "service_healthy"
    assert condition("jobs-runner", "redis") == "service_healthy"
    sidecar_check = " ".join(services["sidecar"]["healthcheck"]["test"])
    assert "/_rerank/" in sidecar_check and "'health', 'ready'" in sidecar_check


def test_the_worker_reserves_a_gpu_and_the_cpu_profile_runs_the_tiny_model(
    project: dict[str, Any],
) -> None:
    services = project["services"]
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "deploy" not in services["worker-cpu"] or not services["worker-cpu"]["deploy"].get(
        "resources", {}
    ).get("reservations")
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    settings = load_settings(SETTINGS_FILE)
    tiny = settings.models["tiny-vl"]
    assert tiny.device == "cpu" and tiny.kind == "qwen3-vl"
    build = services["tiny-model"]["command"][0]
    assert f"--out {tiny.path}" in build and f"test -f {tiny.path}/config.json" in build
    command = services["worker-cpu"]["command"]
    assert command[command.index("--models") + 1] == "tiny-vl"


def service_settings(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, list[str]]:
    """The settings a rerank-sidecar service starts with: the mounted file and its environment.
    Returns them with the argv after the image's entrypoint."""
    mounts = {v["target"]: v for v in service["volumes"]}
    mount = mounts[CONFIG_PATH]
    assert mount["type"] == "bind" and mount["read_only"] is True
    assert Path(mount["source"]) == SETTINGS_FILE
    command: list[str] = service["command"]
    assert command[command.index("--config") + 1] == CONFIG_PATH
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("RERANK_")]:
            patch.delenv(name)
        for name, value in (service.get("environment") or {}).items():
            patch.setenv(name, value)
        return load_settings(SETTINGS_FILE), command


def rerank_services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in project["services"].items()
        if s.get("image", "").startswith("rerank-sidecar") and name not in ONE_SHOT
    }


def port_of(check: list[str]) -> int:
    found = re.search(r"127\.0\.0\.1:(\d+)/", " ".join(check))
    assert found is not None, check
    return int(found.group(1))


def test_every_service_loads_its_settings(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = rerank_services(project)
    assert set(services) == {"sidecar", "sidecar-elasticsearch", "worker", "worker-cpu",
                             "jobs-runner"}  # fmt: skip
    for name, service in services.items():
        settings, command = service_settings(service, monkeypatch)
        assert settings.celery.broker_url == "redis://redis:6379/0"
        if name.startswith("sidecar"):
            assert command[0] == "serve"
            (port,) = service["ports"]
            assert port["target"] == settings.server.port == port_of(service["healthcheck"]["test"])
            assert settings.server.host == "0.0.0.0"
            assert settings.api.default_model == "qwen3-vl-reranker-2b"
            assert settings.rerank.profiles["products"].model == "qwen3-vl-reranker-2b"
            assert settings.api.keys == []
            engine = "elasticsearch" if name == "sidecar-elasticsearch" else "opensearch"
            assert settings.upstream.urls == [f"http://{engine}:9200"]
        elif name.startswith("worker"):
            model = command[command.index("--models") + 1]
            assert model in settings.models
            assert port_of(service["healthcheck"]["test"]) == settings.worker.metrics_port
            # Celery's warm shutdown finishes the running jobs before compose kills the worker.
            assert _seconds(service["stop_grace_period"]) > settings.worker.task_time_limit_s
        else:
            assert command[0] == "jobs-worker"


def test_one_variable_picks_the_model_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(["cpu"], RERANK_MODEL="tiny-vl", RERANK_API_KEYS='["k1"]')
    settings, _ = service_settings(project["services"]["sidecar"], monkeypatch)
    assert settings.api.default_model == "tiny-vl"
    assert settings.rerank.profiles["products"].model == "tiny-vl"
    assert settings.rerank.profiles["products"].window == 50  # the file's, merged with the env
    assert [key.get_secret_value() for key in settings.api.keys] == ["k1"]
    worker = project["services"]["worker"]["command"]
    assert worker[worker.index("--models") + 1] == "tiny-vl"


def _seconds(duration: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def dockerfile(name: str) -> dict[str, list[str]]:
    """Instructions of deploy/<name>.Dockerfile (continuation lines joined)."""
    text = (ROOT / "deploy" / f"{name}.Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word.upper(), []).append(rest.strip())
    return found


def test_dockerfiles_match_the_compose_file_and_the_settings(project: dict[str, Any]) -> None:
    settings = load_settings(SETTINGS_FILE)
    services = project["services"]
    sidecar, worker = dockerfile("sidecar"), dockerfile("worker")
    assert sidecar["EXPOSE"] == [str(settings.server.port)]
    assert worker["EXPOSE"] == [str(settings.worker.metrics_port)]
    assert json.loads(sidecar["ENTRYPOINT"][0]) == ["rerank-sidecar"]
    assert json.loads(sidecar["CMD"][0]) == services["sidecar"]["command"]
    assert json.loads(worker["ENTRYPOINT"][0]) == ["rerank-sidecar", "worker"]
    assert json.loads(worker["CMD"][0]) == ["--config", CONFIG_PATH]
    for instructions in (sidecar, worker):
        assert instructions["USER"] == ["10001:10001"]  # what the Helm chart's pods run as
        # An image default would override the mounted settings (the environment wins).
        assert not any("RERANK_CELERY__BROKER_URL" in env for env in instructions["ENV"])
    assert worker["ARG"] == ["EXTRAS=worker"]
    assert services["worker-cpu"]["build"]["args"] == {"EXTRAS": "models"}
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (Path(build["context"]) / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), (name, volume["source"])
