"""Rendering a rated request's search template when the engine cannot render it for us.

The sidecar asks the engine first (``POST _render/template``, with the caller's credentials): the
engine's own mustache gives exactly the search the engine would run. Clusters without the
lang-mustache module (the Elasticsearch integ-test distribution) get this rendering instead:
mustache (pystache) with the engines' JSON escaping of ``{{var}}`` (``{{{var}}}`` unescaped)
and two of their functions, ``{{#toJson}}path{{/toJson}}`` (the value as JSON) and
``{{#join}}path{{/join}}`` / ``{{#join delimiter='x'}}path{{/join delimiter='x'}}`` (a list
joined, by ``,`` unless said otherwise); ``{{#url}}`` is not supported here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pystache

_TO_JSON = re.compile(r"\{\{#toJson\}\}\s*([\w.]+)\s*\{\{/toJson\}\}")
_JOIN = re.compile(
    r"\{\{#join(?:\s+delimiter='([^']*)')?\}\}\s*([\w.]+)\s*\{\{/join(?:\s+delimiter='[^']*')?\}\}"
)


class TemplateError(ValueError):
    """The template cannot be rendered into a search body."""


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _lookup(params: dict[str, Any], path: str) -> Any:
    node: Any = params
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def source_text(script: dict[str, Any]) -> str:
    """The template's source as text (a JSON object source is written out)."""
    source = script.get("source", script.get("inline"))
    if isinstance(source, str):
        return source
    if source is None:
        raise TemplateError("the template has no source")
    return json.dumps(source, ensure_ascii=False, separators=(",", ":"))


def render(script: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The search body ``script`` gives with ``params``. Raises TemplateError."""
    values = {**(script.get("params") or {}), **params}
    text = source_text(script)
    text = _TO_JSON.sub(lambda m: json.dumps(_lookup(values, m.group(1))), text)

    def joined(match: re.Match[str]) -> str:
        items = _lookup(values, match.group(2))
        delimiter = match.group(1) if match.group(1) is not None else ","
        listed = items if isinstance(items, list) else [] if items is None else [items]
        return delimiter.join(str(item) for item in listed)

    text = _JOIN.sub(joined, text)
    renderer = pystache.Renderer(escape=_json_escape, missing_tags="ignore")
    rendered = str(renderer.render(text, values))
    try:
        body = json.loads(rendered)
    except ValueError as exc:
        raise TemplateError(f"the rendered template is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise TemplateError("the rendered template is not a JSON object")
    return body


__all__ = ["TemplateError", "render", "source_text"]
