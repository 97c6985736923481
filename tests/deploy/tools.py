"""The external tools the deploy tests run, where scripts/bootstrap.sh put them.

Go tools (helm, compose-go's validator and loader) are built by scripts/go-tools.sh from the pins
in scripts/go-tools.txt into ``~/.cache/rerank-sidecar/tools``; nginx is Debian's. A missing
tool fails the test in CI (``CI=true``: bootstrap must have installed it) and skips it elsewhere,
with the command that installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "scripts" / "go-tools.txt"


def tools_dir() -> Path:
    return Path(
        os.environ.get("RERANK_TOOLS_DIR") or Path.home() / ".cache" / "rerank-sidecar" / "tools"
    )


def _local_version(package: str) -> str:
    """scripts/go-tools.sh's cache key of a module of this repository: the hash of go.mod,
    go.sum and its .go files, in that order (``cat go.mod go.sum *.go | sha256sum``)."""
    directory = ROOT / package
    files = [directory / "go.mod", directory / "go.sum", *sorted(directory.glob("*.go"))]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    return f"local-{digest[:12]}"


def go_tool(name: str) -> Path:
    """The binary of ``name`` at its pinned version, or fail (CI) / skip (elsewhere)."""
    for line in PINS.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == name:
            package, version = fields[1], fields[2]
            if version == "local":
                version = _local_version(package)
            path = tools_dir() / f"{name}-{version}"
            if os.access(path, os.X_OK):
                return path
            missing(f"{path} is not built (run scripts/bootstrap.sh, which needs Go)")
    raise LookupError(f"{name} is not pinned in {PINS}")


def system_tool(name: str, package: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        missing(f"no {name} on PATH (scripts/bootstrap.sh installs Debian's {package})")
    return Path(str(found))


def missing(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI must have every tool")
    pytest.skip(reason)
