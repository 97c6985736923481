"""Fetching media URLs safely: our own async client instead of qwen-vl-utils' unbounded one.

Rules, all enforced here:
- http and https only; at most ``max_redirects`` redirects, each one checked like the first URL.
- The host's addresses are checked after DNS resolution, and the connection goes to the checked
  address (the resolver below is the connector's), so DNS rebinding cannot slip past the check.
  Private, loopback, link-local (cloud metadata included), multicast, reserved and unspecified
  addresses are refused unless an allow-listed network contains them.
- A byte cap (Content-Length first, then counted while streaming), a total time cap, and a
  content-type check (image/* for images, video/* or octet-stream for videos).
- Bodies land in an on-disk cache keyed by the URL's SHA-256, written atomically, and the cache
  stays under ``max_cache_bytes``: a hit refreshes the file's mtime, and when the directory grows
  past the cap the least recently used files are removed down to 90 % of it. Several worker
  processes may share the directory, so a file may vanish at any time: a vanished hit is fetched
  again, a vanished eviction candidate is skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from workers.address_policy import refusal
from workers.media import MediaDeadline, MediaError, current_job

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: dict[str, int] = field(
        default_factory=lambda: {"image": 20 * 1024 * 1024, "video": 200 * 1024 * 1024}
    )
    """Largest body per kind. Example: images 20 MiB, videos 200 MiB."""
    timeout_s: float = 10.0
    """Total time for one fetch, redirects included."""
    max_redirects: int = 3
    allow_networks: tuple[IPNetwork, ...] = ()
    """Networks that may be fetched from although private, e.g. an internal CDN's 10.20.0.0/16."""
    user_agent: str = "rerank-sidecar-media/0.1"


def check_address(host: str, address: str, policy: FetchPolicy) -> None:
    """Raise MediaError unless ``address`` (of ``host``) is public in every form it takes (see
    ``workers.address_policy``) or in an allow-listed network."""
    reason = refusal(ipaddress.ip_address(address.split("%", 1)[0]), policy.allow_networks)
    if reason is not None:
        raise MediaError(
            f"host {host} resolves to {address}, {reason}; media are fetched from public "
            "addresses only"
        )


