"""Deciding what happens to one search: passed on untouched, forwarded without our ``ext.rerank``
(and why it is not reranked), or reranked with a resolved plan.

Precedence: built-in defaults < ``rerank.*`` defaults < the profile (named by ``ext.rerank.profile``
or by the first matching rule) < the keys of ``ext.rerank``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.search.filter_path import FilterPathError, keeps_any, parse_filter_path
from sidecar.search.options import (
    Combine,
    Fields,
    OnError,
    Profile,
    RerankExt,
    RerankInputError,
    only_query_context,
    parse_ext,
)
from sidecar.search.query_text import QueryTextPathError, query_text, strip_lucene_syntax
from sidecar.settings import Settings
from workers.contract import Content


@dataclass(frozen=True)
class RerankPlan:
    model: str
    window: int
    query: Content
    instruction: str | None
    fields: Fields
    combine: Combine
    min_score: float | None
    timeout_ms: int
    on_error: OnError
    max_doc_tokens: int | None
    profile: str | None


@dataclass(frozen=True)
class Decision:
    """``body`` is None when the request goes on byte for byte; ``skip_reason`` says why a
    search the sidecar looked at is not reranked (None with no plan: not its business)."""

    body: dict[str, Any] | None
    skip_reason: str | None = None
    plan: RerankPlan | None = None

    @property
    def status(self) -> str | None:
        """The X-Rerank-Status header of a search that is not reranked."""
        return skipped(self.skip_reason) if self.skip_reason else None


UNTOUCHED = Decision(body=None)

# Requests whose pages must stay the engine's; each is also the skip reason. (``filter_path``
# is not one: the sidecar asks without it and filters the reranked answer as the engine would.)
_BLOCKING_PARAMS = ("scroll",)


def skipped(reason: str) -> str:
    return f"skipped; reason={reason}"


def index_names(expression: Any) -> list[str]:
    """``a,b*,-c`` → ``["a", "b*"]``; nothing → ``["_all"]``. (An _msearch header may hold
    anything: what is not a string or a list of strings names no index here.)"""
    if expression is None or expression == "":
        return ["_all"]
    if isinstance(expression, str):
        parts = expression.split(",")
    elif isinstance(expression, list):
        parts = [part for part in expression if isinstance(part, str)]
    else:
        return ["_all"]
    names = [p.strip() for p in parts if p.strip() and not p.strip().startswith("-")]
    return names or ["_all"]


def matching_profile(settings: Settings, names: Sequence[str]) -> str | None:
    """The profile of the first rule with a pattern matching any of ``names``."""
    for rule in settings.rerank.rules:
        for name in names:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.index):
                return rule.profile
    return None


def _blocked(body: Mapping[str, Any], params: Mapping[str, str]) -> str | None:
    for param in _BLOCKING_PARAMS:
        if param in params:
            return param
    if params.get("format", "json") != "json":
        return "format"
    if "search_after" in body:
        return "search_after"
    sort = body.get("sort")
    if sort is not None and not _score_sort_only(sort):
        return "sort"
    size = params.get("size", body.get("size", 10))
    if str(size) == "0":
        return "size_0"
    if body.get("stored_fields") == "_none_" or params.get("stored_fields") == "_none_":
        return "stored_fields_none"
    return None


def filter_shows_hits(params: Mapping[str, str], prefix: tuple[str, ...] = ()) -> bool:
    """Would the request's ``filter_path`` leave any hit in the answer? (If not, a rerank could
    not show, and the engine may filter its own answer.) An invalid one is the engine's to
    refuse: the sidecar does not rerank it."""
    getall = getattr(params, "getall", None)
    values = getall("filter_path") if getall is not None else None
    try:
        # The OpenSearch reading is the stricter one (it refuses a lone "-").
        parsed = parse_filter_path(values or [params["filter_path"]], flavor="opensearch")
    except FilterPathError:
        return False
    return parsed.is_empty or keeps_any(parsed, (*prefix, "hits", "hits"))


def _score_sort_only(sort: Any) -> bool:
    """Only ``_score`` (descending, as the engine sorts it by default)? Anything else, valid or
    not, is the engine's to sort (or to refuse)."""
    items = sort if isinstance(sort, list) else [sort]
    for item in items:
        if isinstance(item, str):
            name, order = item, "desc"
        elif isinstance(item, dict) and len(item) == 1:
            ((name, spec),) = item.items()
            order = spec.get("order", "desc") if isinstance(spec, dict) else spec
        else:
            return False
        if name != "_score" or not isinstance(order, str) or order.lower() != "desc":
            return False
    return True


