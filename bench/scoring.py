"""Batched scoring vs one-pair-at-a-time loops, same model, same pairs, same run.

    .venv/bin/python bench/scoring.py            # tiny models on this machine's CPU
    .venv/bin/python bench/scoring.py --repeat 5 --no-write
    .venv/bin/python bench/scoring.py --real     # the real Qwen3-Reranker-0.6B size (below)
    .venv/bin/python bench/scoring.py --threshold  # where sharing a prefix starts to pay
    .venv/bin/python bench/scoring.py --real-vl  # the real Qwen3-VL-Reranker-2B size
    .venv/bin/python bench/scoring.py --plain-budget --repeat 1  # plain batching's token budget

``--real`` builds a random-weight checkpoint of the real Qwen3-Reranker-0.6B architecture once
(bf16 on disk, run in fp32 here) and compares, on the same pairs in the same run: the official
recipe one pair at a time, our plain batching, shared-prefix (the request's prefix computed
once, documents padded after it) and shared-prefix + packing (documents concatenated without
padding); 100 documents of 64 tokens, 100 of 256 and 100 of mixed lengths (16-512), after a
40-token instruction and query. ``--threshold`` runs small requests (1-8 documents) with
sharing forced on, to find where it starts to pay (``MIN_GROUP``). ``--plain-budget`` runs
plain batching at smaller token budgets than the default, to check that the baseline the
shared-prefix rows are held against is not slowed by a batch too large for this CPU. Each row
says how many tokens it ran through the network and how close to this CPU's measured fp32
matmul throughput it ran.
Each replaces its own section of docs/benchmarks.md.

Prints a table and replaces the scoring section of docs/benchmarks.md (machine and date
included). Every column includes preparation (tokenizing, image decoding). Two baselines:
- official-style: one pair per forward pass, computed as the official code computes it. For the
  Qwen3 text reranker that is the model card's recipe (the full causal LM, logits over the whole
  vocabulary, then [no, yes]); for Qwen3-VL it is the backbone plus the yes-minus-no head, which
  our scorer also uses, so the two baselines coincide there.
- ours, one at a time: our scorer given one document per call, isolating what batching buys.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from bench.real_size import (  # noqa: E402
    INSTRUCTION,
    QUERY,
    exact_documents,
    matmul_gflops,
    noise_images,
    random_checkpoint,
    request_work,
    scorer_parameters,
)
from bench.report import machine, publish, write_section  # noqa: E402
from sidecar.settings import Settings  # noqa: E402
from workers.random_models import cached_tiny_model  # noqa: E402
from workers.scoring import Scorer, load_scorer  # noqa: E402
from workers.scoring.prompts import TEXT_PREFIX, TEXT_SUFFIX, text_body  # noqa: E402
from workers.scoring.shared_prefix import MIN_GROUP  # noqa: E402

WORDS = [
    "red",
    "running",
    "shoes",
    "light",
    "trail",
    "runner",
    "waterproof",
    "shell",
    "warm",
    "winter",
    "scarf",
    "blue",
]


@dataclass
class Scenario:
    name: str
    model: str
    query: dict[str, Any]
    documents: list[dict[str, Any]]


def _text(n_words: int, seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n_words))


def scenarios(media: Path) -> list[Scenario]:
    colors = [(220, 20, 20), (20, 20, 220), (20, 200, 40), (200, 200, 20)]
    images = []
    for i, color in enumerate(colors):
        path = media / f"img{i}.png"
        Image.new("RGB", (320 + 32 * i, 240), color).save(path)
        images.append(str(path))
    short = [{"text": _text(12, i)} for i in range(64)]
    long = [{"text": _text(480, i)} for i in range(64)]  # about 500 tokens each
    image_docs = [{"image": images[i % 4]} for i in range(32)]
    mixed = [
        [
            {"text": _text(40, i)},
            {"image": images[i % 4]},
            {"image": images[i % 4], "text": _text(8, i)},
        ][i % 3]
        for i in range(48)
    ]
    query = {"text": "red running shoes"}
    return [
        Scenario("text, short docs (64)", "qwen3", query, short),
        Scenario("text, ~500-token docs (64)", "qwen3", query, long),
        Scenario("VL: text, short docs (64)", "qwen3-vl", query, short),
        Scenario("VL: text, ~500-token docs (64)", "qwen3-vl", query, long),
        Scenario("VL: image docs (32)", "qwen3-vl", query, image_docs),
        Scenario("VL: mixed docs (48)", "qwen3-vl", query, mixed),
    ]


def _best_seconds(run: Callable[[], object], repeat: int, warm_up: bool = True) -> float:
    if warm_up:
        run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) if repeat < 3 else statistics.median(times)


class OfficialTextLoop:
    """The Qwen3-Reranker model card's computation, one pair per forward pass."""

    def __init__(self, path: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.yes = self.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.tokenizer.convert_tokens_to_ids("no")
        self.prefix = self.tokenizer.encode(TEXT_PREFIX, add_special_tokens=False)
        self.suffix = self.tokenizer.encode(TEXT_SUFFIX, add_special_tokens=False)

    @torch.inference_mode()
    def score(self, query: dict[str, Any], docs: list[dict[str, Any]]) -> list[float]:
        return self.score_text(query, docs)

    @torch.inference_mode()
    def score_text(
        self, query: dict[str, Any], docs: list[dict[str, Any]], instruction: str | None = None
    ) -> list[float]:
        scores = []
        room = 8192 - len(self.prefix) - len(self.suffix)
        for doc in docs:
            body = self.tokenizer(
                text_body(query["text"], doc["text"], instruction),
                truncation=True,
                max_length=room,
            )["input_ids"]
            ids = torch.tensor([self.prefix + body + self.suffix])
            logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1, :]
            pair = torch.stack([logits[:, self.no], logits[:, self.yes]], dim=1)
            scores.append(float(torch.log_softmax(pair, dim=1)[0, 1].exp()))
        return scores


