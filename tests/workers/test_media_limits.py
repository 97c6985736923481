"""Media over a limit are refused from their headers, before decoding; frame lists are sampled
before decoding; a job's media stay within its byte budget and stop at its deadline. A refused
document gets null and an error naming the limit; the others are scored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from sidecar.testbed.app_thread import serve_in_thread as serve_app
from tests.workers.media_files import mp4, png
from workers import video
from workers.batcher import Batcher
from workers.fetch import BlockingMediaFetcher, FetchPolicy, MediaFetcher, parse_networks
from workers.media import MediaLimits
from workers.scoring import Scorer

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def media(media_dir: Path, hostile_media: dict[str, Path]) -> Path:
    """Under the session's media root, so that the session's scorer reads them."""
    root = media_dir / "limits"
    root.mkdir(exist_ok=True)
    mp4(root / "clip.mp4")  # 128x96, 12 frames at 4 fps: 3 s
    (root / "hour.mp4").symlink_to(hostile_media["mp4"])  # 32x32, 7200 frames at 2 fps
    (root / "many.gif").symlink_to(hostile_media["gif"])  # 32x32, 10000 frames at 10 fps
    png(root / "red.png", (320, 240), (220, 20, 20))
    for i in range(200):
        png(root / f"frame{i:03}.png", (64, 48), (i, 90, 200 - i))
    return root


@pytest.fixture
def vl(tiny_scorers: dict[str, Scorer]) -> Scorer:
    """The session's tiny VL scorer; ``_limit`` changes its limits for one test."""
    return tiny_scorers["tiny-vl"]


def _limit(scorer: Scorer, monkeypatch: pytest.MonkeyPatch, **limits: Any) -> None:
    monkeypatch.setattr(scorer.model.media, "limits", MediaLimits(**limits))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("file", "limits", "reason"),
    [
        ("hour.mp4", {"max_video_duration_s": 1800}, "3600.0 s long, over the worker.media_max"),
        ("many.gif", {"max_video_frames": 5000}, "10000 frames, over the worker.media_max_video"),
        ("clip.mp4", {"max_video_frame_pixels": 10_000}, "128x96 frames, over the worker.media"),
        ("clip.mp4", {"max_video_decoded_bytes": 100_000}, "media_max_video_decoded_bytes"),
    ],
)
def test_video_over_a_header_limit_is_refused_before_reading_its_packets(
    vl: Scorer,
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
    file: str,
    limits: dict[str, Any],
    reason: str,
) -> None:
    scanned: list[str] = []
    scan = video.scan

    def spying_scan(container: Any, lim: Any, job: Any, what: str) -> Any:
        scanned.append(what)
        return scan(container, lim, job, what)

    monkeypatch.setattr(video, "scan", spying_scan)
    _limit(vl, monkeypatch, **limits)
    docs = [{"text": "a clip"}, {"video": str(media / file)}, {"image": str(media / "red.png")}]
    outcome = vl.score_with_errors({"text": "a clip"}, docs)
    [(index, message)] = outcome.errors
    assert index == 1 and reason in message, message
    assert outcome.scores[0] is not None and outcome.scores[2] is not None
    assert file not in scanned


def test_hostile_videos_within_the_limits_are_scored(vl: Scorer, media: Path) -> None:
    outcome = vl.score_with_errors(
        {"text": "a clip"}, [{"video": str(media / "hour.mp4")}, {"video": str(media / "many.gif")}]
    )
    assert outcome.errors == [] and None not in outcome.scores


def test_frame_lists_are_sampled_before_any_frame_is_decoded(vl: Scorer, media: Path) -> None:
    frames = [media / f"frame{i:03}.png" for i in range(200)]
    sampled = set(np.linspace(0, 199, 64, dtype=int).tolist())
    # Every frame the official sampling skips is unreadable: reading one would fail the document.
    broken = media / "skipped"
    broken.mkdir()
    refs = []
    for i, frame in enumerate(frames):
        if i in sampled:
            refs.append(str(frame))
        else:
            (broken / frame.name).write_bytes(b"not an image")
            refs.append(str(broken / frame.name))
    kept = [str(frames[i]) for i in sorted(sampled)]
    by_list, by_sampled = vl.score({"text": "frames"}, [{"video": refs}, {"video": kept}])
    assert by_list is not None
    assert by_list == pytest.approx(by_sampled, abs=TOLERANCE)


def test_frame_list_decoded_bytes_are_capped(
    vl: Scorer, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 64 frames of 64x48x3 = 9216 bytes each; the 22nd would pass 200000
    _limit(vl, monkeypatch, max_video_decoded_bytes=200_000)
    scorer = vl
    refs = [str(media / f"frame{i:03}.png") for i in range(200)]
    outcome = scorer.score_with_errors({"text": "q"}, [{"video": refs}, {"video": refs[:20]}])
    [(index, message)] = outcome.errors
    assert index == 0 and "media_max_video_decoded_bytes" in message
    assert outcome.scores[1] is not None


def test_the_job_budget_refuses_documents_past_it(
    vl: Scorer, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One 320x240 image: 230400 bytes decoded + 256x320 px of float32 model input (983040).
    image_bytes = 320 * 240 * 3 + 256 * 320 * 3 * 4
    _limit(vl, monkeypatch, max_job_media_bytes=int(image_bytes * 2.5))
    scorer = vl
    red = str(media / "red.png")
    docs = [{"image": red}, {"image": red}, {"image": red}, {"text": "no media"}]
    outcome = scorer.score_with_errors({"text": "red"}, docs)
    [(index, message)] = outcome.errors
    assert index == 2 and "worker.media_max_job_bytes" in message
    assert None not in (outcome.scores[0], outcome.scores[1], outcome.scores[3])
    # The query's media count once per document: three documents make three copies.
    query = scorer.score_with_errors({"image": red}, [{"text": "a"}, {"text": "b"}, {"text": "c"}])
    assert query.scores == [None] * 3
    assert all(m.startswith("query: ") and "media_max_job_bytes" in m for _, m in query.errors)


@pytest.fixture
def slow_server() -> Iterator[str]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=b"", content_type="image/png")

    app = web.Application()
    app.router.add_get("/slow.png", slow)
    with serve_app(app) as url:
        yield url


def test_a_slow_document_stops_at_the_job_deadline(
    vl: Scorer,
    media: Path,
    slow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fetch waits at most until the job's deadline, so the preparing thread is free again
    at the deadline, not after the fetch timeout (30 s here)."""
    fetcher = BlockingMediaFetcher(
        MediaFetcher(
            tmp_path / "cache",
            FetchPolicy(timeout_s=30, allow_networks=parse_networks(["127.0.0.1"])),
        )
    )
    monkeypatch.setattr(vl.model.media, "fetch_remote", fetcher)  # type: ignore[attr-defined]
    batcher = Batcher(vl.model, prepare_threads=1)
    try:
        started = time.monotonic()
        outcome = batcher.score(
            {"text": "red"},
            [{"image": f"{slow_server}/slow.png"}, {"image": str(media / "red.png")}],
            None,
            deadline=time.time() + 1.0,
        )
        assert time.monotonic() - started < 3
        assert outcome.scores[0] is None
        assert "deadline" in dict(outcome.errors)[0]
        # The one preparing thread was released: the next job is scored at once.
        started = time.monotonic()
        again = batcher.score({"text": "red"}, [{"text": "red"}], None, time.time() + 30)
        assert again.scores[0] is not None and time.monotonic() - started < 3
    finally:
        batcher.close()
        fetcher.close()
