"""Small media files made on the fly for scoring tests."""

from __future__ import annotations

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