def measure(
    scorers: dict[str, Scorer], official: OfficialTextLoop, scenario: Scenario, repeat: int
) -> dict[str, Any]:
    scorer = scorers[scenario.model]
    docs, query = scenario.documents, scenario.query
    model = scorer.model
    resolved_query = model.resolve(query)
    tokens = sum(model.prepare(resolved_query, model.resolve(d), None).length for d in docs)
    batched = _best_seconds(lambda: scorer.score(query, docs), repeat)
    single = _best_seconds(lambda: [scorer.score(query, [d]) for d in docs], repeat)
    if scenario.model == "qwen3":
        baseline = _best_seconds(lambda: official.score(query, docs), repeat)
    else:
        baseline = single
    return {
        "scenario": scenario.name,
        "pairs": len(docs),
        "tokens": tokens,
        "official_pairs_s": len(docs) / baseline,
        "single_pairs_s": len(docs) / single,
        "batched_pairs_s": len(docs) / batched,
        "batched_tokens_s": tokens / batched,
        "speedup": baseline / batched,
        "batching_speedup": single / batched,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | pairs | official-style, one at a time (pairs/s) | ours, one at a time "
        "(pairs/s) | ours, batched (pairs/s) | batched (tokens/s) | speedup vs official-style "
        "| speedup from batching alone |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['pairs']} | {r['official_pairs_s']:.1f} | "
            f"{r['single_pairs_s']:.1f} | {r['batched_pairs_s']:.1f} | "
            f"{r['batched_tokens_s']:.0f} | {r['speedup']:.1f}x | {r['batching_speedup']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--real", action="store_true", help="the real 0.6B size rows instead")
    parser.add_argument(
        "--real-vl", action="store_true", help="the real Qwen3-VL-Reranker-2B size rows instead"
    )
    parser.add_argument(
        "--threshold", action="store_true", help="small real-size requests: where sharing pays"
    )
    parser.add_argument(
        "--plain-budget", action="store_true", help="plain batching at smaller token budgets"
    )
    args = parser.parse_args()
    if args.threshold:
        threshold_main(args)
        return
    if args.plain_budget:
        plain_budget_main(args)
        return
    if args.real:
        real_main(args)
        return
    if args.real_vl:
        real_vl_main(args)
        return

    settings = Settings()
    with tempfile.TemporaryDirectory() as media_dir:
        media = Path(media_dir)
        scorers = {
            kind: load_scorer(
                cached_tiny_model(kind, settings.cache_dir),  # type: ignore[arg-type]
                media_roots=[media],
                token_budget=args.token_budget,
            )
            for kind in ("qwen3", "qwen3-vl")
        }
        official = OfficialTextLoop(cached_tiny_model("qwen3", settings.cache_dir))
        rows = [measure(scorers, official, s, args.repeat) for s in scenarios(media)]
    result = table(rows)
    print(result)
    markdown = (
        "## Scoring: batched vs one pair at a time (`bench/scoring.py`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; tiny random-weight models "
        f"(`rerank-sidecar models build-tiny`), fp32, token budget {args.token_budget}, "
        f"{'median' if args.repeat >= 3 else 'best'} of {args.repeat} runs after a warm-up. Every "
        "column includes preparation (tokenizing, image decoding). *Official-style* puts each "
        "pair through the model alone and computes the score as the official code does (for the "
        "Qwen3 text reranker: the full causal LM and whole-vocabulary logits, as in the model "
        "card; for Qwen3-VL the official computation is ours, so that column equals the next). "
        "*Ours, one at a time* isolates what batching alone buys. On this CPU the tiny models "
        "are compute-bound once batched (matmuls and attention dominate a profile), so long "
        "documents gain little from batching here; the GPU runs are where batching pays.\n\n"
        f"{result}\n\n"
        "GPU figures (real Qwen3-VL-Reranker-2B and Qwen3-Reranker-0.6B configs, random weights, "
        "bf16, 1/10/100/1000 documents per request) are not recorded yet: no GPU was lent to the "
        "session that wrote this benchmark."
    )
    if not args.no_write:
        write_section(markdown, ROOT / "docs" / "benchmarks.md", "scoring")


