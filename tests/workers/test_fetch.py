"""Media URLs are fetched with SSRF protection and limits, against a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from sidecar.testbed.app_thread import serve_in_thread as serve_app
from sidecar.testbed.ports import free_port
from tests.workers.media_files import mp4, png
from workers.fetch import BlockingMediaFetcher, FetchPolicy, MediaFetcher
from workers.media import MediaError, MediaLimits
from workers.scoring import Scorer, load_scorer

Handler = Callable[[web.Request], Awaitable[web.Response]]
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


def _png_bytes(size: tuple[int, int], color: tuple[int, int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real aiohttp server on loopback, serving good and bad media."""
    red = _png_bytes((320, 240), (220, 20, 20))
    clip = mp4(tmp_path_factory.mktemp("served") / "clip.mp4").read_bytes()
    bomb = _png_bytes((12000, 12000), (0, 0, 0), mode="1")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=red, content_type="image/png")

    def body(data: bytes, content_type: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=data, content_type=content_type)

        return handler

    def redirect(location: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handler

    app = web.Application()
    app.router.add_get("/red.png", body(red, "image/png"))
    for i in range(3):
        frame = _png_bytes((128, 96), (i * 40, 90, 200 - i * 30))
        app.router.add_get(f"/frames/{i}.png", body(frame, "image/png"))
    app.router.add_get("/clip.mp4", body(clip, "video/mp4"))
    app.router.add_get("/page", body(b"<html></html>", "text/html"))
    app.router.add_get("/big.png", body(b"\0" * 300_000, "image/png"))
    app.router.add_get("/bomb.png", body(bomb, "image/png"))
    app.router.add_get("/corrupt.png", body(b"nope" * 10, "image/png"))
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/to-red", redirect("/red.png"))
    app.router.add_get("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
    app.router.add_get("/loop", redirect("/loop"))

    with serve_app(app) as url:
        yield url


@pytest.fixture
def fetch(tmp_path: Path) -> Iterator[BlockingMediaFetcher]:
    policy = FetchPolicy(
        max_bytes={"image": 200_000, "video": 200_000}, timeout_s=1.0, allow_networks=LOOPBACK
    )
    fetcher = BlockingMediaFetcher(MediaFetcher(tmp_path / "cache", policy))
    yield fetcher
    fetcher.close()


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_fetches_an_image_and_caches_it(fetch: BlockingMediaFetcher, media_server: str) -> None:
    path = fetch(f"{media_server}/red.png", "image")
    assert _size(path) == (320, 240)
    assert fetch(f"{media_server}/red.png", "image") == path


def test_follows_a_redirect_to_an_allowed_host(
    fetch: BlockingMediaFetcher, media_server: str
) -> None:
    assert _size(fetch(f"{media_server}/to-red", "image")) == (320, 240)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-metadata", "169.254.169.254"),
        ("/loop", "redirected more than 3 times"),
        ("/page", "content type text/html"),
        ("/big.png", "over the 200000 limit"),
        ("/slow.png", "took longer than 1s"),
        ("/missing.png", "HTTP 404"),
    ],
)
def test_refuses_with_a_reason(
    fetch: BlockingMediaFetcher, media_server: str, path: str, reason: str
) -> None:
    with pytest.raises(MediaError, match=reason.replace("(", r"\(")):
        fetch(f"{media_server}{path}", "image")


def test_loopback_is_refused_unless_allow_listed(tmp_path: Path, media_server: str) -> None:
    fetcher = BlockingMediaFetcher(MediaFetcher(tmp_path, FetchPolicy()))
    try:
        with pytest.raises(MediaError, match="public addresses only"):
            fetcher(f"{media_server}/red.png", "image")
        with pytest.raises(MediaError, match="public addresses only"):
            fetcher(f"http://localhost:{media_server.rsplit(':', 1)[1]}/red.png", "image")
    finally:
        fetcher.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/a.png",
        "http://[::1]/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://0.0.0.0/a.png",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of the metadata service
        "http://[64:ff9b::10.0.0.1]/a.png",
        "http://[2002:a9fe:a9fe::1]/a.png",  # 6to4
        "http://[::127.0.0.1]/a.png",  # IPv4-compatible
        "http://[fec0::1]/a.png",  # site-local
        "http://[64:ff9b:1::1]/a.png",  # local-use NAT64
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.png",  # Teredo
    ],
)
def test_private_and_special_addresses_are_refused(url: str, tmp_path: Path) -> None:
    strict = BlockingMediaFetcher(MediaFetcher(tmp_path, FetchPolicy(timeout_s=2.0)))
    try:
        with pytest.raises(MediaError, match="public addresses only"):
            strict(url, "image")
    finally:
        strict.close()


