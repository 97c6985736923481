"""What a rerank may say: profiles in the config and ``ext.rerank`` in a search body.

A profile (config) and ``ext.rerank`` (request) share their keys; ``ext.rerank`` adds the keys
that only make sense per request (enabled, profile, query, query_context). Both refuse unknown
keys, so a typo is a 400 naming the key rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CombineMode = Literal["replace", "weighted", "rrf"]
OnError = Literal["original", "fail"]


class _Strict(BaseModel):
    # NaN and Infinity would make empty pages or null scores, never what a caller means.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Combine(_Strict):
    """How the reranker's score and the engine's combine into the new ``_score``."""

    mode: CombineMode = "replace"
    """replace: the reranker's probability; weighted: query_weight × engine score +
    rerank_weight × reranker score (the engines' rescore); rrf: reciprocal rank fusion."""
    query_weight: float = 1.0
    rerank_weight: float = 1.0
    rank_constant: int = Field(default=60, ge=1)
    """k of rrf: 1 / (k + rank) summed over both rankings."""


class Fields(_Strict):
    """Which ``_source`` fields make a hit's document. Dot paths reach into objects and arrays of
    objects; every value found is used (arrays: all of them, in order)."""

    text: list[str] = Field(default_factory=list)
    image: list[str] = Field(default_factory=list)
    video: list[str] = Field(default_factory=list)

    _lists = field_validator("text", "image", "video", mode="before")(_as_list)

    def all(self) -> list[str]:
        return [*self.text, *self.image, *self.video]

    def empty(self) -> bool:
        return not (self.text or self.image or self.video)


class Profile(_Strict):
    """Named rerank settings (config ``rerank.profiles``); every key optional."""

    model: str | None = None
    """Registry name. Unset: ``rerank.default_model``."""
    window: int | None = Field(default=None, ge=1)
    """How many of the engine's top hits are reranked."""
    instruction: str | None = None
    fields: Fields | None = None
    combine: Combine | None = None
    min_score: float | None = None
    """Reranked hits whose reranker score is below this are dropped from the window."""
    timeout_ms: int | None = Field(default=None, ge=1)
    on_error: OnError | None = None
    """original: answer with the engine's order (degraded); fail: answer 502 / 504."""
    max_doc_tokens: int | None = Field(default=None, ge=1)


class QueryContent(_Strict):
    text: str | None = None
    image: str | list[str] | None = None
    video: str | list[str] | None = None


class QueryContext(BaseModel):
    """OpenSearch's rerank-processor syntax. Extra keys are left to OpenSearch's own semantics,
    so requests written for it work unchanged."""

    model_config = ConfigDict(extra="allow", frozen=True)

    query_text: str | None = None
    query_text_path: str | None = None


class RerankExt(Profile):
    """``ext.rerank`` of one search body."""

    enabled: bool | None = None
    profile: str | None = None
    query: QueryContent | None = None
    query_context: QueryContext | None = None
    user: str | None = None
    """The user's key for experiments' sticky assignment (when an experiment reads it)."""


class RerankInputError(ValueError):
    """``ext.rerank`` is invalid; ``path`` is the offending key path, e.g. ``ext.rerank.window``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"[{path}] {reason}")
        self.path = path
        self.reason = reason


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(["ext", "rerank", *(str(part) for part in loc)])


def parse_ext(raw: Any) -> RerankExt:
    """Validate ``ext.rerank`` strictly (JSON types as they are: ``true`` is not a window,
    ``"10"`` not a number); the error names the first bad key path."""
    if not isinstance(raw, dict):
        raise RerankInputError("ext.rerank", f"must be an object, not {type(raw).__name__}")
    try:
        return RerankExt.model_validate(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise RerankInputError(_where(first["loc"]), reason) from None


def only_query_context(raw: Any) -> bool:
    """True for an ``ext.rerank`` written for OpenSearch's own rerank processor."""
    return isinstance(raw, dict) and set(raw) == {"query_context"}
