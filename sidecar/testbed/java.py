"""Finding a Java runtime for the engines (their integ-test zips bundle none)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sidecar.testbed.errors import JavaNotFoundError

JVM_ROOT = Path("/usr/lib/jvm")


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def java_major(home: Path) -> int | None:
    """The major version of the Java under ``home``, or None if there is no runnable Java."""
    if not (home / "bin" / "java").is_file():
        return None
    release = home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
        if match:
            return int(match.group(1))
    try:
        probe = subprocess.run(
            [str(home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or major) if major == 1 else major


def _candidates(configured: Path | None) -> list[Path]:
    if configured is not None:
        return [configured]
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    if JVM_ROOT.is_dir():
        homes.extend(sorted(p for p in JVM_ROOT.iterdir() if p.is_dir() and not p.is_symlink()))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    return list(dict.fromkeys(homes))


def find_java(min_major: int, configured: Path | None = None) -> JavaRuntime:
    """The configured Java, or else the oldest installed one that is at least ``min_major``.

    Oldest first because the engines' release lines are tested most on the Java of their time.
    """
    found = [(home, java_major(home)) for home in _candidates(configured)]
    usable = sorted(
        (JavaRuntime(home, major) for home, major in found if major and major >= min_major),
        key=lambda runtime: runtime.major,
    )
    if usable:
        return usable[0]
    seen = ", ".join(f"{home} (Java {major})" for home, major in found if major) or "none"
    if configured is not None:
        hint = f"RERANK_TESTBED__JAVA_HOME={configured} is not a Java {min_major}+ home"
    else:
        hint = f"no Java {min_major}+ was found"
    raise JavaNotFoundError(
        f"{hint} (Javas seen: {seen}). Install one, e.g. `apt-get install "
        f"openjdk-{max(min_major, 17)}-jre-headless`, or point RERANK_TESTBED__JAVA_HOME at a "
        f"JDK {min_major}+ home."
    )


def has_java(min_major: int, configured: Path | None = None) -> bool:
    try:
        find_java(min_major, configured)
    except JavaNotFoundError:
        return False
    return True