def test_numeric_host_spellings_of_loopback_are_refused(tmp_path: Path) -> None:
    strict = BlockingMediaFetcher(MediaFetcher(tmp_path, FetchPolicy(timeout_s=2.0)))
    try:
        for url in ("http://2130706433/a.png", "http://0x7f000001/a.png", "http://0177.0.0.1/a"):
            with pytest.raises(MediaError, match=r"public addresses only|canonical"):
                strict(url, "image")
    finally:
        strict.close()


def test_non_http_schemes_are_refused(fetch: BlockingMediaFetcher) -> None:
    with pytest.raises(MediaError, match="not http"):
        fetch("file:///etc/passwd", "image")


@pytest.fixture(scope="module")
def vl_with_fetcher(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scorer, Path]]:
    root = tmp_path_factory.mktemp("media")
    png(root / "red.png", (320, 240), (220, 20, 20))
    (root / "corrupt.mp4").write_bytes(b"not a video" * 100)
    policy = FetchPolicy(
        max_bytes={"image": 200_000, "video": 200_000}, timeout_s=2.0, allow_networks=LOOPBACK
    )
    fetcher = BlockingMediaFetcher(MediaFetcher(root / "cache", policy))
    scorer = load_scorer(
        tiny_model_dirs["qwen3-vl"],
        media_roots=[root],
        remote_fetcher=fetcher,
        media_limits=MediaLimits(max_image_pixels=40_000_000),
    )
    yield scorer, root
    fetcher.close()


def test_url_image_scores_like_the_same_local_image(
    vl_with_fetcher: tuple[Scorer, Path], media_server: str
) -> None:
    scorer, root = vl_with_fetcher
    by_url, by_path = scorer.score(
        {"text": "red"}, [{"image": f"{media_server}/red.png"}, {"image": str(root / "red.png")}]
    )
    assert by_url == pytest.approx(by_path, abs=1e-6)


def test_url_video_scores_like_the_same_local_video(
    vl_with_fetcher: tuple[Scorer, Path], media_server: str
) -> None:
    scorer, root = vl_with_fetcher
    local = mp4(root / "clip.mp4")
    by_url, by_path = scorer.score(
        {"text": "a clip"}, [{"video": f"{media_server}/clip.mp4"}, {"video": str(local)}]
    )
    assert by_url is not None
    assert by_url == pytest.approx(by_path, abs=1e-6)


def test_bad_media_documents_fail_alone(
    vl_with_fetcher: tuple[Scorer, Path], media_server: str
) -> None:
    scorer, root = vl_with_fetcher
    closed_port = free_port()
    bad = {
        1: ({"image": f"http://127.0.0.1:{closed_port}/gone.png"}, "could not be fetched"),
        2: ({"image": "http://127.0.0.2/a.png"}, "public addresses only"),
        3: ({"image": f"{media_server}/to-metadata"}, "169.254.169.254"),
        4: ({"image": f"{media_server}/big.png"}, "over the 200000 limit"),
        5: ({"image": f"{media_server}/corrupt.png"}, "could not be decoded"),
        6: ({"video": str(root / "corrupt.mp4")}, "video could not be decoded"),
        7: ({"image": f"{media_server}/bomb.png"}, "12000x12000 pixels"),
    }
    docs = (
        [{"text": "red shoes"}]
        + [doc for doc, _ in bad.values()]
        + [{"image": str(root / "red.png")}]
    )
    outcome = scorer.score_with_errors({"text": "red shoes"}, docs)
    assert outcome.scores[0] is not None and outcome.scores[-1] is not None
    assert outcome.scores[1:-1] == [None] * len(bad)
    reasons = dict(outcome.errors)
    assert sorted(reasons) == sorted(bad)
    for index, (_, reason) in bad.items():
        assert reason in reasons[index], (index, reasons[index])


def test_frames_given_as_urls_score_like_the_same_frames_as_paths(
    vl_with_fetcher: tuple[Scorer, Path], media_server: str
) -> None:
    """A list of image URLs (query string and all) is one frame-list video, as in the official
    code: the extension is read from the URL's path."""
    scorer, root = vl_with_fetcher
    paths = [png(root / f"f{i}.png", (128, 96), (i * 40, 90, 200 - i * 30)) for i in range(3)]
    urls = [f"{media_server}/frames/{i}.png?v=2" for i in range(3)]
    by_url, by_path = scorer.score(
        {"text": "frames"}, [{"video": urls}, {"video": [str(p) for p in paths]}]
    )
    assert by_url is not None
    assert by_url == pytest.approx(by_path, abs=1e-6)
    model = scorer.model
    prepared = model.prepare(model.resolve({"text": "q"}), model.resolve({"video": urls}), None)
    [grid] = prepared.vision["video_grid_thw"].tolist()
    assert grid[0] == 2  # 3 frames padded to 4: one video, not three
