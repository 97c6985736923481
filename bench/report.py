"""Shared by the bench scripts: the machine line and writing a section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only"
    )


def write_section(markdown: str, path: Path, name: str) -> None:
    """Replace (or append) the ``name`` section of ``path``, between its marker comments."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{start}\n{markdown}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def publish(table: str, text: str, section: str, write: bool = True) -> None:
    """Print ``table``; with ``write``, make ``text`` (heading and paragraph) and the table the
    ``section`` of docs/benchmarks.md."""
    print(table)
    if write:
        write_section(f"{text}\n\n{table}", BENCHMARKS, section)
