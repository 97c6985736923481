"""Our video reader as qwen-vl-utils' backend: decodes only the frames it samples.

qwen-vl-utils 0.0.14 picks a backend from ``VIDEO_READER_BACKENDS`` (torchvision here) and, on
any exception of that backend, calls ``VIDEO_READER_BACKENDS["torchvision"]``, which decodes
every frame. ``install`` therefore points every entry of that dict to ``read_video``. It returns
what the stock torchvision backend returns, frame for frame (docs/decisions/0007):

- the frames at ``torch.linspace(0, total - 1, smart_nframes(...)).round()`` of the stream's
  frames in presentation order (distinct pts ≥ 0), as a TCHW uint8 tensor made the way
  torchvision makes it (``to_rgb().to_ndarray()``, stacked, permuted);
- ``video_metadata`` with the same keys: ``fps`` (the stream's average rate), ``frames_indices``
  (the LongTensor above), ``total_num_frames``, ``video_backend`` (``"pyav"``: the only value that
  differs), and ``sample_fps = nframes / total * fps``.

Limits (frame count, duration, decoded bytes) and the deadline come from the thread's
``MediaJob`` (``workers.media.current_job``); outside a job, the limits set by ``configure``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from qwen_vl_utils import vision_process

from workers import video
from workers.media import MediaError, MediaLimits, current_job

Reader = Callable[[dict[str, Any]], tuple[torch.Tensor, dict[str, Any], float]]

STOCK_READERS: dict[str, Reader] = dict(vision_process.VIDEO_READER_BACKENDS)
"""qwen-vl-utils' own backends, kept for the parity tests (never used to score)."""

_limits = MediaLimits()
_failed = threading.local()


def configure(limits: MediaLimits) -> None:
    """The limits the reader enforces (the worker's ``MediaLimits``)."""
    global _limits
    _limits = limits


def read_video(ele: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any], float]:
    """A ``VIDEO_READER_BACKENDS`` entry: ``ele`` is qwen-vl-utils' video content part."""
    # fetch_video calls the torchvision entry again after any failure: answer that second call
    # with the same error instead of reading the file twice.
    last = getattr(_failed, "last", None)
    if last is not None and last[0] is ele:
        _failed.last = None
        raise last[1]
    try:
        return _read(ele)
    except Exception as exc:
        _failed.last = (ele, exc)
        raise


def _read(ele: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any], float]:
    if ele.get("video_start") is not None or ele.get("video_end") is not None:
        raise MediaError("video_start / video_end are not supported")
    path = str(ele["video"]).removeprefix("file://")
    what = path.rsplit("/", 1)[-1]
    job = current_job()
    limits = job.limits or _limits
    with video.open_container(path, what) as container:
        info = video.info_of(container, what)
        table = video.scan(container, limits, job, what)
    if info.fps is None:
        raise MediaError(f"video {what} has no frame rate; it cannot be sampled")
    total = table.total
    # qwen-vl-utils' own choice, with its own arithmetic (smart_nframes raises below 2 frames).
    nframes = vision_process.smart_nframes(ele, total_frames=total, video_fps=info.fps)
    idx = torch.linspace(0, total - 1, nframes).round().long()
    decoded = nframes * info.width * info.height * 3
    if decoded > limits.max_video_decoded_bytes:
        raise MediaError(
            f"video {what} sampled to {nframes} frames of {info.width}x{info.height} would take "
            f"{decoded} bytes decoded, over the worker.media_max_video_decoded_bytes limit "
            f"({limits.max_video_decoded_bytes})"
        )
    frames = video.decode(path, table, idx.tolist(), job, what, (info.width, info.height))
    tensor = torch.as_tensor(np.stack(frames)).permute(0, 3, 1, 2)
    metadata = {
        "fps": info.fps,
        "frames_indices": idx,
        "total_num_frames": total,
        "video_backend": "pyav",
    }
    sample_fps = nframes / max(total, 1e-6) * info.fps
    return tensor, metadata, sample_fps


def install() -> None:
    """Make every qwen-vl-utils backend entry (the fallback included) our reader."""
    backends = vision_process.VIDEO_READER_BACKENDS
    for name in list(backends):
        backends[name] = read_video


def installed() -> bool:
    backends = vision_process.VIDEO_READER_BACKENDS
    return bool(backends) and all(reader is read_video for reader in backends.values())


__all__ = ["STOCK_READERS", "configure", "install", "installed", "read_video"]
