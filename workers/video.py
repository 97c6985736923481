"""Reading only the frames that will be sampled from a video file (PyAV, no torch).

qwen-vl-utils 0.0.14 reads a video with torchvision's ``read_video``, which decodes every frame
(about 300 KB each even at 32x32) before it keeps at most 64: a one-hour, 1 MB MP4 or a GIF of
10 000 frames is enough to exhaust a worker's memory. This module does the same selection
without that cost:

1. ``probe``: the container header only (frame size, frame count, average fps, duration).
2. ``scan``: the video stream's packets, demuxed but never decoded: their timestamps in
   presentation order are the frames torchvision would return (distinct pts ≥ 0), and their
   keyframe flags say where decoding can start. The scan enforces the frame-count and duration
   limits as it goes and checks the job's deadline.
3. ``decode``: for each wanted frame, decoding starts at the last keyframe (in decode order)
   whose pts is not after the frame, so leading B-frames of open GOPs get their references;
   overlapping ranges are merged, far ones are reached with a seek, near ones by skipping
   packets; only the wanted frames are converted to RGB (torchvision's ``to_rgb().to_ndarray()``)
   and kept. A stream without keyframes after its first packet (GIF) is therefore decoded
   sequentially, keeping only the sampled frames.

The frame choice itself (qwen-vl-utils' ``smart_nframes`` and ``torch.linspace``) is made by the
caller, ``workers/scoring/video_reader.py``, so this module stays free of torch.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.error import FFmpegError

from workers.media import MediaError, MediaJob, MediaLimits

if TYPE_CHECKING:
    from av.packet import Packet as _AvPacket
    from av.video.codeccontext import VideoCodecContext
    from av.video.stream import VideoStream

    AvPacket = _AvPacket[VideoStream]

SEEK_GAP = 48
"""Packets to skip by reading rather than seeking: a seek costs about as much as demuxing this
many small packets, and reading keeps the position certain."""
CHECK_EVERY = 64
"""Packets between deadline checks while scanning."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says, before any packet is read."""

    width: int
    height: int
    fps: float | None
    """Average frame rate (what torchvision reports as ``video_fps``)."""
    frames: int | None
    """Frame count from the header; None when the container does not say."""
    duration_s: float | None


@dataclass(frozen=True)
class Packet:
    pts: int
    dts: int | None
    keyframe: bool


@dataclass(frozen=True)
class PacketTable:
    """The video stream's packets in decode order, and its frames in presentation order."""

    time_base: Fraction
    packets: list[Packet]
    frame_pts: list[int]
    """Distinct pts ≥ 0, ascending: torchvision's frames are exactly these."""

    @property
    def total(self) -> int:
        return len(self.frame_pts)


def open_container(path: str | Path, what: str) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"video could not be decoded ({what}: {exc})") from None


def video_stream(container: av.container.InputContainer, what: str) -> VideoStream:
    if not container.streams.video:
        raise MediaError(f"video could not be decoded ({what} has no video stream)")
    return container.streams.video[0]


def info_of(container: av.container.InputContainer, what: str) -> VideoInfo:
    stream = video_stream(container, what)
    fps = float(stream.average_rate) if stream.average_rate else None
    duration: float | None = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    return VideoInfo(
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=fps,
        frames=stream.frames or None,
        duration_s=duration,
    )


def probe(path: str | Path, what: str | None = None) -> VideoInfo:
    """The container header of ``path`` (no packet is decoded)."""
    what = what or str(path)
    with open_container(path, what) as container:
        return info_of(container, what)


def scan(
    container: av.container.InputContainer,
    limits: MediaLimits,
    job: MediaJob,
    what: str,
) -> PacketTable:
    """Demux (never decode) the video stream's packets; refuse over-long streams on the way."""
    stream = video_stream(container, what)
    time_base = stream.time_base or Fraction(1, 1)
    max_ticks = limits.max_video_duration_s / float(time_base)
    packets: list[Packet] = []
    first: int | None = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.pts is None:
                raise MediaError(
                    f"video could not be decoded ({what} has packets without timestamps)"
                )
            packets.append(Packet(packet.pts, packet.dts, bool(packet.is_keyframe)))
            if len(packets) > limits.max_video_frames:
                raise MediaError(
                    f"video {what} has more than {limits.max_video_frames} frames, over the "
                    "worker.media_max_video_frames limit"
                )
            first = packet.pts if first is None else min(first, packet.pts)
            if packet.pts - first > max_ticks:
                raise MediaError(
                    f"video {what} runs longer than {limits.max_video_duration_s:g} s, over the "
                    "worker.media_max_video_duration_s limit"
                )
            if len(packets) % CHECK_EVERY == 0:
                job.check_deadline(f"reading video {what} (packet {len(packets)})")
    except FFmpegError:
        pass  # a damaged tail: like torchvision, use what could be read
    frame_pts = sorted({p.pts for p in packets if p.pts >= 0})
    return PacketTable(time_base, packets, frame_pts)


@dataclass
class _Range:
    start: int
    """Decode-order index of the keyframe decoding starts at."""
    end: int
    """Decode-order index of the last packet that must be fed."""


