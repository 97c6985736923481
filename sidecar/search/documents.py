"""A hit's ``_source`` → the document the reranker scores.

Fields are dot paths. A path walks into objects and through arrays of objects (``variants.color``
over a list of variants gives every variant's color), and also finds keys that themselves hold
dots (``{"meta.title": …}``), as the engines do. Every value found counts, in order:
- text: the values of all text fields, one per line;
- image: every value of the image fields; several images are scored as one multi-image document;
- video: every value of the video fields; several are several videos (the official Qwen code's
  reading of a list of video files or URLs; a list of image files would be one video's frames).
No fields configured: the whole ``_source``, one ``path: value`` line per scalar.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sidecar.search.options import Fields
from workers.contract import Document


def values_at(node: Any, path: str) -> list[Any]:
    """Every scalar value at ``path`` in ``node``, arrays flattened."""
    return list(_values(node, path.split(".")))


def _values(node: Any, parts: Sequence[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, parts)
        return
    if not parts:
        if node is not None and not isinstance(node, Mapping):
            yield node
        return
    if isinstance(node, Mapping):
        for take in range(len(parts), 0, -1):
            key = ".".join(parts[:take])
            if key in node:
                yield from _values(node[key], parts[take:])


def _scalar_lines(node: Any, path: str, lines: list[str]) -> None:
    """Append one ``path: value`` line per scalar under ``node`` (arrays keep their path)."""
    if isinstance(node, Mapping):
        for key, child in node.items():
            _scalar_lines(child, f"{path}.{key}" if path else str(key), lines)
    elif isinstance(node, list):
        for item in node:
            _scalar_lines(item, path, lines)
    elif node is not None:
        lines.append(f"{path}: {_text(node)}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _strings(source: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
    return [_text(v) for path in paths for v in values_at(source, path) if _text(v).strip()]


def build_document(
    doc_id: str, source: Mapping[str, Any] | None, fields: Fields
) -> Document | None:
    """The document of one hit, or None when it has nothing to score."""
    source = source or {}
    if fields.empty():
        lines: list[str] = []
        _scalar_lines(source, "", lines)
        return Document(id=doc_id, text="\n".join(lines)) if lines else None
    texts = _strings(source, fields.text)
    images = _strings(source, fields.image)
    videos = _strings(source, fields.video)
    if not (texts or images or videos):
        return None
    # Plain construction: for these few string fields pydantic's validating constructor is
    # cheaper than model_construct (measured: 1.2 vs 2.8 µs per document).
    return Document(
        id=doc_id,
        text="\n".join(texts) if texts else None,
        image=(images[0] if len(images) == 1 else images) if images else None,
        video=(videos[0] if len(videos) == 1 else videos) if videos else None,
    )
