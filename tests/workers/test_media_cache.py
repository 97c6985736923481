"""The workers' disk cache of fetched media stays under its cap, least recently used first, and
shrugs at files that other worker processes remove."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from sidecar.testbed.app_thread import serve_in_thread as serve_app
from workers import fetch as fetch_module
from workers.fetch import BlockingMediaFetcher, FetchPolicy, MediaFetcher

BODY = 10_000
"""Bytes of every served image (the cache never decodes them)."""
CAP = int(4.5 * BODY)
"""Room for four files; eviction leaves at most 90 % of it: four files (40000 <= 40500)."""
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * BODY, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}.png", image)
    with serve_app(app) as url:
        yield url


def _fetcher(cache: Path) -> BlockingMediaFetcher:
    policy = FetchPolicy(allow_networks=LOOPBACK, timeout_s=5)
    return BlockingMediaFetcher(MediaFetcher(cache, policy, max_cache_bytes=CAP))


def _size(cache: Path) -> int:
    return sum(p.stat().st_size for p in cache.iterdir())


def _names(cache: Path, fetcher: BlockingMediaFetcher, server: str, *names: str) -> set[str]:
    paths = {fetcher._fetcher.cache_path(f"{server}/{n}.png").name: n for n in names}
    return {paths[p.name] for p in cache.iterdir() if p.name in paths}


def test_the_cache_keeps_the_most_recently_used_files_under_its_cap(
    server: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    fetcher = _fetcher(cache)
    try:
        for name in ("a", "b", "c", "d"):
            fetcher(f"{server}/{name}.png", "image")
        assert _size(cache) == 4 * BODY
        fetcher(f"{server}/a.png", "image")  # a hit: a is now the most recently used
        fetcher(f"{server}/e.png", "image")  # 5 files > cap: evict b (the oldest use)
        assert _size(cache) <= CAP * fetch_module.EVICT_TO
        assert _names(cache, fetcher, server, *"abcde") == {"a", "c", "d", "e"}
        for name in "fghij":
            fetcher(f"{server}/{name}.png", "image")
            assert _size(cache) <= CAP
        assert _names(cache, fetcher, server, *"abcdefghij") == {"g", "h", "i", "j"}
    finally:
        fetcher.close()


def test_files_removed_by_another_process_are_fetched_again(server: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetcher = _fetcher(cache)
    try:
        path = fetcher(f"{server}/a.png", "image")
        path.unlink()  # another worker process evicted it
        again = fetcher(f"{server}/a.png", "image")
        assert again == path and again.stat().st_size == BODY
    finally:
        fetcher.close()


def test_processes_sharing_the_directory_keep_it_under_the_cap(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each process rescans the directory every RESCAN_EVERY saves; with 1 the bound is strict.
    monkeypatch.setattr(fetch_module, "RESCAN_EVERY", 1)
    cache = tmp_path / "cache"
    first, second = _fetcher(cache), _fetcher(cache)
    try:
        for i in range(12):
            (first if i % 2 else second)(f"{server}/shared{i}.png", "image")
            assert _size(cache) <= CAP
    finally:
        first.close()
        second.close()


def test_eviction_skips_files_that_vanish_under_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    fetcher = MediaFetcher(cache, max_cache_bytes=CAP)
    for i in range(6):
        (cache / f"f{i}").write_bytes(b"x" * BODY)
        os.utime(cache / f"f{i}", (1000 + i, 1000 + i))
    listing = fetcher._entries()
    (cache / "f0").unlink()  # gone between the listing and the removal
    (cache / "f1").unlink()
    fetcher._entries = lambda: listing  # type: ignore[method-assign]
    left = fetcher.evict(keep=cache / "f5")
    assert left <= CAP * fetch_module.EVICT_TO
    assert sorted(p.name for p in cache.iterdir()) == ["f2", "f3", "f4", "f5"]


def test_stale_staging_files_are_evicted_fresh_ones_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    fetcher = MediaFetcher(cache, max_cache_bytes=CAP)
    for name in (".part-stale", ".part-fresh", "a", "b", "c", "d"):
        (cache / name).write_bytes(b"x" * BODY)
    os.utime(cache / ".part-stale", (1000, 1000))  # a fetch that died long ago
    recent = time.time() - 60  # a fetch in progress, older than the cached files
    os.utime(cache / ".part-fresh", (recent, recent))
    fetcher.evict()
    names = {p.name for p in cache.iterdir()}
    assert ".part-stale" not in names and ".part-fresh" in names and "a" not in names
    assert _size(cache) <= CAP * fetch_module.EVICT_TO
