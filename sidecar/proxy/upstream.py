"""The cluster behind the sidecar: one keep-alive connection pool per node, round-robin, and
a retry on another node when a connection cannot be made for an idempotent request."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class UpstreamOptions:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    connections_per_node: int = 128
    ca_file: str | None = None
    verify_tls: bool = True
    retries: int = 2


class UpstreamUnavailable(RuntimeError):
    """No node of the cluster could be reached."""


class Upstream:
    """Nodes of one cluster. Sessions are created inside the running loop, on first use."""

    def __init__(self, urls: list[str], options: UpstreamOptions | None = None) -> None:
        if not urls:
            raise ValueError("at least one upstream URL is needed")
        self.urls = [url.rstrip("/") for url in urls]
        self.options = options or UpstreamOptions()
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._next = itertools.cycle(range(len(self.urls)))

    def _session(self, url: str) -> aiohttp.ClientSession:
        session = self._sessions.get(url)
        if session is None:
            tls: ssl.SSLContext | bool = False
            if url.startswith("https://"):
                tls = ssl.create_default_context(cafile=self.options.ca_file)
                if not self.options.verify_tls:
                    tls.check_hostname = False
                    tls.verify_mode = ssl.CERT_NONE
            connector = aiohttp.TCPConnector(limit=self.options.connections_per_node, ssl=tls)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # bodies pass through byte for byte, gzip included
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=self.options.connect_timeout_s,
                    sock_read=self.options.read_timeout_s,
                ),
            )
            self._sessions[url] = session
        return session

    async def request(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> aiohttp.ClientResponse:
        """Send to the next node; on a connection failure of an idempotent request, try the
        following ones. The caller must release the response."""
        attempts = 1 + (self.options.retries if method in IDEMPOTENT else 0)
        last: Exception | None = None
        for _ in range(attempts):
            url = self.urls[next(self._next)]
            try:
                return await self._session(url).request(
                    method,
                    url + path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=False,
                )
            except aiohttp.ClientConnectorError as exc:
                last = exc
        raise UpstreamUnavailable(f"no node of the cluster answered: {last}") from last

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
