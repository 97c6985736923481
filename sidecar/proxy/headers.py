"""Which headers cross the proxy: all of them, except the hop-by-hop ones (RFC 9110 §7.6.1)."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)


def _listed_in_connection(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", []):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop headers, those named in Connection, and
    ``drop``; repeated headers keep their order."""
    skip = HOP_BY_HOP | _listed_in_connection(headers) | {name.lower() for name in drop}
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in skip)


def end_to_end_raw(
    raw_headers: Iterable[tuple[bytes, bytes]], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """``end_to_end`` of headers as received (``ClientResponse.raw_headers``): names keep the
    case the engine wrote them in (aiohttp's parsed headers spell known names its own way)."""
    decoded = CIMultiDict(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers
    )
    return end_to_end(decoded, drop)
