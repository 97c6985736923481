"""Random-weight Qwen3 reranker checkpoints, built offline.

Weights cannot be downloaded on our machines, so tests and speed runs build checkpoints here:
tiny ones (a few MB of layers, the real 151936-token vocabulary so real ids work) for tests, and
real-size ones from the shipped architecture configs for speed runs. Either kind is a directory
that loads with the same ``from_pretrained`` calls as a downloaded checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from transformers import (
    AutoConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2VLImageProcessorFast,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from workers.random_models.tokenizer import build_qwen_tokenizer

ModelKind = Literal["qwen3-vl", "qwen3"]
MODEL_KINDS: tuple[ModelKind, ...] = ("qwen3-vl", "qwen3")

ARCHITECTURES: tuple[str, ...] = (
    "qwen3-vl-reranker-2b",
    "qwen3-vl-reranker-8b",
    "qwen3-reranker-0.6b",
    "qwen3-reranker-4b",
    "qwen3-reranker-8b",
)

# Bump when the tiny configs or the build change, so cached builds are not reused.
BUILD_VERSION = 1

# The Qwen3-VL checkpoints' preprocessor_config.json size; the scorer passes the reranker's own
# pixel limits per call, as the official code does.
_IMAGE_SIZE = {"shortest_edge": 65536, "longest_edge": 16777216}

_TINY_TEXT: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}


def architecture_config(arch: str) -> PretrainedConfig:
    """The real architecture config of a Qwen3 reranker (sizes only; weights are not included)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    resource = importlib.resources.files("workers") / "assets" / "configs" / f"{arch}.json"
    data = json.loads(resource.read_text(encoding="utf-8"))
    model_type = data.pop("model_type")
    return AutoConfig.for_model(model_type, **data)


def tiny_config(kind: ModelKind) -> PretrainedConfig:
    """A tiny config of the same architecture as the real model of ``kind``."""
    if kind == "qwen3":
        return Qwen3Config(
            **_TINY_TEXT,
            max_position_embeddings=40960,
            rope_theta=1_000_000.0,
            tie_word_embeddings=True,
            architectures=["Qwen3ForCausalLM"],
        )
    text = {
        **_TINY_TEXT,
        "max_position_embeddings": 262144,
        "rope_theta": 5_000_000.0,
        # Same 3:2.5:2.5 split of the rotary half-dim as the real [24, 20, 20] of head_dim 128.
        "rope_scaling": {
            "rope_type": "default",
            "mrope_section": [4, 2, 2],
            "mrope_interleaved": True,
        },
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": 3,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": text["hidden_size"],
        "num_position_embeddings": 2304,
        "hidden_act": "gelu_pytorch_tanh",
        "deepstack_visual_indexes": [0, 1],
    }
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=True,
        architectures=["Qwen3VLForConditionalGeneration"],
    )


def _kind_of(config: PretrainedConfig) -> ModelKind:
    return "qwen3-vl" if config.model_type == "qwen3_vl" else "qwen3"


def build_qwen3_vl_processor(tokenizer: PreTrainedTokenizerFast) -> Qwen3VLProcessor:
    """The Qwen3-VL processor: patch 16, merge 2, temporal patch 2, as the checkpoints ship it."""
    image_processor = Qwen2VLImageProcessorFast(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size=dict(_IMAGE_SIZE),
    )
    video_processor = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def _save_checkpoint(
    config: PretrainedConfig, out_dir: Path, seed: int, dtype: torch.dtype
) -> None:
    kind = _kind_of(config)
    torch.manual_seed(seed)
    model_cls = Qwen3VLForConditionalGeneration if kind == "qwen3-vl" else Qwen3ForCausalLM
    model = model_cls(config)
    # transformers wraps PreTrainedModel.to in a decorator that mypy cannot see through.
    model.to(dtype=dtype)  # type: ignore[call-arg]
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    max_length = 262144 if kind == "qwen3-vl" else 40960
    tokenizer = build_qwen_tokenizer(kind, model_max_length=max_length)
    if kind == "qwen3-vl":
        build_qwen3_vl_processor(tokenizer).save_pretrained(out_dir)
    else:
        tokenizer.save_pretrained(out_dir)


def _atomic_build(out_dir: Path, config: PretrainedConfig, seed: int, dtype: torch.dtype) -> Path:
    """Build into a sibling temp dir and rename, so a killed build never leaves half a model."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _save_checkpoint(config, staging, seed, dtype)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def build_tiny_model(kind: ModelKind, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight checkpoint of ``kind`` (fp32, fixed seed) into ``out_dir``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    return _atomic_build(Path(out_dir), tiny_config(kind), seed, torch.float32)


DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}


def build_random_model(arch: str, out_dir: Path, dtype: str = "bfloat16", seed: int = 0) -> Path:
    """Build a real-size random-weight checkpoint of ``arch`` for speed runs."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return _atomic_build(Path(out_dir), architecture_config(arch), seed, DTYPES[dtype])


def cached_tiny_model(kind: ModelKind, cache_dir: Path, seed: int = 0) -> Path:
    """The tiny model of ``kind``, built once into ``cache_dir`` and reused afterwards."""
    key = f"{BUILD_VERSION}:{kind}:{seed}:{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out_dir = Path(cache_dir) / "models" / f"tiny-{kind}-{digest}"
    if (out_dir / "config.json").is_file():
        return out_dir
    return build_tiny_model(kind, out_dir, seed=seed)