# --- real-size rows (--real, --real-vl) ----------------------------------------------------

REAL_ARCH = "qwen3-reranker-0.6b"
REAL_VL_ARCH = "qwen3-vl-reranker-2b"


@dataclass
class RealRow:
    scenario: str
    method: str
    pairs: int
    seconds: float
    tokens: int  # run through the (language) network
    gflops: float  # executed, 2 × parameters × tokens (+ the official recipe's full-vocab head)
    patches: int = 0  # run through the vision tower (VL rows)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


def _real_text_scorer(settings: Settings) -> tuple[Scorer, Any, int, Path]:
    from workers.scoring.qwen3_text import Qwen3TextReranker

    path = random_checkpoint(REAL_ARCH, settings.cache_dir)
    scorer = load_scorer(path, dtype="float32")
    model = scorer.model
    assert isinstance(model, Qwen3TextReranker)
    params, _ = scorer_parameters(model)
    # One small request per layout warms the kernels up; at this size a whole request is too
    # long to run twice (the rows are minutes each on two cores).
    warm = exact_documents(model.tokenizer, [64] * MIN_GROUP)  # enough to take the shared path
    for layout in LAYOUT_LABELS:
        model.layout = layout
        scorer.score(QUERY, warm, INSTRUCTION)
    return scorer, model, params, path


def _layout_rows(
    scorer: Scorer, name: str, docs: list[dict[str, Any]], params: int, repeat: int
) -> list[RealRow]:
    """One row per layout of ``LAYOUT_LABELS`` for one request; the model ends packed."""
    model: Any = scorer.model
    (full, _), (shared, _) = request_work(model, QUERY, docs, INSTRUCTION)
    rows = []
    for layout, label in LAYOUT_LABELS.items():
        model.layout = layout
        tokens = full if layout == "plain" else shared
        run = functools.partial(scorer.score, QUERY, docs, INSTRUCTION)
        seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
        rows.append(RealRow(name, label, len(docs), seconds, tokens,
                            2 * params * tokens / seconds / 1e9))  # fmt: skip
        print(f"{name}: {label} {len(docs) / seconds:.2f} pairs/s", file=sys.stderr)
    model.layout = "packed"
    return rows


def real_rows(settings: Settings, repeat: int) -> tuple[list[RealRow], float, int]:
    scorer, model, params, path = _real_text_scorer(settings)
    vocab_head = model.backbone.embed_tokens.weight.numel()  # tied: the official lm_head
    official = OfficialTextLoop(path)
    tokenizer = model.tokenizer
    scenarios = [
        ("100 documents of 64 tokens", exact_documents(tokenizer, [64] * 100)),
        ("100 documents of 256 tokens", exact_documents(tokenizer, [256] * 100)),
        ("100 documents of 16-512 tokens", exact_documents(
            tokenizer, [16 + (i * 131) % 497 for i in range(100)])),
    ]  # fmt: skip
    official.score_text(QUERY, exact_documents(tokenizer, [64] * 2), INSTRUCTION)
    rows = []
    for name, docs in scenarios:
        sample = docs[: min(len(docs), 20)]
        (official_tokens, _), _ = request_work(model, QUERY, sample, INSTRUCTION)
        run = functools.partial(official.score_text, QUERY, sample, INSTRUCTION)
        seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
        flops = 2 * (params + vocab_head) * official_tokens
        rows.append(RealRow(name, "official recipe, one pair at a time", len(sample), seconds,
                            official_tokens, flops / seconds / 1e9))  # fmt: skip
        rows += _layout_rows(scorer, name, docs, params, repeat)
    return rows, matmul_gflops(), params


