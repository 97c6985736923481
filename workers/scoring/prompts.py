"""The Qwen3 rerankers' prompts, exactly as the official code builds them (no torch here).

Qwen3-VL-Reranker: a system message and one user message whose content parts are joined by the
chat template with no separators: ``<Instruct>: …``, ``<Query>:``, the query's videos, images and
texts, ``\\n<Document>:``, the document's videos, images and texts. A side with none of them gets
the text ``NULL``. Qwen3-Reranker (text): fixed prefix and suffix around one formatted body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.media import VisionLimits, sample_frames, split_videos

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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _videos(value: Any) -> list[Any]:
    """The official reading of ``video`` (``format_mm_content`` / ``is_video_input``): one video
    when it is a str, or a list whose first element is a PIL image or an image path (a frame
    sequence); otherwise a list of videos, each a str (file or URL) or a list (frames); an empty
    list is no video. A resolved side carries a ``VideoList`` (the decision already made on the
    raw references) and is taken as it is."""
    return split_videos(value)


def vl_content(side: Mapping[str, Any], prefix: str, limits: VisionLimits) -> list[dict[str, Any]]:
    """The content parts of one side (query or document). Media must already be resolved to
    local objects: PIL images, and video file paths or lists of PIL frames (a ``VideoList``)."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": prefix}]
    texts = _as_list(side.get("text"))
    images = _as_list(side.get("image"))
    videos = _videos(side.get("video"))
    if not texts and not images and not videos:
        parts.append({"type": "text", "text": "NULL"})
        return parts
    for video in videos:
        if isinstance(video, list):
            if not video:  # the official code adds no part for an empty frame sequence
                continue
            parts.append(
                {
                    "type": "video",
                    "video": sample_frames(video, limits.max_frames),
                    "total_pixels": limits.total_pixels,
                }
            )
        elif isinstance(video, str):
            remote_or_file = video.startswith(("file://", "http://", "https://"))
            path = video if remote_or_file else "file://" + video
            parts.append(
                {"type": "video", "video": path, "fps": limits.fps, "max_frames": limits.max_frames}
            )
        else:
            raise TypeError(f"unrecognized video type: {type(video).__name__}")
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


def text_head(query: str, instruction: str | None) -> str:
    """The start of every body of one request, up to the colon after ``<Document>``: its ids
    are the first ids of each pair's body (the pre-tokenizer always splits after that colon,
    since a space follows it)."""
    return text_body(query, "", instruction).removesuffix(" ")


__all__ = [
    "SYSTEM_MESSAGE",
    "TEXT_DEFAULT_INSTRUCTION",
    "TEXT_PREFIX",
    "TEXT_SUFFIX",
    "VL_DEFAULT_INSTRUCTION",
    "VisionLimits",
    "text_body",
    "text_head",
    "vl_content",
    "vl_messages",
]
