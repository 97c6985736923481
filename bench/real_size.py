"""What the real-size scoring benchmarks share: random checkpoints, exact-length documents, the
matmul throughput they are held against, and the parameter counts of useful work.

Nothing here imports the sidecar, so the GPU bench (``bench/scoring_gpu.py``) runs on a machine
that has only torch, transformers and the workers' own packages.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from workers.random_models.build import build_random_model
from workers.scoring import Prepared

FILLER = (
    "This shoe has a breathable mesh upper, a cushioned midsole for long runs, a grippy rubber "
    "outsole with deep lugs for mud and rock, a reinforced toe cap, and a gusseted tongue that "
    "keeps debris out; it comes in red, blue and black, weighs 280 grams, and fits true to size. "
)
INSTRUCTION = (
    "Given a product search query from an online sports shop, retrieve the product "
    "descriptions that best answer the query"
)
QUERY = {"text": "lightweight waterproof trail running shoes for wide feet and rocky paths"}


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "rerank-sidecar"


def random_checkpoint(arch: str, cache_dir: Path) -> Path:
    """A random-weight checkpoint of the real ``arch`` config (bf16 on disk), built once."""
    out = cache_dir / "models" / f"random-{arch}-bf16"
    if not (out / "config.json").is_file():
        print(f"building a random-weight {arch} (once) …", file=sys.stderr)
        build_random_model(arch, out, dtype="bfloat16")
    return out


def exact_documents(tokenizer: Any, lengths: list[int]) -> list[dict[str, Any]]:
    """Documents of exactly ``lengths`` tokens each (a different start per document)."""
    longest = max(lengths, default=0)
    ids = tokenizer.encode(FILLER * (2 + longest // 40), add_special_tokens=False)
    docs = []
    for i, n in enumerate(lengths):
        start = (i * 37) % 200
        docs.append({"text": f"item {i}: " + tokenizer.decode(ids[start : start + n - 3])})
    return docs


def noise_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``count`` distinct random-noise PNGs of ``size``: no two documents share pixels."""
    generator = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(count):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator)
        path = folder / f"noise-{seed}-{i}.png"
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(path)
        paths.append(str(path))
    return paths


def matmul_gflops(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """This device's matmul throughput as torch reaches it (n × n by n × n, best of a few)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    synchronize(device)
    times = []
    for _ in range(10 if device.startswith("cuda") else 5):
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / min(times) / 1e9


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_parameters(module: torch.nn.Module, embedding: torch.nn.Module | None) -> int:
    """Parameters a token multiplies through: all of ``module`` but its embedding lookup."""
    total = sum(p.numel() for p in module.parameters())
    if embedding is not None:
        total -= sum(p.numel() for p in embedding.parameters())
    return total


def vision_patches(prepared: Prepared) -> int:
    """Patches a pair sends through the vision tower (images and videos)."""
    return sum(
        int(prepared.vision[key].shape[0])
        for key in ("pixel_values", "pixel_values_videos")
        if key in prepared.vision
    )


def request_work(
    model: Any, query: dict[str, Any], docs: list[dict[str, Any]], instruction: str | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(tokens, vision patches) of a request run as whole pairs, and run with its shared prefix
    once (the least it needs); the two are equal when it has no shared prefix."""
    resolved = model.resolve(query)

    def prepare(doc: dict[str, Any]) -> Prepared | None:
        prepared = model.prepare(resolved, model.resolve(doc), instruction)
        return prepared if isinstance(prepared, Prepared) else None

    pairs = [p for p in map(prepare, docs) if p is not None]
    alone = prepare({"text": "x"})
    tokens = sum(p.length for p in pairs)
    patches = sum(vision_patches(p) for p in pairs)
    prefix = pairs[0].prefix_len if pairs else 0
    if not prefix:
        return (tokens, patches), (tokens, patches)
    repeats = len(pairs) - 1
    query_patches = vision_patches(alone) if alone else 0
    return (tokens, patches), (tokens - prefix * repeats, patches - query_patches * repeats)


def scorer_parameters(model: Any) -> tuple[int, int]:
    """(language-model, vision-tower) parameters a token or a patch multiplies through."""
    backbone = model.backbone
    if hasattr(backbone, "language_model"):
        language, visual = backbone.language_model, backbone.visual
        return (
            matmul_parameters(language, language.embed_tokens) + model.score_head.weight.numel(),
            matmul_parameters(visual, visual.pos_embed),
        )
    return matmul_parameters(backbone, backbone.embed_tokens) + model.head.numel(), 0
