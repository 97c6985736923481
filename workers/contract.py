"""Messages between the sidecar and the scoring workers (pydantic + stdlib only).

This is the one module both sides import. It must stay light: no torch, no transformers, nothing
from ``sidecar``. Messages are versioned (``v``), frozen, and refuse unknown keys, so a sidecar
and a worker of different versions fail loudly instead of silently dropping a field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTRACT_VERSION: Literal[1] = 1

Priority = Literal["interactive", "bulk"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Content(_Message):
    """A query or a document: any of text, image and video. Media travel as URLs or references,
    never as bytes; a list means several images (or frames) in order."""

    text: str | None = None
    image: str | list[str] | None = None
    video: str | list[str] | None = None


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

    @model_validator(mode="after")
    def _ids_unique(self) -> ScoringJob:
        ids = [doc.id for doc in self.documents]
        if len(set(ids)) != len(ids):
            raise ValueError("document ids must be unique within a job")
        return self


class DocumentError(_Message):
    index: int = Field(ge=0, description="Position of the document in the job.")
    error: str


class ScoringResult(_Message):
    """One score per document, in job order; ``None`` where the document could not be scored."""

    v: Literal[1] = CONTRACT_VERSION
    scores: list[float | None]
    errors: list[DocumentError] = Field(default_factory=list)
    model: str
    took_ms: float = Field(ge=0)


__all__ = [
    "CONTRACT_VERSION",
    "Content",
    "Document",
    "DocumentError",
    "Priority",
    "ScoringJob",
    "ScoringResult",
]
