"""The cluster behind the sidecar: one keep-alive connection pool per node, round-robin, and
a retry on another node when a connection cannot be made for an idempotent request."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from sidecar.settings import UpstreamSettings

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class UpstreamOptions:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    connections_per_node: int = 128
    ca_file: str | None = None
    verify_tls: bool = True
    retries: int = 2

    @classmethod
    def of(
        cls, settings: UpstreamSettings, connections_per_node: int | None = None
    ) -> UpstreamOptions:
        """The options ``upstream:`` sets (a pool size of the caller's own when given)."""
        return cls(
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            connections_per_node=connections_per_node or settings.connections_per_node,
            ca_file=settings.ca_file,
            verify_tls=settings.verify_tls,
            retries=settings.retries,
        )


# After refusing a request it could not parse (a request line over 4 KiB, a header over 8 KiB:
# the engines' defaults), Netty in the engines answers 400 but then ignores whatever else arrives
# on that connection; reused from the pool, it would swallow the next request whole. The answer
# often arrives complete with its headers, and aiohttp pools the connection at once, so the
# choice is made before sending: a request that large goes on a connection used once.
LONG_LINE = 4096
LONG_HEADERS = 8192


def _may_poison(path_qs: str, headers: Mapping[str, str]) -> bool:
    if len(path_qs) > LONG_LINE - 64:
        return True
    sizes = [len(name) + len(value) + 4 for name, value in headers.items()]
    return max(sizes, default=0) > LONG_HEADERS - 64 or sum(sizes) > LONG_HEADERS


class UpstreamUnavailable(RuntimeError):
    """No node of the cluster could be reached, or the node failed before it answered.
    ``timeout``: it did not answer within ``read_timeout_s``."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class Upstream:
    """Nodes of one cluster. Sessions are created inside the running loop, on first use."""

    def __init__(self, urls: list[str], options: UpstreamOptions | None = None) -> None:
        if not urls:
            raise ValueError("at least one upstream URL is needed")
        self.urls = [url.rstrip("/") for url in urls]
        self.options = options or UpstreamOptions()
        self._sessions: dict[tuple[str, bool], aiohttp.ClientSession] = {}
        self._next = itertools.cycle(range(len(self.urls)))

    def _session(self, url: str, once: bool = False) -> aiohttp.ClientSession:
        """The pooled session of node ``url``, or (``once``) its session whose connections
        close after one request."""
        session = self._sessions.get((url, once))
        if session is None:
            tls: ssl.SSLContext | bool = False
            if url.startswith("https://"):
                tls = ssl.create_default_context(cafile=self.options.ca_file)
                if not self.options.verify_tls:
                    tls.check_hostname = False
                    tls.verify_mode = ssl.CERT_NONE
            connector = aiohttp.TCPConnector(
                limit=self.options.connections_per_node, ssl=tls, force_close=once
            )
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
            self._sessions[(url, once)] = session
        return session

    async def request(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> aiohttp.ClientResponse:
        """Send to the next node; on a connection failure of an idempotent request, try the
        following ones. ``path_qs`` goes on byte for byte (no decoding, no dot-segment removal:
        the engine must see the target the client sent). The caller must release the response.
        Raises UpstreamUnavailable."""
        attempts = 1 + (self.options.retries if method in IDEMPOTENT else 0)
        once = _may_poison(path_qs, headers)
        last: Exception | None = None
        for _ in range(attempts):
            url = self.urls[next(self._next)]
            try:
                return await self._session(url, once).request(
                    method,
                    URL(url + path_qs, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=False,
                )
            except aiohttp.ClientConnectorError as exc:
                last = exc
            except aiohttp.ServerDisconnectedError as exc:
                # A kept-alive connection the node had closed: safe to send again when the
                # body is still in hand.
                if body is not None and not isinstance(body, bytes):
                    raise UpstreamUnavailable(f"the cluster failed: {type(exc).__name__}") from exc
                last = exc
            except TimeoutError:
                raise UpstreamUnavailable(
                    f"the cluster did not answer within {self.options.read_timeout_s:g}s",
                    timeout=True,
                ) from None
            except aiohttp.ClientError as exc:
                # The node closed the connection or sent something that is not HTTP: nothing
                # reached the client yet, and a second try could repeat a write.
                raise UpstreamUnavailable(f"the cluster failed: {type(exc).__name__}") from exc
        raise UpstreamUnavailable(f"no node of the cluster answered: {last}") from last

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
