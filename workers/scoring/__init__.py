"""Scoring (query, document) pairs with the Qwen3 rerankers.

Example::

    from workers.scoring import load_scorer
    scorer = load_scorer("Qwen/Qwen3-VL-Reranker-2B", device="cpu", dtype="float32")
    scores = scorer.score({"text": "red shoes"}, [{"text": "red running shoes"}, {"image": img}])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from workers.contract import ModelSpec
from workers.media import MediaError, MediaLimits, MediaResolver, RemoteFetcher
from workers.scoring.base import PairError, Prepared, RerankerModel, ScoreOutcome, Scorer
from workers.scoring.loading import load_model, model_kind, resolve_dtype
from workers.scoring.prompts import VisionLimits
from workers.scoring.qwen3_text import Qwen3TextReranker
from workers.scoring.qwen3_vl import Qwen3VLReranker


def load_scorer(
    name_or_path: str | Path,
    device: str = "cpu",
    dtype: str = "auto",
    *,
    kind: str | None = None,
    attn_implementation: str = "sdpa",
    max_length: int | None = None,
    media_roots: Sequence[Path] = (),
    media_limits: MediaLimits | None = None,
    remote_fetcher: RemoteFetcher | None = None,
    token_budget: int = 16384,
    revision: str | None = None,
) -> Scorer:
    """Load a Qwen3 reranker from a hub id or a local path and wrap it in a batching Scorer.

    Local media paths are accepted only under ``media_roots``; media URLs go through
    ``remote_fetcher`` (a ``workers.fetch.BlockingMediaFetcher``) and are refused without one.
    """
    # Validated like a registry entry, so a bad dtype or kind is a clear ValueError.
    spec = ModelSpec.model_validate(
        {
            "path": str(name_or_path),
            "kind": kind,
            "revision": revision,
            "dtype": dtype,
            "device": device,
            "max_length": max_length,
            "attn_implementation": attn_implementation,
        }
    )
    media = MediaResolver(
        limits=media_limits or MediaLimits(),
        local_roots=tuple(media_roots),
        fetch_remote=remote_fetcher,
    )
    model = load_model(spec, media)
    return Scorer(model, token_budget=token_budget)


__all__ = [
    "MediaError",
    "MediaLimits",
    "MediaResolver",
    "PairError",
    "Prepared",
    "Qwen3TextReranker",
    "Qwen3VLReranker",
    "RerankerModel",
    "ScoreOutcome",
    "Scorer",
    "VisionLimits",
    "load_scorer",
    "model_kind",
    "resolve_dtype",
]
