"""Loading the registry's models once per worker process, each behind its own batcher."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from workers.batcher import Batcher, BatchObserver
from workers.contract import ModelSpec
from workers.media import MediaResolver
from workers.scoring import Qwen3TextReranker, Qwen3VLReranker, model_kind, resolve_dtype
from workers.scoring.base import RerankerModel
from workers.scoring.prompts import TEXT_DEFAULT_INSTRUCTION, VL_DEFAULT_INSTRUCTION
from workers.scoring.qwen3_text import MAX_LENGTH as TEXT_MAX_LENGTH
from workers.scoring.qwen3_vl import MAX_LENGTH as VL_MAX_LENGTH

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    token_budget: int = 16384
    max_batch: int = 64
    media: MediaResolver = field(default_factory=MediaResolver)


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_attention(attn: str, device: str) -> str:
    """sdpa by default; flash-attention 2 when asked for or, under auto, when installed on a GPU."""
    if attn != "auto":
        return attn
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(spec: ModelSpec, media: MediaResolver) -> RerankerModel:
    device = pick_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    attn = pick_attention(spec.attn_implementation, device)
    kind = spec.kind or model_kind(spec.path, spec.revision)
    if kind == "qwen3-vl":
        return Qwen3VLReranker(
            spec.path,
            device=device,
            dtype=dtype,
            attn_implementation=attn,
            revision=spec.revision,
            media=media,
            max_length=spec.max_length or VL_MAX_LENGTH,
            default_instruction=spec.default_instruction or VL_DEFAULT_INSTRUCTION,
        )
    return Qwen3TextReranker(
        spec.path,
        device=device,
        dtype=dtype,
        attn_implementation=attn,
        revision=spec.revision,
        max_length=spec.max_length or TEXT_MAX_LENGTH,
        default_instruction=spec.default_instruction or TEXT_DEFAULT_INSTRUCTION,
    )


def warm_up(model: RerankerModel) -> None:
    """One real forward pass at start, so the first request pays no lazy initialisation."""
    prepared = model.prepare(
        model.resolve({"text": "warm up"}), model.resolve({"text": "ok"}), None
    )
    model.forward([prepared])


def load_batchers(
    registry: Mapping[str, ModelSpec],
    names: Sequence[str],
    options: LoadOptions,
    observers: Mapping[str, BatchObserver] | None = None,
) -> dict[str, Batcher]:
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ValueError(
            f"unknown model(s) {', '.join(unknown)}; the registry has {', '.join(registry)}"
        )
    batchers: dict[str, Batcher] = {}
    for name in names:
        log.info("loading model %s from %s", name, registry[name].path)
        model = load_model(registry[name], options.media)
        warm_up(model)
        batchers[name] = Batcher(
            model,
            token_budget=options.token_budget,
            max_batch=options.max_batch,
            observer=(observers or {}).get(name),
        )
    return batchers
