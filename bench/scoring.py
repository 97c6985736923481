"""Batched scoring vs one-pair-at-a-time loops, same model, same pairs, same run.

    .venv/bin/python bench/scoring.py            # tiny models on this machine's CPU
    .venv/bin/python bench/scoring.py --repeat 5 --no-write

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

from bench.report import machine, write_section  # noqa: E402
from sidecar.settings import Settings  # noqa: E402
from workers.random_models import cached_tiny_model  # noqa: E402
from workers.scoring import Scorer, load_scorer  # noqa: E402
from workers.scoring.prompts import TEXT_PREFIX, TEXT_SUFFIX, text_body  # noqa: E402

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


def _best_seconds(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up
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
        scores = []
        room = 8192 - len(self.prefix) - len(self.suffix)
        for doc in docs:
            body = self.tokenizer(
                text_body(query["text"], doc["text"], None), truncation=True, max_length=room
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
