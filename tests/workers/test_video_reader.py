"""Our video reader returns what qwen-vl-utils' stock torchvision reader returns (frames pixel for
pixel, metadata, sample fps) while decoding only the sampled frames; scores stay equal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from qwen_vl_utils import vision_process

from tests.workers.media_files import long_gif
from workers import video
from workers.media import MediaDeadline, MediaError, MediaJob, MediaLimits
from workers.scoring import Scorer, video_reader

STOCK = video_reader.STOCK_READERS["torchvision"]


@pytest.fixture(scope="module")
def videos(parity_media: dict[str, Path]) -> dict[str, Path]:
    return parity_media


@pytest.fixture(scope="module")
def hostile(hostile_media: dict[str, Path]) -> dict[str, Path]:
    return hostile_media


def _ele(path: Path, fps: float = 1.0, max_frames: int = 64) -> dict[str, Any]:
    return {"type": "video", "video": f"file://{path}", "fps": fps, "max_frames": max_frames}


def _assert_same(ours: tuple[Any, ...], stock: tuple[Any, ...]) -> None:
    (frames, meta, sample_fps), (stock_frames, stock_meta, stock_sample_fps) = ours, stock
    assert frames.dtype == stock_frames.dtype == torch.uint8
    assert frames.shape == stock_frames.shape
    assert frames.stride() == stock_frames.stride()  # the same TCHW view of stacked HWC frames
    assert torch.equal(frames, stock_frames)
    assert set(meta) == set(stock_meta)
    assert meta["fps"] == stock_meta["fps"]
    assert meta["total_num_frames"] == stock_meta["total_num_frames"]
    assert torch.equal(meta["frames_indices"], stock_meta["frames_indices"])
    assert (meta["video_backend"], stock_meta["video_backend"]) == ("pyav", "torchvision")
    assert sample_fps == stock_sample_fps


def test_every_backend_entry_is_our_reader() -> None:
    # fetch_video falls back to VIDEO_READER_BACKENDS["torchvision"] on any error of the chosen
    # backend: that entry must not be the stock reader either.
    assert video_reader.installed()
    assert set(vision_process.VIDEO_READER_BACKENDS) >= {"torchvision", "decord", "torchcodec"}


@pytest.mark.parametrize("fps", [1.0, 30.0])
@pytest.mark.parametrize(
    "name",
    [
        "mpeg4-bframes-ntsc.mp4",
        "h264-open-gop.mp4",
        "h264-bframes.mkv",
        "vp9.webm",
        "mpeg4-bframes.avi",
        "odd-rate.mp4",
        "anim.gif",
    ],
)
def test_frames_and_metadata_equal_the_stock_reader(
    videos: dict[str, Path], name: str, fps: float
) -> None:
    ele = _ele(videos[name], fps=fps)
    _assert_same(video_reader.read_video(dict(ele)), STOCK(dict(ele)))


@pytest.mark.parametrize("name", ["h264-open-gop.mp4", "h264-bframes.mkv", "mpeg4-bframes.avi"])
def test_frames_equal_when_every_range_is_reached_by_seeking(
    videos: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeks = 0
    seek = video._Demuxer._seek

    def counting_seek(self: video._Demuxer, timestamp: int) -> None:
        nonlocal seeks
        seeks += 1
        seek(self, timestamp)

    monkeypatch.setattr(video, "SEEK_GAP", 0)
    monkeypatch.setattr(video._Demuxer, "_seek", counting_seek)
    ele = _ele(videos[name], fps=1.0)
    _assert_same(video_reader.read_video(dict(ele)), STOCK(dict(ele)))
    assert seeks >= 10


def test_only_the_packets_the_sampled_frames_need_are_decoded(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = 0
    codec_of = video._Demuxer.codec.fget  # type: ignore[attr-defined]

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def flush_buffers(self) -> None:
            self.inner.flush_buffers()

        def decode(self, packet: Any = None) -> Any:
            nonlocal fed
            fed += packet is not None
            return self.inner.decode(packet)

    monkeypatch.setattr(video._Demuxer, "codec", property(lambda self: Counting(codec_of(self))))
    # 360 frames (14.4 s), a keyframe every 12; 4 frames sampled at 0.25 fps (at least 4).
    ele = _ele(videos["h264-open-gop.mp4"], fps=0.25)
    frames, meta, _ = video_reader.read_video(dict(ele))
    assert frames.shape[0] == 4 and meta["total_num_frames"] == 360
    assert 4 <= fed <= 4 * 24
    _assert_same((frames, meta, _), STOCK(dict(ele)))


def test_hostile_videos_are_read_fast_with_the_same_frames(hostile: dict[str, Path]) -> None:
    """A 10 000-frame GIF and a one-hour MP4: the stock reader takes 16-35 s and 2-3 GB for
    them (measured once, docs/decisions/0007); ours keeps 64 frames."""
    for path in hostile.values():
        started = time.perf_counter()
        frames, meta, _ = video_reader.read_video(_ele(path))
        assert time.perf_counter() - started < 5
        assert frames.shape[0] == 64
        assert meta["total_num_frames"] in (10_000, 7_200)


def test_hostile_gif_frames_equal_the_stock_reader_at_a_small_scale(
    tmp_path: Path,
) -> None:
    path = long_gif(tmp_path / "g.gif", frames=400)  # 40 s: 64 frames at 2 fps
    ele = _ele(path, fps=2.0)
    _assert_same(video_reader.read_video(dict(ele)), STOCK(dict(ele)))


def test_scan_refuses_what_the_header_did_not_tell(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # WebM headers carry no frame count: the packet scan counts and refuses, decoding nothing.
    assert video.probe(videos["vp9.webm"]).frames is None
    monkeypatch.setattr(video_reader, "_limits", MediaLimits(max_video_frames=100))
    with pytest.raises(MediaError, match=r"more than 100 frames.*media_max_video_frames"):
        video_reader.read_video(_ele(videos["vp9.webm"]))
    monkeypatch.setattr(video_reader, "_limits", MediaLimits(max_video_duration_s=10.0))
    with pytest.raises(MediaError, match=r"longer than 10 s.*media_max_video_duration_s"):
        video_reader.read_video(_ele(videos["vp9.webm"]))


def test_decoded_bytes_are_checked_before_decoding(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decode(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("decoded although over the limit")

    monkeypatch.setattr(video, "decode", no_decode)
    # 14.4 s sampled at 1 fps: 14 frames of 48x32x3 = 64512 bytes
    monkeypatch.setattr(video_reader, "_limits", MediaLimits(max_video_decoded_bytes=60_000))
    with pytest.raises(MediaError, match="media_max_video_decoded_bytes"):
        video_reader.read_video(_ele(videos["h264-open-gop.mp4"]))


class _ExpiringJob(MediaJob):
    """A job whose deadline passes after ``checks`` checks: where the reader checks shows."""

    def __init__(self, checks: int) -> None:
        super().__init__(deadline=time.time() + 3600)
        self.checks_left = checks
        self.doing: list[str] = []

    def check_deadline(self, doing: str) -> None:
        self.doing.append(doing)
        self.checks_left -= 1
        if self.checks_left < 0:
            raise MediaDeadline(f"deadline passed while {doing}")


@pytest.mark.parametrize(("checks", "where"), [(0, "reading video"), (160, "decoding video")])
def test_reading_stops_at_the_deadline(hostile: dict[str, Path], checks: int, where: str) -> None:
    # The GIF's 10 000 packets are scanned with a check every 64 (156 checks), then decoded
    # sequentially with a check every 8 frames.
    job = _ExpiringJob(checks)
    with job.active(), pytest.raises(MediaDeadline, match=where):
        video_reader.read_video(_ele(hostile["gif"]))
    assert job.doing[-1].startswith(where)


def test_a_past_deadline_fails_the_document_not_the_job(hostile: dict[str, Path]) -> None:
    job = MediaJob(deadline=time.time() - 1)
    with job.active(), pytest.raises(MediaDeadline):
        video_reader.read_video(_ele(hostile["mp4"]))


def test_a_failure_is_not_read_twice_by_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fetch_video retries the "torchvision" entry after any error: the second call re-raises
    # the first error without opening the file again.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    opened = 0
    open_container = video.open_container

    def counting_open(path: Any, what: str) -> Any:
        nonlocal opened
        opened += 1
        return open_container(path, what)

    monkeypatch.setattr(video, "open_container", counting_open)
    with pytest.raises(MediaError, match="video could not be decoded"):
        vision_process.fetch_video(_ele(broken), image_patch_size=16, return_video_metadata=True)
    assert opened == 1


@pytest.fixture(scope="module")
def vl(tiny_scorers: dict[str, Scorer]) -> Scorer:
    return tiny_scorers["tiny-vl"]  # its media root holds the parity videos


def test_scores_equal_the_stock_reader_on_a_short_video(
    vl: Scorer, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [
        {"video": str(videos["clip.mp4"])},
        {"video": str(videos["anim.gif"]), "text": "a clip"},
    ]
    query = {"text": "a short clip"}
    ours = vl.score(query, docs)
    with monkeypatch.context() as patch:
        for name in list(vision_process.VIDEO_READER_BACKENDS):
            patch.setitem(vision_process.VIDEO_READER_BACKENDS, name, STOCK)
        stock = vl.score(query, docs)
    assert video_reader.installed()
    assert None not in ours and None not in stock
    assert max(abs(a - b) for a, b in zip(ours, stock, strict=True)) <= 1e-5  # type: ignore[operator]