THRESHOLD_REQUESTS = [(n, 64) for n in (1, 2, 3, 4, 6, 8)] + [(2, 512), (3, 512)]
"""(documents, tokens each): short documents, where the prefix is half of a pair, and long ones,
where it is a small part and sharing saves least."""


def threshold_rows(settings: Settings, repeat: int) -> tuple[list[RealRow], float, int]:
    """Small requests with sharing forced on (any group size), to find where it starts to pay:
    the measurement ``MIN_GROUP`` comes from."""
    scorer, model, params, _ = _real_text_scorer(settings)
    model.min_group = 1
    rows = []
    try:
        for n, tokens in THRESHOLD_REQUESTS:
            docs = exact_documents(model.tokenizer, [tokens] * n)
            name = f"{n} document{'s' if n > 1 else ''} of {tokens} tokens"
            rows += _layout_rows(scorer, name, docs, params, repeat)
    finally:
        model.min_group = MIN_GROUP
    return rows, matmul_gflops(), params


PLAIN_BUDGETS = (16384, 4096, 2048, 1024)


def plain_budget_rows(settings: Settings, repeat: int) -> tuple[list[RealRow], float, int]:
    """100 documents of 64 tokens in plain batches of several token budgets (the first is the
    default the other rows use), then shared prefix + packing at the default for reference."""
    scorer, model, params, _ = _real_text_scorer(settings)
    docs = exact_documents(model.tokenizer, [64] * 100)
    (full, _), (shared, _) = request_work(model, QUERY, docs, INSTRUCTION)
    name = "100 documents of 64 tokens"
    rows = []
    for budget in PLAIN_BUDGETS:
        model.layout = "plain"
        budgeted = Scorer(model, token_budget=budget, max_batch=scorer.max_batch)
        try:
            run = functools.partial(budgeted.score, QUERY, docs, INSTRUCTION)
            seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
        finally:
            budgeted.close()
        label = (
            "ours, plain batching" if budget == PLAIN_BUDGETS[0]
            else f"plain batching, token budget {budget}"
        )  # fmt: skip
        rows.append(RealRow(name, label, len(docs), seconds, full,
                            2 * params * full / seconds / 1e9))  # fmt: skip
        print(f"plain, budget {budget}: {len(docs) / seconds:.2f} pairs/s", file=sys.stderr)
    model.layout = "packed"
    run = functools.partial(scorer.score, QUERY, docs, INSTRUCTION)
    seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
    rows.append(RealRow(name, "shared prefix + packing", len(docs), seconds, shared,
                        2 * params * shared / seconds / 1e9))  # fmt: skip
    return rows, matmul_gflops(), params


def runs_phrase(repeat: int) -> str:
    if repeat == 1:
        return (
            f"One run each (no warm-up run: the {MIN_GROUP}-document warm-up of each layout only)"
        )
    return f"{'Median' if repeat >= 3 else 'Best'} of {repeat} after one more"


def plain_budget_main(args: argparse.Namespace) -> None:
    rows, peak, params = plain_budget_rows(Settings(), args.repeat)
    result = real_table(rows, peak, baseline=None)
    text = (
        "## Plain batching's token budget at the real 0.6B size (`bench/scoring.py "
        "--plain-budget`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; no GPU. The real "
        f"Qwen3-Reranker-0.6B architecture with random weights, fp32, sdpa, {params / 1e6:.0f} M "
        "matmul parameters per token; the request of the `--real` section's first rows. Plain "
        f"batching (whole pairs, left-padded, at most {Scorer.max_batch} pairs a batch) at the "
        f"default token budget, {PLAIN_BUDGETS[0]} (*ours, plain batching*: the one the other "
        "sections use; shared prefix + packing also runs at it), and at smaller ones: whether "
        "the baseline the shared-prefix rows are held against is slowed by "
        "batches too large for this CPU's caches. "
        f"{runs_phrase(args.repeat)}, tokenizing included; "
        f"against this CPU's measured fp32 matmul throughput, {peak:.0f} GFLOP/s."
    )
    publish(result, text, "scoring-plain-budget", write=not args.no_write)


