"""Turning a model spec (hub id or path, kind, dtype, device, ...) into a loaded reranker."""

from __future__ import annotations

import importlib.util

import torch
from transformers import AutoConfig

from workers.contract import ModelSpec
from workers.media import MediaResolver
from workers.scoring.base import RerankerModel
from workers.scoring.prompts import TEXT_DEFAULT_INSTRUCTION, VL_DEFAULT_INSTRUCTION
from workers.scoring.qwen3_text import MAX_LENGTH as TEXT_MAX_LENGTH
from workers.scoring.qwen3_text import Qwen3TextReranker
from workers.scoring.qwen3_vl import MAX_LENGTH as VL_MAX_LENGTH
from workers.scoring.qwen3_vl import Qwen3VLReranker

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def pick_device(device: str) -> str:
    """``auto`` is CUDA when available, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on a GPU and float32 on the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def pick_attention(attn: str, device: str) -> str:
    """sdpa by default; flash-attention 2 when asked for or, under auto, when installed on a GPU."""
    if attn != "auto":
        return attn
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def model_kind(name_or_path: str, revision: str | None = None) -> str:
    """qwen3-vl or qwen3, read from the checkpoint's config."""
    model_type = AutoConfig.from_pretrained(name_or_path, revision=revision).model_type
    if model_type == "qwen3_vl":
        return "qwen3-vl"
    if model_type == "qwen3":
        return "qwen3"
    raise ValueError(f"{name_or_path} is a {model_type!r} model, not a Qwen3 or Qwen3-VL reranker")


def load_model(spec: ModelSpec, media: MediaResolver | None = None) -> RerankerModel:
    """Load the reranker ``spec`` describes (weights once; nothing is loaded per request)."""
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
            media=media or MediaResolver(),
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
