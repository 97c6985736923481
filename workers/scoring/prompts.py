"""The Qwen3 rerankers' prompts, exactly as the official code builds them (no torch here).

Qwen3-VL-Reranker: a system message and one user message whose content parts are joined by the
chat template with no separators: ``<Instruct>: …``, ``<Query>:``, the query's videos, images and
texts, ``\\n<Document>:``, the document's videos, images and texts. A side with none of them gets
the text ``NULL``. Qwen3-Reranker (text): fixed prefix and suffix around one formatted body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SYSTEM_MESSAGE = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".'
)

VL_DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
TEXT_DEFAULT_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query"
)

TEXT_PREFIX = f"<|im_start|>system\n{SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n"
TEXT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class VisionLimits:
    """The official Qwen3-VL reranker's media limits (pixels are counted per frame or image)."""

    min_pixels: int = 4 * 32 * 32
    max_pixels: int = 1800 * 32 * 32
    fps: float = 1.0
    max_frames: int = 64
    total_pixels: int = 10 * 768 * 32 * 32


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _videos(value: Any) -> list[Any]:
    """One video is a string or a list of frames; a list of those is several videos."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    items = list(value)
    if items and all(isinstance(item, list | tuple) for item in items):
        return items
    return [items]


def _evenly(frames: Sequence[Any], count: int) -> list[Any]:
    """``count`` frames spread evenly over ``frames``, with the official code's own rounding."""
    if len(frames) <= count:
        return list(frames)
    return [frames[i] for i in np.linspace(0, len(frames) - 1, count, dtype=int).tolist()]


def vl_content(side: Mapping[str, Any], prefix: str, limits: VisionLimits) -> list[dict[str, Any]]:
    """The content parts of one side (query or document). Media must already be resolved to
    local objects: PIL images, video file paths, or lists of PIL frames."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": prefix}]
    texts = _as_list(side.get("text"))
    images = _as_list(side.get("image"))
    videos = _videos(side.get("video"))
    if not texts and not images and not videos:
        parts.append({"type": "text", "text": "NULL"})
        return parts
    for video in videos:
        if isinstance(video, list):
            parts.append(
                {
                    "type": "video",
                    "video": _evenly(video, limits.max_frames),
                    "total_pixels": limits.total_pixels,
                }
            )
        else:
            path = video if video.startswith("file://") else "file://" + video
            parts.append(
                {"type": "video", "video": path, "fps": limits.fps, "max_frames": limits.max_frames}
            )
    for image in images:
        parts.append(
            {
                "type": "image",
                "image": image,
                "min_pixels": limits.min_pixels,
                "max_pixels": limits.max_pixels,
            }
        )
    parts.extend({"type": "text", "text": text} for text in texts)
    return parts


def vl_messages(
    query: Mapping[str, Any],
    document: Mapping[str, Any],
    instruction: str | None,
    limits: VisionLimits,
    default_instruction: str = VL_DEFAULT_INSTRUCTION,
) -> list[dict[str, Any]]:
    """The chat messages of one (query, document) pair for Qwen3-VL-Reranker."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "<Instruct>: " + (instruction or default_instruction)}
    ]
    content += vl_content(query, "<Query>:", limits)
    content += vl_content(document, "\n<Document>:", limits)
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_MESSAGE}]},
        {"role": "user", "content": content},
    ]


def text_body(query: str, document: str, instruction: str | None) -> str:
    """The user body of one pair for Qwen3-Reranker (official: the default only for None)."""
    if instruction is None:
        instruction = TEXT_DEFAULT_INSTRUCTION
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
