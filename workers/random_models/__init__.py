"""Random-weight Qwen3 reranker checkpoints built offline: tiny ones for tests, real-size ones
for speed runs. Imports torch and transformers; used by tests, benchmarks and the CLI only."""

from workers.random_models.build import (
    ARCHITECTURES,
    MODEL_KINDS,
    ModelKind,
    architecture_config,
    build_random_model,
    build_tiny_model,
    cached_tiny_model,
    tiny_config,
)
from workers.random_models.tokenizer import build_qwen_tokenizer, chat_template

__all__ = [
    "ARCHITECTURES",
    "MODEL_KINDS",
    "ModelKind",
    "architecture_config",
    "build_qwen_tokenizer",
    "build_random_model",
    "build_tiny_model",
    "cached_tiny_model",
    "chat_template",
    "tiny_config",
]
