"""Turning media references into local objects before the model's preprocessing sees them.

qwen-vl-utils would open paths and fetch URLs itself (with no timeout and no limits), so the
scorers hand it only what this module has already resolved and checked: PIL images, and video
files or frame lists. Every failure is a MediaError whose message is the reason a caller sees.

Before anything is decoded, this module also checks what decoding would cost: image and frame
sizes from their headers, video duration, frame count and frame size from the container's header
(``workers/video.py``), and the bytes the decoded pixels would take, against ``MediaLimits`` and
the job's byte budget (``MediaJob``). The job also carries the deadline that decoding checks
cooperatively (docs/decisions/0007-worker-media-limits.md).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import io
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

# Our per-resolver pixel cap (MediaLimits.max_image_pixels) is checked right after the header is
# read, before any pixel is decoded; PIL's own process-wide check would only warn first.
Image.MAX_IMAGE_PIXELS = None

RemoteFetcher = Callable[[str, str], Path]
"""``fetch(url, kind)`` returns a local file with the URL's bytes; kind is "image" or "video"."""

GiB = 1024**3


class MediaError(ValueError):
    """A document's media cannot be used; the message says why."""


class MediaDeadline(MediaError):
    """The job's deadline passed while its media were being fetched or decoded."""


@dataclass(frozen=True)
class MediaLimits:
    """What a worker accepts before it decodes a single pixel. Every limit is checked on headers
    (image header, container header, packet timestamps), so a refused file costs a header read.
    The settings ``worker.media_*`` (sidecar/settings.py) set them."""

    max_image_bytes: int = 20 * 1024 * 1024
    """Largest image file accepted. Example: 20 MiB."""
    max_image_pixels: int = 40_000_000
    """Largest decoded image (width × height); larger ones are refused as decompression bombs."""
    max_video_bytes: int = 200 * 1024 * 1024
    max_frames_in_list: int = 1024
    """Longest frame list accepted before sampling (sampling keeps at most 64, and only those
    are decoded)."""
    max_video_duration_s: float = 3 * 3600.0
    """Longest video, from the container header and again from the packets' timestamps.
    Example: 10800 (3 h) accepts a feature film; sampling keeps at most 64 frames of it."""
    max_video_frames: int = 300_000
    """Most frames (packets) in a video stream, counted without decoding. Example: 300000 is
    2 h 46 min at 30 fps; it bounds the packet scan, and a GIF (no keyframes) is decoded frame
    by frame, so it also bounds that decode."""
    max_video_frame_pixels: int = 3840 * 2160
    """Largest video frame (width × height). Example: 8294400 = 4K UHD; 8K is refused."""
    max_video_decoded_bytes: int = 2 * GiB
    """Bytes of one video's sampled frames as decoded (frames × width × height × 3). Example:
    64 frames of 4K take 1.59 GB and pass; 64 frame-list frames of 40 MP would take 7.7 GB."""
    max_job_media_bytes: int = 8 * GiB
    """Bytes one job's media may take once decoded: each image's or video's decoded pixels
    (uint8) plus the float32 model input qwen-vl-utils makes of them (its resize target × 3 × 4),
    summed over the query (once per document) and the documents. Example: a 1080p video sampled
    to 64 frames counts 398 MB + 604 MB, so a job holds about 8 of them; 200 documents with one
    1000×1000 image each count 200 × (3 MB + 12 MB) = 3 GB."""


@dataclass(frozen=True)
class VisionLimits:
    """The official Qwen3-VL reranker's media limits (pixels are counted per frame or image)."""

    min_pixels: int = 4 * 32 * 32
    max_pixels: int = 1800 * 32 * 32
    fps: float = 1.0
    max_frames: int = 64
    total_pixels: int = 10 * 768 * 32 * 32


# --- the job: deadline and byte budget, visible to the thread preparing a document ----------