def _ranges(table: PacketTable, wanted_pts: set[int]) -> list[_Range]:
    packets = table.packets
    index_of = {p.pts: i for i, p in enumerate(packets)}
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    ranges: list[_Range] = []
    for pts in wanted_pts:
        end = index_of[pts]
        # The last keyframe at or before this packet whose pts is not after the frame: a leading
        # B-frame of an open GOP (pts before its keyframe's) starts at the keyframe before.
        position = bisect.bisect_right(keyframes, end) - 1
        while position >= 0 and packets[keyframes[position]].pts > pts:
            position -= 1
        ranges.append(_Range(keyframes[position] if position >= 0 else 0, end))
    ranges.sort(key=lambda r: r.start)
    merged: list[_Range] = []
    for r in ranges:
        if merged and r.start <= merged[-1].end + 1:
            merged[-1].end = max(merged[-1].end, r.end)
        else:
            merged.append(r)
    return merged


class _Demuxer:
    """The packets of a video file's stream with their decode-order index; seeks or skips to
    a packet, and reopens the file when a seek lands after it."""

    def __init__(self, path: str | Path, table: PacketTable, what: str) -> None:
        self.path = path
        self.table = table
        self.what = what
        self.index_of = {p.pts: i for i, p in enumerate(table.packets)}
        self.container: av.container.InputContainer | None = None
        self._iter: Iterator[AvPacket] = iter(())
        self._pending: tuple[int, AvPacket] | None = None
        self.position = 0
        """Decode-order index of the next packet ``next`` returns."""
        self._reopen()

    @property
    def codec(self) -> VideoCodecContext:
        assert self.container is not None
        return video_stream(self.container, self.what).codec_context

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def _reopen(self) -> None:
        self.close()
        self.container = open_container(self.path, self.what)
        self._iter = iter(self.container.demux(video_stream(self.container, self.what)))
        self._pending = None
        self.position = 0

    def _seek(self, timestamp: int) -> None:
        assert self.container is not None
        stream = video_stream(self.container, self.what)
        self.container.seek(timestamp, backward=True, any_frame=False, stream=stream)
        self._iter = iter(self.container.demux(stream))
        self._pending = self._read()
        if self._pending is None:
            raise MediaError(f"video could not be decoded ({self.what}: nothing after a seek)")
        self.position = self._pending[0]

    def _read(self) -> tuple[int, AvPacket] | None:
        for packet in self._iter:
            if packet.size == 0 or packet.pts is None:
                continue
            index = self.index_of.get(packet.pts)
            if index is None:
                raise MediaError(f"video could not be decoded ({self.what}: unexpected packet)")
            return index, packet
        return None

    def go_to(self, start: int) -> None:
        """Position the demuxer so that ``next`` returns packet ``start``."""
        if start < self.position or start - self.position > SEEK_GAP:
            packet = self.table.packets[start]
            try:
                self._seek(packet.dts if packet.dts is not None else packet.pts)
            except (FFmpegError, MediaError):
                self._reopen()
            if self.position > start:  # the seek landed after it: read from the start
                self._reopen()
        while self.position < start:
            if self.next() is None:
                raise MediaError(f"video could not be decoded ({self.what}: ended early)")

    def next(self) -> tuple[int, AvPacket] | None:
        item = self._pending if self._pending is not None else self._read()
        self._pending = None
        if item is not None:
            self.position = item[0] + 1
        return item


def decode(
    path: str | Path,
    table: PacketTable,
    positions: Sequence[int],
    job: MediaJob,
    what: str,
    frame_size: tuple[int, int],
) -> list[np.ndarray]:
    """The frames at ``positions`` (indices into ``table.frame_pts``) as HWC uint8 RGB arrays,
    decoding only from the keyframe each one needs."""
    wanted = {table.frame_pts[i] for i in positions}
    taken: dict[int, np.ndarray] = {}
    width, height = frame_size
    decoded = 0

    def take(frame: av.VideoFrame) -> None:
        nonlocal decoded
        decoded += 1
        if decoded % 8 == 0:
            job.check_deadline(f"decoding video {what}")
        if frame.pts in wanted:
            if (frame.width, frame.height) != (width, height):
                raise MediaError(
                    f"video {what} changes frame size from {width}x{height} to "
                    f"{frame.width}x{frame.height}; it cannot be sampled"
                )
            job.check_deadline(f"decoding video {what}")
            # torchvision's conversion, for pixel-equal frames.
            taken[frame.pts] = frame.to_rgb().to_ndarray()

    demuxer = _Demuxer(path, table, what)
    try:
        for r in _ranges(table, wanted):
            demuxer.go_to(r.start)
            codec = demuxer.codec
            codec.flush_buffers()
            while demuxer.position <= r.end:
                item = demuxer.next()
                if item is None:
                    break
                for frame in codec.decode(item[1]):
                    take(frame)
            for frame in codec.decode(None):  # drain the frames held back for reordering
                take(frame)
    except FFmpegError as exc:
        raise MediaError(f"video could not be decoded ({what}: {exc})") from None
    finally:
        demuxer.close()
    missing = wanted - taken.keys()
    if missing:
        raise MediaError(
            f"video could not be decoded ({what}: {len(missing)} sampled frames did not decode)"
        )
    return [taken[table.frame_pts[i]] for i in positions]
