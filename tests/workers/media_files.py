"""Small media files made on the fly for scoring tests (PyAV and PIL, all in well under a second
each, the hostile ones included)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def mp4(path: Path, frames: int = 12, size: tuple[int, int] = (128, 96), fps: int = 4) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), (i * 20) % 256, dtype=np.uint8)
            pixels[:, : size[0] // 2, 0] = 255 - (i * 20) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _pattern(i: int, size: tuple[int, int]) -> np.ndarray:
    """A frame that differs from its neighbours, so that a wrong frame shows."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = (i * 7) % 256
    pixels[:, : (i % width) + 1, 1] = 200
    pixels[(i * 3) % height, :, 2] = 255
    return pixels


def video(
    path: Path,
    codec: str,
    frames: int,
    size: tuple[int, int],
    fps: int | Fraction,
    *,
    container_format: str | None = None,
    pix_fmt: str = "yuv420p",
    b_frames: int | None = None,
    options: Mapping[str, str] | None = None,
) -> Path:
    """A video of ``frames`` distinct frames, e.g. H.264 with B-frames and open GOPs:
    ``video(p, "libx264", 300, (48, 32), 25, b_frames=3,
    options={"x264-params": "bframes=3:b-adapt=0:keyint=12:open-gop=1"})``."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_pattern(i, size), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def long_gif(path: Path, frames: int = 10_000, size: tuple[int, int] = (32, 32)) -> Path:
    """A GIF of ``frames`` frames at 10 fps (1000 s): about 260 KB, written in ~0.5 s. The
    stock reader keeps every decoded frame (~300 KB each): ~3 GB for 10 000."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "rgb8"
        base = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        for i in range(frames):
            pixels = base.copy()
            pixels[0, i % size[0]] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def long_mp4(
    path: Path, seconds: float = 3600, size: tuple[int, int] = (32, 32), fps: int = 2
) -> Path:
    """A one-hour MP4 at 2 fps (7200 frames, keyframe every 600): about 140 KB, written in ~1 s.
    The stock reader decodes all 7200 frames (~2 GB) to keep 64."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 600
        base = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        for i in range(int(seconds * fps)):
            pixels = base.copy()
            pixels[:, i % size[0]] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


H264_OPEN_GOP = {"x264-params": "bframes=3:b-adapt=0:keyint=12:min-keyint=12:scenecut=0:open-gop=1"}
"""H.264 with 3 B-frames between references and open GOPs (leading B-frames that reference the
GOP before): decoding from the wrong keyframe shows."""


def parity_videos(root: Path) -> dict[str, Path]:
    """The videos the reader is checked on against the stock reader: odd sizes and rates,
    B-frames, open GOPs, four containers, a GIF. About 1 s to write them all."""
    return {
        "mpeg4-bframes-ntsc.mp4": video(
            root / "mpeg4-bframes-ntsc.mp4",
            "mpeg4",
            90,
            (62, 46),
            Fraction(30000, 1001),
            b_frames=2,
        ),
        "h264-open-gop.mp4": video(
            root / "h264-open-gop.mp4",
            "libx264",
            360,
            (48, 32),
            25,
            b_frames=3,
            options=H264_OPEN_GOP,
        ),
        "h264-bframes.mkv": video(
            root / "h264-bframes.mkv",
            "libx264",
            300,
            (48, 32),
            24,
            b_frames=2,
            options={"x264-params": "bframes=2:keyint=10:scenecut=0"},
        ),
        "vp9.webm": video(root / "vp9.webm", "libvpx-vp9", 300, (32, 32), 10, options={"g": "10"}),
        "mpeg4-bframes.avi": video(
            root / "mpeg4-bframes.avi",
            "mpeg4",
            400,
            (48, 32),
            20,
            container_format="avi",
            b_frames=2,
        ),
        "odd-rate.mp4": video(root / "odd-rate.mp4", "mpeg4", 37, (34, 30), 7),
        "anim.gif": video(root / "anim.gif", "gif", 45, (32, 32), 10, pix_fmt="rgb8"),
    }
