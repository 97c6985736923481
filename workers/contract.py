"""Messages between the sidecar and the scoring workers (pydantic + stdlib only).

This is the one module both sides import. It must stay light: no torch, no transformers, nothing
from ``sidecar``. Messages are versioned (``v``), frozen, and refuse unknown keys, so a sidecar
and a worker of different versions fail loudly instead of silently dropping a field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CONTRACT_VERSION: Literal[1] = 1

Priority = Literal["interactive", "bulk"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: Any) -> Any:
    """Lone surrogates (a JSON ``"\\ud800"`` parses into one) become U+FFFD: they cannot be
    encoded, so they would break cache keys, tokenizers and logs far from where they came in."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, list):
        return [_valid_unicode(item) for item in value]
    return value


class Content(_Message):
    """A query or a document: any of text, image and video. Media travel as URLs or references,
    never as bytes; a list means several images (or several videos, or frames) in order."""

    text: str | None = None
    image: str | list[str] | None = None
    video: str | list[str] | list[str | list[str]] | None = None

    _unicode = field_validator("text", "image", "video", mode="after")(_valid_unicode)


class Document(Content):
    id: str = Field(description="The caller's id for the document, echoed in error entries.")


class ScoringJob(_Message):
    """Score every (query, document) pair with one model."""

    v: Literal[1] = CONTRACT_VERSION
    model: str = Field(min_length=1, description="Registry name, e.g. qwen3-vl-reranker-2b.")
    instruction: str | None = None
    query: Content
    documents: list[Document] = Field(min_length=1)
    deadline: float = Field(description="Unix time after which the result is useless.")
    priority: Priority = "interactive"
    max_doc_tokens: int | None = Field(
        default=None, gt=0, description="Cut each document's text to this many tokens first."
    )

    @model_validator(mode="after")
    def _ids_unique(self) -> ScoringJob:
        ids = [doc.id for doc in self.documents]
        if len(set(ids)) != len(ids):
            raise ValueError("document ids must be unique within a job")
        return self


ModelKind = Literal["qwen3-vl", "qwen3"]


class ModelSpec(_Message):
    """One entry of the model registry: what a name means to the workers."""

    path: str = Field(min_length=1, description="Hub id or local directory.")
    kind: ModelKind | None = Field(default=None, description="Read from the config when unset.")
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = Field(default="auto", description="auto: cuda when available, else cpu.")
    max_length: int | None = Field(default=None, gt=0, description="Unset: the model's own.")
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"
    default_instruction: str | None = None


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "qwen3-vl-reranker-2b": ModelSpec(path="Qwen/Qwen3-VL-Reranker-2B", kind="qwen3-vl"),
    "qwen3-vl-reranker-8b": ModelSpec(path="Qwen/Qwen3-VL-Reranker-8B", kind="qwen3-vl"),
    "qwen3-reranker-0.6b": ModelSpec(path="Qwen/Qwen3-Reranker-0.6B", kind="qwen3"),
    "qwen3-reranker-4b": ModelSpec(path="Qwen/Qwen3-Reranker-4B", kind="qwen3"),
    "qwen3-reranker-8b": ModelSpec(path="Qwen/Qwen3-Reranker-8B", kind="qwen3"),
}


def queue_name(model: str, priority: Priority) -> str:
    """The Celery queue of one model and priority.

    Example: ``rerank.qwen3-vl-reranker-2b.interactive``."""
    return f"rerank.{model}.{priority}"


class DocumentError(_Message):
    index: int = Field(ge=0, description="Position of the document in the job.")
    error: str


WORKER_HEARTBEAT_S = 5.0
"""How often a scoring worker says, per model it serves, that it is alive."""
WORKER_STALE_S = 20.0
"""A worker not heard from for this long no longer counts as serving its models."""


def heartbeat_key(model: str) -> str:
    """The Redis sorted set of the workers serving ``model``: member = the worker's node name,
    score = Unix time of its last heartbeat. The sidecar reads it to answer ``no_worker`` at once
    instead of queueing a job nobody will take.

    Example: ``rerank:workers:qwen3-vl-reranker-2b``."""
    return f"rerank:workers:{model}"


SCORE_TASK = "rerank.score"
"""Name of the Celery task that takes a ScoringJob dict and returns a ScoringResult dict."""


class ScoringResult(_Message):
    """One score per document, in job order; ``None`` where the document could not be scored."""

    v: Literal[1] = CONTRACT_VERSION
    scores: list[float | None]
    errors: list[DocumentError] = Field(default_factory=list)
    model: str
    took_ms: float = Field(ge=0)
    tokens: int = Field(default=0, ge=0, description="Tokens of the scored pairs.")


__all__ = [
    "BUILTIN_MODELS",
    "CONTRACT_VERSION",
    "SCORE_TASK",
    "WORKER_HEARTBEAT_S",
    "WORKER_STALE_S",
    "Content",
    "Document",
    "DocumentError",
    "ModelKind",
    "ModelSpec",
    "Priority",
    "ScoringJob",
    "ScoringResult",
    "heartbeat_key",
    "queue_name",
]