def real_table(rows: list[RealRow], peak: float, baseline: str | None = "official") -> str:
    """``baseline``: the label of each request's first row, for a second speedup column (none
    where the first row is plain batching)."""
    vision = any(row.patches for row in rows)
    lines = [
        "| request | method | pairs/s | speedup vs plain batching |"
        f"{f' speedup vs {baseline} |' if baseline else ''} tokens run |"
        f"{' vision patches run |' if vision else ''} executed GFLOP/s | of matmul peak |",
        f"| --- | --- | ---: | ---: |{' ---: |' if baseline else ''} ---: |"
        f"{' ---: |' if vision else ''} ---: | ---: |",
    ]
    for row in rows:
        same = [r for r in rows if r.scenario == row.scenario]
        plain = next(r for r in same if r.method == "ours, plain batching")
        first = same[0]
        lines.append(
            f"| {row.scenario} | {row.method} | {row.pairs_per_s:.2f} "
            f"| {row.pairs_per_s / plain.pairs_per_s:.2f}x "
            f"{f'| {row.pairs_per_s / first.pairs_per_s:.2f}x ' if baseline else ''}"
            f"| {row.tokens} |{f' {row.patches} |' if vision else ''} "
            f"{row.gflops:.0f} | {row.gflops / peak:.0%} |"
        )
    return "\n".join(lines)


def real_main(args: argparse.Namespace) -> None:
    settings = Settings()
    rows, peak, params = real_rows(settings, args.repeat)
    result = real_table(rows, peak)
    text = (
        "## Scoring at the real Qwen3-Reranker-0.6B size: shared prefix and packing "
        "(`bench/scoring.py --real`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; no GPU. The real "
        f"Qwen3-Reranker-0.6B architecture with random weights, fp32, sdpa; {params / 1e6:.0f} M "
        "matmul parameters per token. Every request has the same 40-token instruction and query "
        "(the prompt's shared prefix is the system message, the instruction and the query); "
        "documents have exactly the stated number of tokens. Same pairs, same run, "
        f"{'median' if args.repeat >= 3 else 'best'} of {args.repeat} "
        f"(after a {MIN_GROUP}-document warm-up of each method; with one run, a request is "
        "timed once), tokenizing included. "
        "*Official recipe*: the model card's computation (the full causal "
        "LM, whole-vocabulary logits at every position), one pair per forward pass, on the "
        "request's first 20 documents. *Plain batching*: our batches of whole pairs, "
        "left-padded, the last position's two logits. *Shared prefix*: the prefix run once, its "
        "key/value cache shared by the documents, padded after it. *+ packing*: the documents "
        "concatenated after the prefix with their own positions, no padding, at most 2048 real "
        "tokens per pass, each document's attention computed against the prefix and itself only "
        "(workers/scoring/segment_attention.py). *Tokens run*: what went through the network; "
        "*executed GFLOP/s*: 2 × parameters × tokens run per second (the official recipe adds its "
        f"full-vocabulary head), against this CPU's measured fp32 matmul throughput, "
        f"{peak:.0f} GFLOP/s (torch.mm, 2048², 2 threads). The scores of the layouts are equal "
        "(tests/workers/test_shared_prefix.py)."
    )
    publish(result, text, "scoring-real", write=not args.no_write)


def threshold_main(args: argparse.Namespace) -> None:
    rows, peak, params = threshold_rows(Settings(), args.repeat)
    result = real_table(rows, peak, baseline=None)
    text = (
        "## Where sharing a prefix starts to pay: small requests at the real 0.6B size "
        "(`bench/scoring.py --threshold`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; no GPU. The real "
        f"Qwen3-Reranker-0.6B architecture with random weights, fp32, sdpa, {params / 1e6:.0f} M "
        "matmul parameters per token; the instruction and query of the `--real` section, documents "
        "of exactly 64 tokens, and two requests of 512-token documents, where sharing saves "
        "least. Sharing is forced on for every group size here; in service, a "
        f"prefix shared by fewer than `MIN_GROUP` = {MIN_GROUP} pairs runs as plain pairs "
        "(workers/scoring/shared_prefix.py), the threshold these rows measure. "
        f"{runs_phrase(args.repeat)}, tokenizing included. Below the threshold the prefix pass "
        "is a forward of its own whose "
        "few tokens use the CPU poorly, and the documents' pass is small too; the tokens saved "
        "do not cover it. Against this CPU's measured fp32 matmul throughput, "
        f"{peak:.0f} GFLOP/s."
    )
    publish(result, text, "scoring-threshold", write=not args.no_write)