def _merged(profile: Profile | None, ext: RerankExt | None) -> Profile:
    """The profile's keys, overridden by those the request sets."""
    chosen: dict[str, Any] = {}
    for source in (profile, ext):
        if source is None:
            continue
        for key in Profile.model_fields:
            value = getattr(source, key)
            if value is not None:
                chosen[key] = value
    return Profile(**chosen)


def _query(
    body: Mapping[str, Any], ext: RerankExt | None, params: Mapping[str, str]
) -> Content | None:
    if ext is not None and ext.query is not None:
        q = ext.query
        if q.text or q.image or q.video:
            return Content(text=q.text, image=q.image, video=q.video)
    context = ext.query_context.model_dump(exclude_none=True) if ext and ext.query_context else None
    try:
        text = query_text(body, context)
    except QueryTextPathError as exc:
        raise RerankInputError("ext.rerank.query_context.query_text_path", str(exc)) from None
    if text is None and "q" in params:
        text = strip_lucene_syntax(params["q"]) or None
    return Content(text=text) if text else None


def decide(
    settings: Settings,
    index: str | Sequence[str] | None,
    body: dict[str, Any],
    params: Mapping[str, str],
    rerank_header: str | None,
) -> Decision:
    """What to do with one search. Raises RerankInputError for an invalid ``ext.rerank``."""
    ext_raw = body.get("ext", {}).get("rerank") if isinstance(body.get("ext"), dict) else None
    rule_profile = matching_profile(settings, index_names(index))
    if ext_raw is None and rule_profile is None:
        return UNTOUCHED
    if ext_raw is not None and rule_profile is None and only_query_context(ext_raw):
        return UNTOUCHED  # written for the engine's own rerank processor
    forwarded = without_ext_rerank(body) if ext_raw is not None else None
    ext = parse_ext(ext_raw) if ext_raw is not None else None

    if rerank_header is not None and rerank_header.strip().lower() == "off":
        return Decision(forwarded, "header")
    if ext is not None and ext.enabled is False:
        return Decision(forwarded, "disabled")

    profile_name = ext.profile if ext is not None and ext.profile is not None else rule_profile
    profile: Profile | None = None
    if profile_name is not None:
        profile = settings.rerank.profiles.get(profile_name)
        if profile is None:
            known = ", ".join(sorted(settings.rerank.profiles)) or "none"
            raise RerankInputError(
                "ext.rerank.profile", f"no profile named {profile_name!r} (known: {known})"
            )
    chosen = _merged(profile, ext)
    defaults = settings.rerank
    model = chosen.model or defaults.default_model or settings.api.default_model
    if model not in settings.models:
        raise RerankInputError("ext.rerank.model", f"{model!r} is not in the model registry")
    window = chosen.window or defaults.window
    if window > defaults.max_window:
        raise RerankInputError(
            "ext.rerank.window", f"{window} is larger than the maximum {defaults.max_window}"
        )

    timeout_ms = chosen.timeout_ms or defaults.timeout_ms
    if timeout_ms > defaults.max_timeout_ms:
        raise RerankInputError(
            "ext.rerank.timeout_ms",
            f"{timeout_ms} is larger than the maximum {defaults.max_timeout_ms}",
        )
    reason = _blocked(body, params)
    if reason is None and "filter_path" in params and not filter_shows_hits(params):
        reason = "filter_path"
    if reason is not None:
        return Decision(forwarded, reason)
    query = _query(body, ext, params)
    if query is None:
        return Decision(forwarded, "no_query_text")
    plan = RerankPlan(
        model=model,
        window=window,
        query=query,
        instruction=chosen.instruction,
        fields=chosen.fields or Fields(),
        combine=chosen.combine or defaults.combine,
        min_score=chosen.min_score,
        timeout_ms=timeout_ms,
        on_error=chosen.on_error or defaults.on_error,
        max_doc_tokens=chosen.max_doc_tokens,
        profile=profile_name,
    )
    return Decision(forwarded, plan=plan)


def without_ext_rerank(body: dict[str, Any]) -> dict[str, Any]:
    """The body the engine sees: ours removed, and ``ext`` too when nothing else was in it."""
    ext = {k: v for k, v in body["ext"].items() if k != "rerank"}
    out = {k: v for k, v in body.items() if k != "ext"}
    if ext:
        out["ext"] = ext
    return out
