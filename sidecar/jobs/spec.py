"""What a bulk rescoring job is: its versioned spec and the search each query becomes.

A spec names a source index (or pattern), a query set, the rerank settings (a profile and/or
the profile keys), the outputs (a results index and/or the score cache) and the limits that
protect the cluster and the GPUs. Unknown keys are refused, so a typo is a 400 naming the key.

Each query becomes one search: its own ``body``, or the spec's ``search`` template with every
``{{query}}`` replaced by the query's text, plus ``ext.rerank`` with the job's rerank settings.
That body then takes the proxy's own path (``sidecar.search.plan.decide`` and ``prepare``), so a
job's order is the order the proxy returns for the same search, and its score-cache keys are the
keys the proxy looks up: a text query's rerank text is read from the body as the proxy reads it.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sidecar.search.options import Profile

SPEC_VERSION: Literal[1] = 1
PLACEHOLDER = "{{query}}"
DEFAULT_SEARCH: dict[str, Any] = {"query": {"multi_match": {"query": PLACEHOLDER}}}
"""Without a ``search`` template: the query text against every field the index searches by
default (``index.query.default_field``), on both engines."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QueryItem(_Strict):
    """One query of a job. ``id`` is part of each result document's id; ``text``, ``image`` and
    ``video`` are what the reranker compares documents with; ``body`` replaces the search
    template for this query (its rerank text is then read from it as the proxy does)."""

    id: str = Field(min_length=1, max_length=256)
    text: str | None = None
    image: str | list[str] | None = None
    video: str | list[str] | None = None
    body: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("a query id must be printable text")
        return value

    @model_validator(mode="after")
    def _has_something(self) -> QueryItem:
        if not (self.text or self.image or self.video or self.body):
            raise ValueError("a query needs text, an image, a video or a search body")
        return self


class UbiQueries(_Strict):
    """The ``top`` most frequent ``user_query`` values logged in a UBI queries index."""

    index: str = "ubi_queries"
    top: int = Field(gt=0, le=100_000)
    since: str = "now-7d"
    """Start of the time range (date math or an ISO time). Example: ``now-1d``."""
    until: str = "now"
    field: str = "user_query.keyword"
    """The aggregatable field of the query text (the UBI mapping's keyword subfield)."""


class QuerySource(_Strict):
    """Exactly one of: ``inline`` queries, a JSONL ``path`` on the sidecar (under
    ``jobs.query_roots``), or ``ubi`` head queries. (A JSONL file may also be uploaded with the
    request: the lines after the spec in an ``application/x-ndjson`` body.)"""

    inline: list[QueryItem] | None = None
    path: str | None = None
    ubi: UbiQueries | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> QuerySource:
        given = [name for name in ("inline", "path", "ubi") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of inline, path and ubi"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class RerankOptions(Profile):
    """A profile's name and/or profile keys (the keys win over the named profile's)."""

    profile: str | None = None


class Output(_Strict):
    index: str | None = Field(default=None, min_length=1)
    """Results index: one document per (query, reranked hit). Created with the results mapping
    when missing; an existing one must map the result fields compatibly."""
    warm_cache: bool = False
    """Store every scored pair in the sidecar's score cache, so the same searches through the
    proxy later cost no model time."""

    @model_validator(mode="after")
    def _something(self) -> Output:
        if self.index is None and not self.warm_cache:
            raise ValueError("an output is needed: index, warm_cache, or both")
        if self.index is not None and (self.index.startswith(("-", "_", "+")) or "*" in self.index):
            raise ValueError(f"{self.index!r} is not a concrete index name")
        return self


class Limits(_Strict):
    searches: int | None = Field(default=None, gt=0)
    """Searches (with their scoring and writes) in flight at once. Unset:
    ``jobs.default_concurrency``."""
    pairs: int | None = Field(default=None, gt=0)
    """Documents waiting on the scoring workers at once. Unset: ``jobs.max_pairs_in_flight``."""


class JobSpec(_Strict):
    v: Literal[1] = SPEC_VERSION
    index: str = Field(min_length=1)
    """Source index, alias or pattern, as a search path names it. Example: ``products*``."""
    queries: QuerySource | None = None
    """Where the queries come from; None only when they are uploaded with the request."""
    search: dict[str, Any] = Field(default_factory=lambda: copy.deepcopy(DEFAULT_SEARCH))
    """The search of a query without a ``body`` of its own; every ``{{query}}`` in a string is
    replaced by the query's text."""
    rerank: RerankOptions = Field(default_factory=RerankOptions)
    output: Output
    limits: Limits = Field(default_factory=Limits)
    credentials: str | None = None
    """Name of an entry of ``jobs.credentials`` the runner searches and writes with."""
    name: str | None = Field(default=None, max_length=200)
    """A label for people (listed with the job)."""


def fill(template: Any, text: str) -> Any:
    """``template`` with ``{{query}}`` replaced by ``text`` in every string (keys untouched)."""
    if isinstance(template, str):
        return template.replace(PLACEHOLDER, text)
    if isinstance(template, dict):
        return {key: fill(value, text) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, text) for value in template]
    return template


def search_body(spec: JobSpec, item: QueryItem) -> dict[str, Any]:
    """The search one query becomes: the body, ``ext.rerank`` set to the job's settings."""
    if item.body is not None:
        body = copy.deepcopy(item.body)
    elif item.text:
        body = fill(spec.search, item.text)
    else:
        body = {"query": {"match_all": {}}}  # an image or video query alone: rerank everything
    rerank: dict[str, Any] = spec.rerank.model_dump(mode="json", exclude_none=True)
    if item.image is not None or item.video is not None:
        # Media queries name their content; a text query's is read from the body, as the proxy
        # reads it (the same cache keys as the interactive searches it stands for).
        rerank["query"] = {
            key: value
            for key, value in (("text", item.text), ("image", item.image), ("video", item.video))
            if value is not None
        }
    ext = body.get("ext")
    body["ext"] = {**(ext if isinstance(ext, dict) else {}), "rerank": rerank}
    return body


__all__ = [
    "DEFAULT_SEARCH",
    "JobSpec",
    "Limits",
    "Output",
    "QueryItem",
    "QuerySource",
    "RerankOptions",
    "UbiQueries",
    "fill",
    "search_body",
]
