"""Turning media references into local objects before the model's preprocessing sees them.

qwen-vl-utils would open paths and fetch URLs itself (with no timeout and no limits), so the
scorers hand it only what this module has already resolved and checked: PIL images, and video
files or frame lists. Every failure is a MediaError whose message is the reason a caller sees.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

# Our per-resolver pixel cap (MediaLimits.max_image_pixels) is checked right after the header is
# read, before any pixel is decoded; PIL's own process-wide check would only warn first.
Image.MAX_IMAGE_PIXELS = None

RemoteFetcher = Callable[[str, str], Path]
"""``fetch(url, kind)`` returns a local file with the URL's bytes; kind is "image" or "video"."""


class MediaError(ValueError):
    """A document's media cannot be used; the message says why."""


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int = 20 * 1024 * 1024
    """Largest image file accepted. Example: 20 MiB."""
    max_image_pixels: int = 40_000_000
    """Largest decoded image (width × height); larger ones are refused as decompression bombs."""
    max_video_bytes: int = 200 * 1024 * 1024
    max_frames_in_list: int = 1024
    """Longest frame list accepted before sampling (sampling keeps at most 64)."""


@dataclass
class MediaResolver:
    """Resolves the image and video references of one document or query."""

    limits: MediaLimits = field(default_factory=MediaLimits)
    local_roots: Sequence[Path] = ()
    """Directories local paths may point into; a path outside all of them is refused."""
    fetch_remote: RemoteFetcher | None = None

    def image(self, ref: Any) -> Image.Image:
        if isinstance(ref, Image.Image):
            self._check_pixels(ref.size)
            return ref
        if not isinstance(ref, str):
            raise MediaError(
                f"image must be a URL, data URI, path or PIL image, not {type(ref).__name__}"
            )
        if ref.startswith("data:"):
            return self._decode_image(_data_uri_bytes(ref), "data URI")
        path = self._local_or_remote(ref, "image")
        size = path.stat().st_size
        if size > self.limits.max_image_bytes:
            raise MediaError(
                f"image {_short(ref)} is {size} bytes, over the {self.limits.max_image_bytes} limit"
            )
        return self._decode_image(path.read_bytes(), _short(ref))

    def video(self, ref: Any) -> str | list[Image.Image]:
        """A local video file path, or a list of decoded frames."""
        if isinstance(ref, list | tuple):
            if len(ref) > self.limits.max_frames_in_list:
                raise MediaError(
                    f"video frame list has {len(ref)} frames, over the "
                    f"{self.limits.max_frames_in_list} limit"
                )
            return [self.image(frame) for frame in ref]
        if not isinstance(ref, str):
            raise MediaError(f"video must be a URL, path or frame list, not {type(ref).__name__}")
        path = self._local_or_remote(ref, "video")
        size = path.stat().st_size
        if size > self.limits.max_video_bytes:
            raise MediaError(
                f"video {_short(ref)} is {size} bytes, over the {self.limits.max_video_bytes} limit"
            )
        return str(path)

    def side(self, side: dict[str, Any]) -> dict[str, Any]:
        """A query or document dict with its media resolved (texts untouched)."""
        resolved = dict(side)
        if side.get("image") is not None:
            images = side["image"]
            resolved["image"] = (
                [self.image(i) for i in images] if isinstance(images, list) else self.image(images)
            )
        if side.get("video") is not None:
            resolved["video"] = self._videos(side["video"])
        return resolved

    def _videos(self, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, list | tuple) for v in value):
            return [self.video(v) for v in value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            # A list of strings is a frame list when they are images, as in the official code.
            if all(_looks_like_image(v) for v in value):
                return self.video(value)
            return [self.video(v) for v in value]
        return self.video(value)

    def _local_or_remote(self, ref: str, kind: str) -> Path:
        if ref.startswith(("http://", "https://")):
            if self.fetch_remote is None:
                raise MediaError(
                    f"{kind} URL {_short(ref)} cannot be fetched: no fetcher configured"
                )
            return self.fetch_remote(ref, kind)
        if "://" in ref and not ref.startswith("file://"):
            raise MediaError(
                f"{kind} {_short(ref)}: only http(s) URLs, data URIs and paths are accepted"
            )
        return self._local_path(ref.removeprefix("file://"), kind)

    def _local_path(self, raw: str, kind: str) -> Path:
        path = Path(raw).expanduser().resolve()
        if not any(path.is_relative_to(Path(root).resolve()) for root in self.local_roots):
            raise MediaError(f"{kind} path {raw} is outside the allowed media directories")
        if not path.is_file():
            raise MediaError(f"{kind} file {raw} does not exist")
        return path

    def _decode_image(self, data: bytes, what: str) -> Image.Image:
        if len(data) > self.limits.max_image_bytes:
            raise MediaError(
                f"image {what} is {len(data)} bytes, over the {self.limits.max_image_bytes} limit"
            )
        try:
            with Image.open(io.BytesIO(data)) as probe:
                # The header gives the size before any pixel is decoded: refuse bombs here.
                self._check_pixels(probe.size)
                probe.load()
                return probe.copy()
        except MediaError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise MediaError(f"image {what} could not be decoded: {exc}") from None

    def _check_pixels(self, size: tuple[int, int]) -> None:
        width, height = size
        if width * height > self.limits.max_image_pixels:
            raise MediaError(
                f"image is {width}x{height} pixels, over the {self.limits.max_image_pixels} limit"
            )


def _data_uri_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not payload or ";base64" not in header:
        raise MediaError("data URI must be base64-encoded (data:<type>;base64,<data>)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"data URI is not valid base64: {exc}") from None


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tiff", ".svg"}


def _looks_like_image(ref: str) -> bool:
    path = ref.split("?", 1)[0].lower()
    return ref.startswith("data:image") or Path(path).suffix in _IMAGE_SUFFIXES


def _short(ref: str, limit: int = 120) -> str:
    return ref if len(ref) <= limit else ref[: limit - 3] + "..."