@dataclass(eq=False)
class MediaJob:
    """What one scoring job may still spend on media, and until when.

    The batcher makes one per job and activates it around the query's resolution and each
    document's preparation (``with job.active(): ...``); the resolver, the fetcher and the video
    reader find it with ``current_job()`` and stop cooperatively at the deadline."""

    deadline: float | None = None
    budget_bytes: int | None = None
    """None: no budget (in-process use without limits)."""
    limits: MediaLimits | None = None
    """The limits of the model's resolver; the video reader enforces them during decoding."""
    spent_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_limits(cls, limits: MediaLimits | None, deadline: float | None) -> MediaJob:
        budget = limits.max_job_media_bytes if limits is not None else None
        return cls(deadline=deadline, budget_bytes=budget, limits=limits)

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def check_deadline(self, doing: str) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            raise MediaDeadline(f"deadline passed while {doing}")

    def reserve(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` (times the active copies) against the budget, or refuse."""
        nbytes *= _active_copies()
        with self._lock:
            budget = self.budget_bytes
            if budget is not None and self.spent_bytes + nbytes > budget:
                left = max(0, budget - self.spent_bytes)
                raise MediaError(
                    f"{what} would take {nbytes} bytes decoded, over the job's media limit "
                    f"(worker.media_max_job_bytes = {budget}; {left} left)"
                )
            self.spent_bytes += nbytes

    @contextlib.contextmanager
    def active(self, copies: int = 1) -> Iterator[MediaJob]:
        """Make this the current job of the calling thread. ``copies``: how many times each
        reserved byte counts (the query's media are prepared once per document)."""
        previous = getattr(_local, "job", None), getattr(_local, "copies", 1)
        _local.job, _local.copies = self, max(1, copies)
        try:
            yield self
        finally:
            _local.job, _local.copies = previous


_local = threading.local()
_NO_JOB = MediaJob()


def current_job() -> MediaJob:
    """The job active on this thread; outside any job, one with no deadline and no budget."""
    job = getattr(_local, "job", None)
    return job if isinstance(job, MediaJob) else _NO_JOB


def _active_copies() -> int:
    copies = getattr(_local, "copies", 1)
    return copies if isinstance(copies, int) else 1


# --- the official Qwen3-VL reranker's reading of `image` and `video` -----------------------

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tiff", ".svg"})


def is_image_path(ref: str) -> bool:
    """The official ``is_image_path``: an image extension, the query stripped from http(s) URLs.
    We also take ``data:image/...`` URIs as images (the official code cannot read them as a
    video either)."""
    if ref.startswith("data:image"):
        return True
    path = urlparse(ref).path if ref.startswith(("http://", "https://")) else ref
    return os.path.splitext(path.lower())[1] in IMAGE_SUFFIXES


def is_one_video(value: Any) -> bool:
    """The official ``is_video_input``: a string, or a list whose first element is a PIL image
    or an image path (a frame sequence)."""
    if isinstance(value, str):
        return True
    if isinstance(value, list | tuple) and value:
        first = value[0]
        if isinstance(first, Image.Image):
            return True
        if isinstance(first, str):
            return is_image_path(first)
    return False


@dataclass(frozen=True)
class VideoList:
    """Resolved videos in one unambiguous form: each a local video file path (str) or a list
    of decoded frames. After resolution a URL is a cache path with no extension and frames are
    PIL images, so the raw rules (``split_videos``) no longer apply; this marks the decision as
    made, once, on the raw references."""

    items: tuple[str | list[Any], ...] = ()

    def __iter__(self) -> Iterator[str | list[Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def split_videos(value: Any) -> list[Any]:
    """A side's ``video`` as a list of videos, each a str (file or URL) or a list (frames), by
    the official rules (``format_mm_content``): one video when ``is_one_video``; otherwise a
    list of videos; an empty list is no video."""
    if value is None:
        return []
    if isinstance(value, VideoList):
        return list(value.items)
    if is_one_video(value):
        return [list(value) if isinstance(value, tuple) else value]
    if isinstance(value, list | tuple):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    raise MediaError(f"video must be a URL, path, frame list or list of those, not {_kind(value)}")


def sample_frames(frames: Sequence[Any], max_frames: int) -> list[Any]:
    """The official ``sample_frames``: at most ``max_frames`` spread evenly, numpy's rounding."""
    if len(frames) <= max_frames:
        return list(frames)
    return [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames, dtype=int).tolist()]


# --- what decoded pixels cost (the arithmetic of qwen-vl-utils 0.0.14, torch-free) ---------

_FACTOR = 32  # patch 16 × spatial merge 2
_FRAME_FACTOR = 2
_VIDEO_MIN_PIXELS = 128 * _FACTOR * _FACTOR
_VIDEO_MAX_PIXELS = 768 * _FACTOR * _FACTOR
_DEFAULT_TOTAL_PIXELS = int(float(os.environ.get("MODEL_SEQ_LEN", 128000))) * _FACTOR**2 * 0.9
_FLOAT32_RGB = 3 * 4


def _resized_pixels(height: int, width: int, min_pixels: float, max_pixels: float) -> int:
    """qwen-vl-utils' ``smart_resize`` (factor 32), as a pixel count."""
    if min(height, width) <= 0:
        return 0
    h_bar = max(_FACTOR, round(height / _FACTOR) * _FACTOR)
    w_bar = max(_FACTOR, round(width / _FACTOR) * _FACTOR)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / _FACTOR) * _FACTOR
        w_bar = math.floor(width / beta / _FACTOR) * _FACTOR
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / _FACTOR) * _FACTOR
        w_bar = math.ceil(width * beta / _FACTOR) * _FACTOR
    return h_bar * w_bar


def _video_frame_pixels(height: int, width: int, frames: int, total_pixels: float) -> int:
    max_pixels = max(
        min(_VIDEO_MAX_PIXELS, total_pixels / max(frames, 1) * _FRAME_FACTOR),
        int(_VIDEO_MIN_PIXELS * 1.05),
    )
    return _resized_pixels(height, width, _VIDEO_MIN_PIXELS, max_pixels)


def sampled_frame_count(total: int | None, fps: float, vision: VisionLimits) -> int:
    """How many frames qwen-vl-utils' ``smart_nframes`` keeps of a file video (fps sampling,
    at most ``max_frames``); with an unknown total, the most it could keep."""
    max_frames = math.floor(vision.max_frames / _FRAME_FACTOR) * _FRAME_FACTOR
    if not total:
        return max_frames
    wanted = total / fps * vision.fps if fps > 0 else max_frames
    wanted = min(min(max(wanted, 4), max_frames), total)
    return max(_FRAME_FACTOR, math.floor(wanted / _FRAME_FACTOR) * _FRAME_FACTOR)


# --- the resolver ---------------------------------------------------------------------------


@dataclass
class MediaResolver:
    """Resolves the image and video references of one document or query."""

    limits: MediaLimits = field(default_factory=MediaLimits)
    local_roots: Sequence[Path] = ()
    """Directories local paths may point into; a path outside all of them is refused."""
    fetch_remote: RemoteFetcher | None = None
    vision: VisionLimits = field(default_factory=VisionLimits)
    """The model's sampling and pixel limits: frame lists are sampled to ``max_frames`` before
    decoding, and the job budget counts the model input these limits produce."""

    def image(self, ref: Any) -> Image.Image:
        if isinstance(ref, Image.Image):
            self._check_pixels(ref.size)
            self._reserve_image(ref.size, "image")
            return ref
        what, data = self._image_bytes(ref)
        return self._decode_image(data, what, lambda size: self._reserve_image(size, what))

    def video(self, ref: Any) -> str | list[Image.Image]:
        """One video: a local video file path, or a list of decoded frames (sampled first)."""
        if isinstance(ref, list | tuple):
            return self._frames(list(ref))
        if not isinstance(ref, str):
            raise MediaError(f"video must be a URL, path or frame list, not {_kind(ref)}")
        return self._video_file(ref)

    def videos(self, value: Any) -> VideoList:
        """A side's ``video`` (one video or several, official rules) in the canonical form."""
        if isinstance(value, VideoList):
            return value
        return VideoList(tuple(self.video(item) for item in split_videos(value)))

    def side(self, side: dict[str, Any]) -> dict[str, Any]:
        """A query or document dict with its media resolved (texts untouched)."""
        resolved = dict(side)
        if side.get("image") is not None:
            images = side["image"]
            resolved["image"] = (
                [self.image(i) for i in images] if isinstance(images, list) else self.image(images)
            )
        if side.get("video") is not None:
            resolved["video"] = self.videos(side["video"])
        return resolved

    # videos

    def _frames(self, refs: list[Any]) -> list[Image.Image]:
        if len(refs) > self.limits.max_frames_in_list:
            raise MediaError(
                f"video frame list has {len(refs)} frames, over the "
                f"{self.limits.max_frames_in_list} limit"
            )
        # Sampled as the official code does, before anything is fetched or decoded.
        sampled = sample_frames(refs, self.vision.max_frames)
        decoded = 0
        sizes: list[tuple[int, int]] = []

        def on_header(size: tuple[int, int], what: str) -> None:
            nonlocal decoded
            width, height = size
            decoded += width * height * 3
            if decoded > self.limits.max_video_decoded_bytes:
                raise MediaError(
                    f"video frame list would take more than {decoded} bytes decoded, over the "
                    f"worker.media_max_video_decoded_bytes limit "
                    f"({self.limits.max_video_decoded_bytes})"
                )
            current_job().reserve(width * height * 3, what)
            sizes.append(size)

        frames: list[Image.Image] = []
        for position, ref in enumerate(sampled):
            current_job().check_deadline(f"reading frame {position} of a video frame list")
            if isinstance(ref, Image.Image):
                self._check_pixels(ref.size)
                on_header(ref.size, "video frame")
                frames.append(ref)
                continue
            what, data = self._image_bytes(ref, kind="video frame")
            frames.append(self._decode_image(data, what, functools.partial(on_header, what=what)))
        if sizes:
            width, height = sizes[0]
            count = math.ceil(len(frames) / _FRAME_FACTOR) * _FRAME_FACTOR
            pixels = _video_frame_pixels(height, width, count, self.vision.total_pixels)
            current_job().reserve(count * pixels * _FLOAT32_RGB, "video frame list")
        return frames

    def _video_file(self, ref: str) -> str:
        from workers.video import probe  # PyAV only; imported here to keep this module light

        path = self._local_or_remote(ref, "video")
        size = path.stat().st_size
        if size > self.limits.max_video_bytes:
            raise MediaError(
                f"video {_short(ref)} is {size} bytes, over the {self.limits.max_video_bytes} limit"
            )
        info = probe(path, _short(ref))
        what = f"video {_short(ref)}"
        limits = self.limits
        pixels = info.width * info.height
        if pixels > limits.max_video_frame_pixels:
            raise MediaError(
                f"{what} has {info.width}x{info.height} frames, over the "
                f"worker.media_max_video_frame_pixels limit ({limits.max_video_frame_pixels})"
            )
        if info.duration_s is not None and info.duration_s > limits.max_video_duration_s:
            raise MediaError(
                f"{what} is {info.duration_s:.1f} s long, over the "
                f"worker.media_max_video_duration_s limit ({limits.max_video_duration_s:g})"
            )
        if info.frames is not None and info.frames > limits.max_video_frames:
            raise MediaError(
                f"{what} has {info.frames} frames, over the worker.media_max_video_frames "
                f"limit ({limits.max_video_frames})"
            )
        if not info.fps:
            raise MediaError(f"{what} has no frame rate; it cannot be sampled")
        total = info.frames or (
            round(info.duration_s * info.fps) if info.duration_s is not None else None
        )
        count = sampled_frame_count(total, info.fps, self.vision)
        decoded = count * pixels * 3
        if decoded > limits.max_video_decoded_bytes:
            raise MediaError(
                f"{what} sampled to {count} frames of {info.width}x{info.height} would take "
                f"{decoded} bytes decoded, over the worker.media_max_video_decoded_bytes limit "
                f"({limits.max_video_decoded_bytes})"
            )
        model_input = count * _video_frame_pixels(
            info.height, info.width, count, _DEFAULT_TOTAL_PIXELS
        )
        current_job().reserve(decoded + model_input * _FLOAT32_RGB, what)
        return str(path)

    # images

    def _image_bytes(self, ref: Any, kind: str = "image") -> tuple[str, bytes]:
        if not isinstance(ref, str):
            raise MediaError(f"{kind} must be a URL, data URI, path or PIL image, not {_kind(ref)}")
        if ref.startswith("data:"):
            return "data URI", _data_uri_bytes(ref)
        path = self._local_or_remote(ref, "image")
        size = path.stat().st_size
        if size > self.limits.max_image_bytes:
            raise MediaError(
                f"{kind} {_short(ref)} is {size} bytes, over the "
                f"{self.limits.max_image_bytes} limit"
            )
        return _short(ref), path.read_bytes()

    def _reserve_image(self, size: tuple[int, int], what: str) -> None:
        width, height = size
        pixels = _resized_pixels(height, width, self.vision.min_pixels, self.vision.max_pixels)
        current_job().reserve(width * height * 3 + pixels * _FLOAT32_RGB, f"image {what}")

    def _local_or_remote(self, ref: str, kind: str) -> Path:
        if ref.startswith(("http://", "https://")):
            if self.fetch_remote is None:
                raise MediaError(
                    f"{kind} URL {_short(ref)} cannot be fetched: no fetcher configured"
                )
            current_job().check_deadline(f"waiting to fetch {kind} {_short(ref)}")
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

    def _decode_image(
        self, data: bytes, what: str, on_header: Callable[[tuple[int, int]], None]
    ) -> Image.Image:
        if len(data) > self.limits.max_image_bytes:
            raise MediaError(
                f"image {what} is {len(data)} bytes, over the {self.limits.max_image_bytes} limit"
            )
        try:
            with Image.open(io.BytesIO(data)) as probe:
                # The header gives the size before any pixel is decoded: refuse bombs here.
                self._check_pixels(probe.size)
                on_header(probe.size)
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


def _kind(value: Any) -> str:
    return type(value).__name__


def _short(ref: str, limit: int = 120) -> str:
    return ref if len(ref) <= limit else ref[: limit - 3] + "..."
