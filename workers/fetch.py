"""Fetching media URLs safely: our own async client instead of qwen-vl-utils' unbounded one.

Rules, all enforced here:
- http and https only; at most ``max_redirects`` redirects, each one checked like the first URL.
- The host's addresses are checked after DNS resolution, and the connection goes to the checked
  address (the resolver below is the connector's), so DNS rebinding cannot slip past the check.
  Private, loopback, link-local (cloud metadata included), multicast, reserved and unspecified
  addresses are refused unless an allow-listed network contains them.
- A byte cap (Content-Length first, then counted while streaming), a total time cap, and a
  content-type check (image/* for images, video/* or octet-stream for videos).
- Bodies land in an on-disk cache keyed by the URL's SHA-256, written atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from workers.media import MediaError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _refused(address: IPAddress, policy: FetchPolicy) -> bool:
    if any(address in network for network in policy.allow_networks):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def check_address(host: str, address: str, policy: FetchPolicy) -> None:
    if _refused(ipaddress.ip_address(address.split("%", 1)[0]), policy):
        raise MediaError(
            f"host {host} resolves to {address}, a private, loopback, link-local or reserved "
            "address; media are fetched from public addresses only"
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


class MediaFetcher:
    """Async fetcher with a disk cache. Use ``BlockingMediaFetcher`` from worker threads."""

    def __init__(self, cache_dir: Path, policy: FetchPolicy | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.policy = policy or FetchPolicy()
        self._session: aiohttp.ClientSession | None = None

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
        if cached.is_file():
            return cached
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self._fetch_following_redirects(url, kind, cached)
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
        future = asyncio.run_coroutine_threadsafe(self._fetcher.fetch(url, kind), self._loop)
        return future.result(timeout=self._fetcher.policy.timeout_s + 5)

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
