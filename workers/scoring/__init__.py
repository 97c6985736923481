"""Scoring (query, document) pairs with the Qwen3 rerankers.

Example::

    from workers.scoring import load_scorer
    scorer = load_scorer("Qwen/Qwen3-VL-Reranker-2B", device="cpu", dtype="float32")
    scores = scorer.score({"text": "red shoes"}, [{"text": "red running shoes"}, {"image": img}])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig

from workers.media import MediaError, MediaLimits, MediaResolver, RemoteFetcher
from workers.scoring.base import PairError, Prepared, RerankerModel, ScoreOutcome, Scorer
from workers.scoring.prompts import VisionLimits
from workers.scoring.qwen3_text import MAX_LENGTH as TEXT_MAX_LENGTH
from workers.scoring.qwen3_text import Qwen3TextReranker
from workers.scoring.qwen3_vl import MAX_LENGTH as VL_MAX_LENGTH
from workers.scoring.qwen3_vl import Qwen3VLReranker

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on a GPU and float32 on the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def model_kind(name_or_path: str, revision: str | None = None) -> str:
    """qwen3-vl or qwen3, read from the checkpoint's config."""
    model_type = AutoConfig.from_pretrained(name_or_path, revision=revision).model_type
    if model_type == "qwen3_vl":
        return "qwen3-vl"
    if model_type == "qwen3":
        return "qwen3"
    raise ValueError(f"{name_or_path} is a {model_type!r} model, not a Qwen3 or Qwen3-VL reranker")


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
    path = str(name_or_path)
    kind = kind or model_kind(path, revision)
    torch_dtype = resolve_dtype(dtype, device)
    model: RerankerModel
    if kind == "qwen3-vl":
        media = MediaResolver(
            limits=media_limits or MediaLimits(),
            local_roots=tuple(media_roots),
            fetch_remote=remote_fetcher,
        )
        model = Qwen3VLReranker(
            path,
            device=device,
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            media=media,
            revision=revision,
            max_length=max_length or VL_MAX_LENGTH,
        )
    elif kind == "qwen3":
        model = Qwen3TextReranker(
            path,
            device=device,
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            revision=revision,
            max_length=max_length or TEXT_MAX_LENGTH,
        )
    else:
        raise ValueError(f"unknown model kind {kind!r}; use qwen3-vl or qwen3")
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
