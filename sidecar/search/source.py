"""The client's ``_source`` view, and giving it back after the sidecar fetched more.

The sidecar needs the scored fields of every window hit, whatever the client asked for. It asks
the engine for its own view (the client's includes plus the scored fields) and afterwards cuts
each returned ``_source`` back to what the client asked for: everything, nothing (``false``, or
``stored_fields`` without ``_source``), or includes / excludes with ``*`` wildcards and dot paths,
the way the engines filter.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SOURCE_PARAMS = ("_source", "_source_includes", "_source_excludes")


@dataclass(frozen=True)
class SourceView:
    """``everything``: the engine's default; ``nothing``: no ``_source`` in hits; otherwise the
    includes (empty: all) minus the excludes."""

    everything: bool = True
    nothing: bool = False
    includes: tuple[str, ...] = field(default_factory=tuple)
    excludes: tuple[str, ...] = field(default_factory=tuple)


def _patterns(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p for p in value.split(",") if p)
    return tuple(str(p) for p in value)


def _truthy(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", ""):
        return True
    if lowered == "false":
        return False
    return None


def client_view(body: Mapping[str, Any], params: Mapping[str, str]) -> SourceView:
    """What the client would get from the engine. URL parameters win over the body, as in the
    engines."""
    source: Any = body.get("_source")
    if any(p in params for p in SOURCE_PARAMS):
        raw = params.get("_source")
        flag = _truthy(raw) if raw is not None else None
        includes = _patterns(params.get("_source_includes"))
        if raw is not None and flag is None:
            includes = includes + _patterns(raw)
        excludes = _patterns(params.get("_source_excludes"))
        if flag is False and not includes:
            return SourceView(everything=False, nothing=True)
        if includes or excludes:
            return SourceView(everything=False, includes=includes, excludes=excludes)
        return SourceView()
    if source is None:
        stored = "stored_fields" in body or "stored_fields" in params
        return SourceView(everything=False, nothing=True) if stored else SourceView()
    if source is True:
        return SourceView()
    if source is False:
        return SourceView(everything=False, nothing=True)
    if isinstance(source, str | list):
        return SourceView(everything=False, includes=_patterns(source))
    if isinstance(source, Mapping):
        includes = _patterns(source.get("includes", source.get("include")))
        excludes = _patterns(source.get("excludes", source.get("exclude")))
        if not includes and not excludes:
            return SourceView()
        return SourceView(everything=False, includes=includes, excludes=excludes)
    return SourceView()


def fetch_source(view: SourceView, needed: Sequence[str]) -> Any:
    """The ``_source`` to ask the engine for: the client's view widened by ``needed`` (the
    scored fields; empty means the whole source is scored)."""
    if view.everything:
        return None  # leave the body's own setting: it already returns everything
    if not needed or (not view.nothing and not view.includes):
        return True
    includes = list(dict.fromkeys([*([] if view.nothing else view.includes), *needed]))
    return {"includes": includes}


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in patterns)


def _may_lead_to(path: str, patterns: Sequence[str]) -> bool:
    """Could a descendant of ``path`` match one of ``patterns``?"""
    depth = path.count(".") + 1
    for pattern in patterns:
        head = ".".join(pattern.split(".")[:depth])
        if fnmatch.fnmatchcase(path, head) or "*" in head:
            return True
    return False


def _walk(value: Any, path: str, inside: bool, view: SourceView) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if _matches(child_path, view.excludes):
                continue
            if inside or _matches(child_path, view.includes):
                out[key] = _walk(child, child_path, True, view)
            elif isinstance(child, Mapping | list) and _may_lead_to(child_path, view.includes):
                kept = _walk(child, child_path, False, view)
                if kept:
                    out[key] = kept
        return out
    if isinstance(value, list):
        if inside:
            return [_walk(item, path, True, view) for item in value]
        kept_items = [
            _walk(item, path, False, view) for item in value if isinstance(item, Mapping | list)
        ]
        return [item for item in kept_items if item]
    return value


def filter_source(source: Mapping[str, Any], view: SourceView) -> dict[str, Any]:
    """``source`` as the client's view shows it."""
    result: dict[str, Any] = _walk(source, "", not view.includes, view)
    return result


def restore_view(hit: MutableMapping[str, Any], view: SourceView) -> None:
    """Give ``hit`` back the ``_source`` the client asked for."""
    if view.everything or "_source" not in hit:
        return
    if view.nothing:
        del hit["_source"]
        return
    hit["_source"] = filter_source(hit["_source"], view)