# The layouts a real-size run compares, after its one-pair-at-a-time baseline.
LAYOUT_LABELS = {
    "plain": "ours, plain batching",
    "padded": "shared prefix (padded)",
    "packed": "shared prefix + packing",
}


def real_vl_rows(settings: Settings, repeat: int, media: Path) -> tuple[list[RealRow], float]:
    from workers.scoring.qwen3_vl import Qwen3VLReranker

    path = random_checkpoint(REAL_VL_ARCH, settings.cache_dir)
    scorer = load_scorer(path, dtype="float32", media_roots=[media])
    model = scorer.model
    assert isinstance(model, Qwen3VLReranker)
    lm_params, vision_params = scorer_parameters(model)
    # 320 × 256 is 320 patches, 80 tokens after the 2 × 2 merge: a product photo at a modest size.
    images = noise_images(media, 11, (320, 256))
    image_docs = [{"image": image} for image in images[:10]]
    image_query = {"image": images[10]}
    text_docs = exact_documents(model.processor.tokenizer, [64] * 20)
    scenarios = [
        ("10 image documents, text query", QUERY, image_docs),
        ("10 image documents, image query", image_query, image_docs),
        ("20 documents of 64 tokens, image query", image_query, text_docs),
    ]
    warm = image_docs[:MIN_GROUP]
    for layout in LAYOUT_LABELS:
        model.layout = layout  # type: ignore[assignment]
        scorer.score(image_query, warm, INSTRUCTION)
    rows = []
    for name, query, docs in scenarios:
        (full, patches), (shared, shared_patches) = request_work(model, query, docs, INSTRUCTION)

        def gflops(tokens: int, patches: int, seconds: float) -> float:
            return 2 * (lm_params * tokens + vision_params * patches) / seconds / 1e9

        model.layout = "plain"
        run = functools.partial(lambda q, ds: [scorer.score(q, [d], INSTRUCTION) for d in ds],
                                query, docs)  # fmt: skip
        seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
        rows.append(RealRow(name, "one pair at a time (the official computation)", len(docs),
                            seconds, full, gflops(full, patches, seconds), patches))  # fmt: skip
        sizes = {"plain": (full, patches), "padded": (shared, shared_patches),
                 "packed": (shared, shared_patches)}  # fmt: skip
        for layout, label in LAYOUT_LABELS.items():
            model.layout = layout  # type: ignore[assignment]
            run = functools.partial(scorer.score, query, docs, INSTRUCTION)
            seconds = _best_seconds(run, repeat, warm_up=repeat > 1)
            tokens, seen = sizes[layout]
            rows.append(RealRow(name, label, len(docs), seconds, tokens,
                                gflops(tokens, seen, seconds), seen))  # fmt: skip
            print(f"{name}: {label} {len(docs) / seconds:.2f} pairs/s", file=sys.stderr)
        model.layout = "packed"
    return rows, matmul_gflops()


def real_vl_main(args: argparse.Namespace) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory() as media_dir:
        rows, peak = real_vl_rows(settings, args.repeat, Path(media_dir))
    result = real_table(rows, peak, baseline="one at a time")
    text = (
        "## Scoring at the real Qwen3-VL-Reranker-2B size: image documents and image queries "
        "(`bench/scoring.py --real-vl`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; no GPU. The real "
        "Qwen3-VL-Reranker-2B architecture with random weights, fp32, sdpa. Images are "
        "distinct 320 × 256 random-noise PNGs: 320 patches through the vision tower, 80 tokens "
        "after the 2 × 2 merge. Same pairs, same run, "
        f"{'median' if args.repeat >= 3 else 'best'} of {args.repeat} after a {MIN_GROUP}-document "
        "warm-up of each layout, image decoding and preprocessing included. For Qwen3-VL the "
        "official computation is the one our scorer does, so the baseline is our scorer given "
        "one document per call. *Shared prefix*: the system message, instruction and query "
        "(with an image query: its vision tokens, computed by the vision tower once) run once "
        "per request, the documents after it against its key/value cache; *+ packing*: "
        "documents concatenated without padding, each attending to the prefix and itself only. "
        "*Executed GFLOP/s*: 2 × (language-model parameters × tokens run + vision-tower "
        "parameters × patches run) per second, against this CPU's measured fp32 matmul "
        f"throughput, {peak:.0f} GFLOP/s. The layouts' scores are equal "
        "(tests/workers/test_shared_prefix_vl.py)."
    )
    publish(result, text, "scoring-real-vl", write=not args.no_write)


if __name__ == "__main__":
    main()
