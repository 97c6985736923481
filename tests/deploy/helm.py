"""Rendering deploy/helm/rerank-sidecar with the pinned helm, for the chart and dashboard tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import ROOT, go_tool

CHART = ROOT / "deploy" / "helm" / "rerank-sidecar"
VALUES = {"default": None, "two-models": CHART / "ci" / "two-models-values.yaml"}
RELEASE = "search"
NAMESPACE = "search"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(go_tool("helm")), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(values: Path | None, kube_version: str | None = None) -> list[dict[str, Any]]:
    """Every object `helm template` renders (empty documents dropped)."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", str(values)]
    if kube_version is not None:
        args += ["--kube-version", kube_version]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}
