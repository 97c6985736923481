"""The sidecar never loads torch: not on import, and not anywhere in its source."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {"torch", "transformers", "torchvision", "qwen_vl_utils"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "modules",
    [
        ["sidecar"],
        ["workers.contract"],
        ["sidecar", "sidecar.cli", "sidecar.settings", "sidecar.testbed", "workers.contract"],
        ["sidecar.scoring", "sidecar.scoring.local_backend", "sidecar.scoring.cache"],
        ["workers.celery_app", "workers.tasks"],
    ],
)
def test_import_loads_no_torch(modules: list[str]) -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(result.stdout) == []


def test_no_sidecar_module_imports_torch() -> None:
    offenders = []
    for path in sorted((ROOT / "sidecar").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in HEAVY
            ]
    assert offenders == []


def test_sidecar_only_install_pulls_no_torch() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {re.split(r"[<>=\[ ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    assert not HEAVY & base
    assert "torch" in " ".join(project["optional-dependencies"]["worker"])