class _CheckingResolver(AbstractResolver):
    """Resolves with the system resolver, then refuses hosts with forbidden addresses."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._inner = ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"], self._policy)
        return results

    async def close(self) -> None:
        await self._inner.close()


def _content_type_ok(kind: str, content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    if kind == "image":
        return main.startswith("image/")
    return main.startswith("video/") or main in {"application/octet-stream", "application/mp4"}


DEFAULT_CACHE_MAX_BYTES = 2 * 1024**3
EVICT_TO = 0.9
"""Eviction removes the least recently used files until the cache holds 90 % of its cap, so it
runs once per ~10 % of growth rather than on every new file."""
RESCAN_EVERY = 32
"""Files saved between full scans of the directory (other processes write to it too)."""
STALE_PART_S = 600.0
"""A staging file older than this belongs to a fetch that died; eviction removes it."""


class MediaFetcher:
    """Async fetcher with a disk cache. Use ``BlockingMediaFetcher`` from worker threads."""

    def __init__(
        self,
        cache_dir: Path,
        policy: FetchPolicy | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.policy = policy or FetchPolicy()
        self.max_cache_bytes = max_cache_bytes
        self._session: aiohttp.ClientSession | None = None
        self._cache_bytes: int | None = None
        """The directory's size at the last scan plus what this process saved since."""
        self._saved_since_scan = 0
        self._cache_lock = threading.Lock()

    def cache_path(self, url: str) -> Path:
        return self.cache_dir / hashlib.sha256(url.encode()).hexdigest()

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=_CheckingResolver(self.policy), limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self.policy.user_agent},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, kind: str) -> Path:
        cached = self.cache_path(url)
        if self._hit(cached):
            return cached
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                path = await self._fetch_following_redirects(url, kind, cached)
            self._saved(path)
            return path
        except TimeoutError:
            raise MediaError(
                f"{kind} URL {url} took longer than {self.policy.timeout_s:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise MediaError(f"{kind} URL {url} could not be fetched: {exc}") from None

    async def _fetch_following_redirects(self, url: str, kind: str, target: Path) -> Path:
        session = await self._get_session()
        current = url
        for _ in range(self.policy.max_redirects + 1):
            self._check_url(current)
            async with session.get(current, allow_redirects=False) as response:
                if response.status in {301, 302, 303, 307, 308}:
                    location = response.headers.get("Location")
                    if not location:
                        raise MediaError(f"{kind} URL {current} redirects without a Location")
                    current = urljoin(current, location)
                    continue
                if response.status != 200:
                    raise MediaError(f"{kind} URL {current} answered HTTP {response.status}")
                return await self._save(response, kind, target)
        raise MediaError(f"{kind} URL {url} redirected more than {self.policy.max_redirects} times")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"}:
            raise MediaError(f"media URL {url} is not http(s)")
        host = parts.hostname or ""
        if not host:
            raise MediaError(f"media URL {url} has no host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: checked by the resolver when the connection is made
        # aiohttp skips the resolver for literal addresses, so check them here.
        check_address(host, str(literal), self.policy)

    async def _save(self, response: aiohttp.ClientResponse, kind: str, target: Path) -> Path:
        # Disk writes happen on this fetcher's own loop thread (BlockingMediaFetcher), bounded by
        # the byte cap, so they never stall a loop that serves requests.
        limit = self.policy.max_bytes.get(kind, self.policy.max_bytes["image"])
        content_type = response.headers.get("Content-Type", "")
        if not _content_type_ok(kind, content_type):
            raise MediaError(f"{kind} URL {response.url} has content type {content_type or 'none'}")
        declared = response.content_length
        if declared is not None and declared > limit:
            raise MediaError(
                f"{kind} URL {response.url} is {declared} bytes, over the {limit} limit"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(dir=self.cache_dir, prefix=".part-")
        try:
            received = 0
            with os.fdopen(handle, "wb") as out:
                async for chunk in response.content.iter_chunked(64 * 1024):
                    received += len(chunk)
                    if received > limit:
                        raise MediaError(
                            f"{kind} URL {response.url} sent more than the {limit}-byte limit"
                        )
                    out.write(chunk)
            os.replace(staging, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
        return target

    # the cache's size cap

    def _hit(self, cached: Path) -> bool:
        """A cached file, marked as just used; False when absent (or evicted meanwhile)."""
        try:
            _touch(cached)
        except FileNotFoundError:
            return False
        return cached.is_file()

    def _saved(self, path: Path) -> None:
        try:
            _touch(path)
            size = path.stat().st_size
        except FileNotFoundError:
            return
        with self._cache_lock:
            self._saved_since_scan += 1
            if self._cache_bytes is None or self._saved_since_scan >= RESCAN_EVERY:
                self._cache_bytes = self._scan_size()
                self._saved_since_scan = 0
            else:
                self._cache_bytes += size
            if self._cache_bytes > self.max_cache_bytes:
                self._cache_bytes = self.evict(keep=path)

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of the cache's files; files that vanish meanwhile are skipped."""
        entries: list[tuple[float, int, Path]] = []
        try:
            scan = os.scandir(self.cache_dir)
        except FileNotFoundError:
            return entries
        with scan:
            for entry in scan:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.is_file(follow_symlinks=False):
                    entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        return entries

    def _scan_size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used files until the cache holds at most 90 % of its cap;
        returns the size left. ``keep`` (the file just fetched) is never removed, and a staging
        file is removed only once it is stale."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        target = int(self.max_cache_bytes * EVICT_TO)
        now = time.time()
        for mtime, size, path in sorted(entries):
            if total <= target:
                break
            if path == keep:
                continue
            if path.name.startswith(".part-") and now - mtime < STALE_PART_S:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size  # gone, by us or by another process
        return total


def _touch(path: Path) -> None:
    """Set the mtime to now from the fine clock (the kernel's own "now" is coarse, ~4 ms, and
    the eviction order must tell apart uses that close)."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


class BlockingMediaFetcher:
    """Runs a MediaFetcher on its own event-loop thread so scoring threads can call it."""

    def __init__(self, fetcher: MediaFetcher) -> None:
        self._fetcher = fetcher
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="media-fetch", daemon=True
        )
        self._thread.start()

    def __call__(self, url: str, kind: str) -> Path:
        """Fetch ``url``; waits at most the fetch timeout, and never past the deadline of the
        thread's job (``workers.media.current_job``)."""
        job = current_job()
        wait = self._fetcher.policy.timeout_s + 5
        remaining = job.remaining_s()
        if remaining is not None:
            if remaining <= 0:
                raise MediaDeadline(f"deadline passed before {kind} URL {url} was fetched")
            wait = min(wait, remaining)
        future = asyncio.run_coroutine_threadsafe(self._fetcher.fetch(url, kind), self._loop)
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if remaining is not None and wait == remaining:
                raise MediaDeadline(f"deadline passed while fetching {kind} URL {url}") from None
            raise MediaError(f"{kind} URL {url} took longer than {wait:g}s") from None

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._fetcher.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``["10.20.0.0/16", "127.0.0.1"]`` → networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


__all__ = [
    "BlockingMediaFetcher",
    "FetchPolicy",
    "MediaFetcher",
    "check_address",
    "parse_networks",
]
