"""Request and response shapes of the rerank API: one request model that accepts the Jina,
Cohere (v1 and v2) and vLLM shapes, and one response that satisfies all three clients.

Documents may be strings, ``{"text", "image", "video"}`` objects (Jina, ours), or vLLM's
``{"content": [{"type": "text" | "image_url" | "video_url", ...}]}``. Unknown request fields are
accepted and logged, as vLLM does, so newer clients keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.contract import Content


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    def unknown_fields(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())


class ContentPart(BaseModel):
    """One part of vLLM's / OpenAI's multimodal content list."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "image_url", "video_url", "image", "video"]
    text: str | None = None
    image_url: str | dict[str, Any] | None = None
    video_url: str | dict[str, Any] | None = None
    image: str | None = None
    video: str | None = None


class MediaDocument(BaseModel):
    """A document or query with text, image and/or video (our shape, and Jina's objects)."""

    model_config = ConfigDict(extra="forbid")

    text: str | list[str] | None = None
    image: str | list[str] | None = None
    video: str | list[str | list[str]] | None = None
    """One video (a file or URL), one video as a list of frames (image references), or a list
    of videos, each a file or URL or a list of frames: the official Qwen code's reading."""


class ContentDocument(BaseModel):
    """vLLM's multimodal document: ``{"content": [parts]}``."""

    model_config = ConfigDict(extra="forbid")

    content: list[ContentPart] = Field(min_length=1)


DocumentIn = str | MediaDocument | ContentDocument


class RerankRequest(ApiModel):
    model: str | None = Field(default=None, description="Registry name; unset: the default.")
    query: str | MediaDocument | ContentDocument
    documents: list[DocumentIn]
    top_n: int | None = Field(default=None, description="How many results; 0 or unset: all.")
    return_documents: bool | None = Field(
        default=None, description="Include each document in its result (Jina's default: yes)."
    )
    max_tokens_per_doc: int | None = Field(default=None, gt=0)
    instruction: str | None = None

    @field_validator("documents")
    @classmethod
    def _not_empty(cls, value: list[DocumentIn]) -> list[DocumentIn]:
        if not value:
            raise ValueError("documents must hold at least one document")
        return value


def _url(value: str | dict[str, Any] | None) -> str | None:
    if isinstance(value, dict):
        url = value.get("url")
        return str(url) if url is not None else None
    return value


def to_content(item: str | MediaDocument | ContentDocument) -> Content:
    """Any accepted document or query shape → the scoring contract's Content."""
    if isinstance(item, str):
        return Content(text=item)
    if isinstance(item, MediaDocument):
        text = "\n".join(item.text) if isinstance(item.text, list) else item.text
        return Content(text=text, image=item.image, video=item.video)
    texts: list[str] = []
    images: list[str] = []
    videos: list[str] = []
    for part in item.content:
        if part.type == "text" and part.text is not None:
            texts.append(part.text)
        elif part.type in ("image_url", "image"):
            url = _url(part.image_url) or part.image
            if url:
                images.append(url)
        elif part.type in ("video_url", "video"):
            url = _url(part.video_url) or part.video
            if url:
                videos.append(url)
    return Content(
        text="\n".join(texts) if texts else None,
        image=(images[0] if len(images) == 1 else images) if images else None,
        video=(videos[0] if len(videos) == 1 else videos) if videos else None,
    )


def has_content(content: Content) -> bool:
    return content.text is not None or content.image is not None or content.video is not None


class ResultDocument(BaseModel):
    text: str | None = None
    image: str | list[str] | None = None
    video: str | list[str | list[str]] | None = None


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: ResultDocument | None = None


class DocumentFailure(BaseModel):
    index: int
    error: str


class Usage(BaseModel):
    total_tokens: int
    prompt_tokens: int


class ApiVersion(BaseModel):
    version: str
    is_experimental: bool = False


class BilledUnits(BaseModel):
    search_units: int
    input_tokens: int


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits
    warnings: list[str] | None = None


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: Usage
    meta: Meta
    errors: list[DocumentFailure] = Field(
        default_factory=list,
        description="Documents that could not be scored (left out of results), with the reason.",
    )


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo
