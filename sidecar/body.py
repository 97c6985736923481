"""Reading request bodies the sidecar itself must understand.

The server runs with aiohttp's request decompression off, so pass-through bodies reach the
cluster byte for byte with their Content-Encoding (clients such as elasticsearch-py with
``http_compress=True`` gzip their requests). Bodies the sidecar parses are decoded here, with the
size limit applied to the decoded bytes, so a small compressed body cannot inflate without bound.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web


class BodyTooLarge(ValueError):
    """The body, as sent or once decoded, is over the limit."""


class BodyReadTimeout(TimeoutError):
    """The client sent nothing of its body for longer than the idle limit."""


class UnreadableEncoding(ValueError):
    """A Content-Encoding the sidecar does not decode (br, zstd), or a corrupt compressed body."""


def decode(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``raw`` without its Content-Encoding (identity, gzip, x-gzip, deflate)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS  # the zlib wrapper RFC 9110 means by deflate
    else:
        raise UnreadableEncoding(f"Content-Encoding {encoding!r} is not decoded by the sidecar")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise UnreadableEncoding(f"the {encoding} body does not decompress: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the decoded body is larger than {limit} bytes")
    return out


async def read_body(request: web.Request, limit: int) -> tuple[bytes, bytes | None]:
    """The body as sent, and decoded (None: an encoding the sidecar does not read, so the body
    can only be passed on). Raises BodyTooLarge."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"the body is larger than {limit} bytes") from None
    try:
        return raw, decode(raw, request.headers.get("Content-Encoding"), limit)
    except UnreadableEncoding:
        return raw, None


@dataclass(frozen=True)
class SearchBody:
    """A search body read whole: as sent, and decoded (None: an encoding the sidecar does not
    read). ``oversized``: the decoded body is over the inspection limit (``plain`` is None)."""

    raw: bytes
    plain: bytes | None
    oversized: bool = False


@dataclass(frozen=True)
class StreamedBody:
    """A body too large to inspect: what was read so far and the rest, to stream on as sent."""

    chunks: AsyncIterator[bytes]


async def _read_chunk(request: web.Request, idle_timeout_s: float) -> bytes:
    try:
        async with asyncio.timeout(idle_timeout_s):
            return await request.content.readany()
    except TimeoutError:
        raise BodyReadTimeout(
            f"the client sent no body bytes for {idle_timeout_s:g}s (server.body_idle_timeout_s)"
        ) from None


async def timed_chunks(request: web.Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The rest of the request body, chunk by chunk, each within ``idle_timeout_s``."""
    while chunk := await _read_chunk(request, idle_timeout_s):
        yield chunk


async def _then(prefix: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield prefix
    async for chunk in rest:
        yield chunk


async def read_search_body(
    request: web.Request, limit: int, idle_timeout_s: float
) -> SearchBody | StreamedBody:
    """A search body, read whole when it is at most ``limit`` bytes; a larger one is handed
    back as a stream (read so far + the rest), for the cluster to judge: a search the sidecar
    does not inspect is never refused for its size. Raises BodyReadTimeout."""
    if not request.body_exists:
        return SearchBody(b"", b"")
    if request.content_length is not None and request.content_length > limit:
        return StreamedBody(timed_chunks(request, idle_timeout_s))
    parts: list[bytes] = []
    size = 0
    while chunk := await _read_chunk(request, idle_timeout_s):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return StreamedBody(_then(b"".join(parts), timed_chunks(request, idle_timeout_s)))
    raw = b"".join(parts)
    try:
        return SearchBody(raw, decode(raw, request.headers.get("Content-Encoding"), limit))
    except UnreadableEncoding:
        return SearchBody(raw, None)
    except BodyTooLarge:
        return SearchBody(raw, None, oversized=True)
