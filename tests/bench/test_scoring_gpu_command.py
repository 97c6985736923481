"""bench/scoring_gpu.py stays a one-command run where no GPU is lent: the same grid code, on the
tiny models and the CPU. No timing is asserted (timings live in benchmarks); what is checked is
that every cell ran, and that the work it reports is the work the request needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sidecar.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_grid_runs_every_cell_on_the_tiny_models(
    tmp_path: Path, settings: Settings, tiny_model_dirs: dict[str, Path]
) -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "scoring_gpu.py"), "--tiny", "--device", "cpu",
        "--docs", "2,3", "--tokens", "16,40", "--repeat", "1", "--no-write", "--budget-s", "100000",
        "--cache-dir", str(settings.cache_dir), "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "scoring_gpu.json").read_text())
    assert result["skipped"] == []
    cells = result["cells"]
    requests = {
        "qwen3-reranker-0.6b": {f"{n} × {t} tokens" for n in (2, 3) for t in (16, 40)},
        "qwen3-vl-reranker-2b": {f"{n} × {t} tokens" for n in (2, 3) for t in (16, 40)}
        | {"2 images, image query", "3 images, image query"},
    }
    for arch, names in requests.items():
        for name in names:
            ran = [c for c in cells if c["arch"] == arch and c["request"] == name]
            assert sorted(c["layout"] for c in ran) == ["packed", "padded", "plain"], (arch, name)
            # Every layout is held against the same useful work, so their peak fractions compare.
            assert len({(c["useful_tokens"], c["useful_gflop"]) for c in ran}) == 1
            assert all(0 < c["p50_s"] <= c["p95_s"] for c in ran)
    text = {c["request"]: c["useful_tokens"] for c in cells if c["arch"] == "qwen3-reranker-0.6b"}
    # One more 40-token document adds its own 40 tokens and the prompt's suffix (about a dozen
    # tokens), never the prefix (system message, instruction and query: over 50) again.
    added = text["3 × 40 tokens"] - text["2 × 40 tokens"]
    assert 40 <= added < 40 + 20
    table = (tmp_path / "scoring_gpu.md").read_text()
    vl_rows = len(requests["qwen3-vl-reranker-2b"]) * 3
    assert table.count("| qwen3-vl-reranker-2b | sdpa |") == vl_rows


def test_the_grid_needs_nothing_of_the_sidecar() -> None:
    """The GPU machine's Python has torch but not the sidecar's dependencies."""
    probe = (
        "import sys, bench.scoring_gpu; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sidecar', 'pydantic_settings',"
        " 'celery', 'redis')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
