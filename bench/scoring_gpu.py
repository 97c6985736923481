"""The GPU grid: the real Qwen3-Reranker-0.6B and Qwen3-VL-Reranker-2B configs (random weights,
bf16) at 10, 100 and 1000 documents per request of 64, 128 and 512 tokens, plus image documents
with an image query for Qwen3-VL; every layout (plain batching, shared prefix padded, shared
prefix + packing), with sdpa and, where installed, FlashAttention-2.

One command on a machine with a GPU, from the repository root:

    python3 bench/scoring_gpu.py --out OUT_DIR

It builds the random-weight checkpoints once (under ~/.cache/rerank-sidecar/models), measures
the device's bf16 matmul throughput, runs the grid, and writes the table to
docs/benchmarks.md (section ``scoring-gpu``) and, with ``--out``, scoring_gpu.md and
scoring_gpu.json there after every cell, so a run stopped at its time limit still leaves what
it measured. ``--budget-s`` stops starting new cells after that many seconds.

Per request: pairs/s and useful tokens/s at the median request time, p50 and p95 request time
over ``--repeat`` timed runs (after one untimed run of the same request), and the fraction of
the measured bf16 matmul peak reached by *useful* work: 2 × parameters × (the prefix once +
every document's own tokens), plus the vision tower's parameters × patches for Qwen3-VL. The
same useful count is used for every layout, so the fraction says how much of the device each
layout turns into scores.

``--tiny --device cpu`` runs the same code on the tiny test models (the test suite does, so the
command stays runnable where no GPU is). The lent GPU machine's Python lacks some of the
workers' pins; ``scripts/gpu_wheels.sh`` downloads them (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.real_size import (  # noqa: E402
    INSTRUCTION,
    QUERY,
    default_cache_dir,
    exact_documents,
    matmul_gflops,
    noise_images,
    random_checkpoint,
    request_work,
    scorer_parameters,
)
from bench.report import write_section  # noqa: E402
from workers.random_models.build import cached_tiny_model  # noqa: E402
from workers.scoring import Scorer, load_scorer  # noqa: E402

ARCHS = {"qwen3-reranker-0.6b": "qwen3", "qwen3-vl-reranker-2b": "qwen3-vl"}
LAYOUTS = ("plain", "padded", "packed")
COMPILED = {
    "packed + torch.compile": {"dynamic": True},
    # reduce-overhead records a CUDA graph per input shape and replays it: launch overhead
    # gone for the repeated shapes of a timed request (each cell runs one request again).
    "packed + CUDA graphs": {"mode": "reduce-overhead", "dynamic": False},
}
"""The compiled variants of packing (``--compile``, ``--cuda-graphs``): options of torch.compile
applied to the language model."""


@dataclass
class Cell:
    arch: str
    attention: str
    layout: str
    request: str
    pairs: int
    useful_tokens: int
    useful_gflop: float
    p50_s: float
    p95_s: float

    def pairs_per_s(self) -> float:
        return self.pairs / self.p50_s

    def tokens_per_s(self) -> float:
        return self.useful_tokens / self.p50_s


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) with linear interpolation; one value is every quantile."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def timed_runs(
    run: Callable[[], object], repeat: int, device: str, untimed: int = 1
) -> list[float]:
    for _ in range(untimed):  # allocator, kernel choice, torch.compile's traces, graph records
        run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def requests(
    kind: str, scorer: Scorer, docs: list[int], tokens: list[int], media: Path
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    model: Any = scorer.model
    tokenizer = model.tokenizer if hasattr(model, "tokenizer") else model.processor.tokenizer
    out = [
        (f"{n} × {t} tokens", QUERY, exact_documents(tokenizer, [t] * n))
        for n in docs
        for t in tokens
    ]
    if kind == "qwen3-vl":
        images = noise_images(media, min(max(docs), 100) + 1, (320, 256), seed=1)
        query = {"image": images[-1]}
        for n in [n for n in docs if n <= 100]:
            out.append((f"{n} images, image query", query, [{"image": p} for p in images[:n]]))
    return out


def attentions(choice: str, device: str) -> list[str]:
    if choice != "auto":
        return choice.split(",")
    found = ["sdpa"]
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        found.append("flash_attention_2")
    return found


def model_path(arch: str, tiny: bool, cache_dir: Path) -> Path:
    if tiny:
        return cached_tiny_model(ARCHS[arch], cache_dir)  # type: ignore[arg-type]
    return random_checkpoint(arch, cache_dir)


def table(cells: list[Cell], peak: float, dtype: str = "bfloat16") -> str:
    lines = [
        "| model | attention | request | layout | pairs/s | useful tokens/s | p50 (ms) "
        f"| p95 (ms) | of {dtype} matmul peak |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c.arch} | {c.attention} | {c.request} | {c.layout} | {c.pairs_per_s():.0f} "
            f"| {c.tokens_per_s():.0f} | {c.p50_s * 1e3:.1f} | {c.p95_s * 1e3:.1f} "
            f"| {c.useful_gflop / c.p50_s / peak:.1%} |"
        )
    return "\n".join(lines)


def describe(device: str) -> str:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{name}, torch {torch.__version__}, Python {platform.python_version()}"


@dataclass
class Run:
    """One grid run: what it was asked, and what it has measured so far."""

    args: argparse.Namespace
    device: str
    dtype: str
    peak: float
    started: float
    cells: list[Cell] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    compiled: dict[str, Any] = field(default_factory=dict)  # per variant, for the current model

    def model(
        self, arch: str, path: Path, attention: str, docs: list[int], tokens: list[int], media: Path
    ) -> None:
        scorer = load_scorer(
            path,
            device=self.device,
            dtype=self.dtype,
            attn_implementation=attention,
            media_roots=[media],
            token_budget=self.args.token_budget,
        )
        lm_params, vision_params = scorer_parameters(scorer.model)
        layouts = list(self.args.layouts.split(","))
        if self.args.compile:
            layouts.append("packed + torch.compile")
        if self.args.cuda_graphs:
            layouts.append("packed + CUDA graphs")
        self.compiled = {}
        for name, query, request_docs in requests(ARCHS[arch], scorer, docs, tokens, media):
            _, (useful, patches) = request_work(scorer.model, query, request_docs, INSTRUCTION)
            gflop = 2 * (lm_params * useful + vision_params * patches) / 1e9
            for layout in layouts:
                label = f"{arch} {attention} {name} {layout}"
                if time.monotonic() - self.started > self.args.budget_s:
                    self.skipped.append(f"{label} (time budget)")
                    continue
                try:
                    times = self.request(scorer, layout, query, request_docs)
                except Exception as error:  # a variant that fails is a finding, not a stop
                    self.skipped.append(f"{label}: {type(error).__name__}: {error}"[:300])
                    continue
                cell = Cell(arch, attention, layout, name, len(request_docs), useful, gflop,
                            statistics.median(times), percentile(times, 0.95))  # fmt: skip
                self.cells.append(cell)
                print(f"{label}: {cell.pairs_per_s():.0f} pairs/s", file=sys.stderr)
                write(self.cells, self.skipped, self.peak, self.device, self.dtype, self.args)

    def request(
        self, scorer: Scorer, layout: str, query: dict[str, Any], docs: list[dict[str, Any]]
    ) -> list[float]:
        model: Any = scorer.model
        eager = getattr(model.backbone, "_orig_mod", model.backbone)
        if layout in COMPILED:
            if layout not in self.compiled:
                self.compiled[layout] = torch.compile(eager, **COMPILED[layout])
            model.backbone = self.compiled[layout]
        else:
            model.backbone = eager
        model.layout = layout.split(" ")[0]
        # CUDA graphs warm up on the first call of a shape and record on the second.
        untimed = 2 if layout == "packed + CUDA graphs" else 1
        return timed_runs(
            lambda: scorer.score(query, docs, INSTRUCTION), self.args.repeat, self.device, untimed
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--docs", default="10,100,1000")
    parser.add_argument("--tokens", default="64,128,512")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--attention", default="auto", help="auto: sdpa, and flash-attn if found")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument(
        "--compile", action="store_true", help="also packed with torch.compile(backbone)"
    )
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="also packed with CUDA graphs (reduce-overhead)"
    )
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--tiny", action="store_true", help="the tiny test models (smoke runs)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, help="also write scoring_gpu.md/.json here")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.compile or args.cuda_graphs:
        # Every request size and pack is a shape of its own; past the default limit (8) dynamo
        # would run the variant eagerly under its compiled label.
        for name in ("recompile_limit", "cache_size_limit"):  # the newer name, the older one
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 256)

    device = args.device
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    peak = matmul_gflops(device, getattr(torch, dtype), 8192 if device.startswith("cuda") else 512)
    print(f"{describe(device)}: {dtype} matmul {peak:.0f} GFLOP/s", file=sys.stderr)
    docs = [int(n) for n in args.docs.split(",")]
    tokens = [int(t) for t in args.tokens.split(",")]
    run = Run(args, device, dtype, peak, started=time.monotonic())
    with tempfile.TemporaryDirectory() as media_dir:
        for arch in args.archs.split(","):
            path = model_path(arch, args.tiny, args.cache_dir)
            for attention in attentions(args.attention, device):
                run.model(arch, path, attention, docs, tokens, Path(media_dir))
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    write(run.cells, run.skipped, peak, device, dtype, args)
    print(table(run.cells, peak, dtype))
    for line in run.skipped:
        print(f"not run: {line}", file=sys.stderr)


def write(
    cells: list[Cell],
    skipped: list[str],
    peak: float,
    device: str,
    dtype: str,
    args: argparse.Namespace,
) -> None:
    models = "tiny test models" if args.tiny else "the real architecture configs, random weights"
    markdown = (
        "## Scoring on a GPU: the grid (`bench/scoring_gpu.py`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {describe(device)}; {models}, {dtype}, "
        f"token budget {args.token_budget}; median and p95 of {args.repeat} timed runs of each "
        "request after one untimed run, preparation (tokenizing, image decoding) included. "
        f"Useful work: 2 × parameters × (prefix once + documents' own tokens) (+ vision-tower "
        f"parameters × patches), against the measured {dtype} matmul throughput, "
        f"{peak:.0f} GFLOP/s (torch.mm).\n\n{table(cells, peak, dtype)}"
    )
    if skipped:
        markdown += "\n\nNot run: " + "; ".join(skipped)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scoring_gpu.md").write_text(markdown + "\n", encoding="utf-8")
        payload = {"peak_gflops": peak, "cells": [asdict(c) for c in cells], "skipped": skipped}
        (args.out / "scoring_gpu.json").write_text(json.dumps(payload, indent=1), "utf-8")
    if not args.no_write:
        write_section(markdown, ROOT / "docs" / "benchmarks.md", "scoring-gpu")


if __name__ == "__main__":
    main()
