"""Reading request bodies the sidecar itself must understand.

The server runs with aiohttp's request decompression off, so pass-through bodies reach the
cluster byte for byte with their Content-Encoding (clients such as elasticsearch-py with
``http_compress=True`` gzip their requests). Bodies the sidecar parses are decoded here, with the
size limit applied to the decoded bytes, so a small compressed body cannot inflate without bound.
"""

from __future__ import annotations

import zlib
from typing import Any

from aiohttp import web

SERVER_OPTIONS: dict[str, Any] = {"handler_cancellation": True, "auto_decompress": False}
"""How every sidecar server runs (``serve``, tests, benchmarks): a client that disconnects
cancels its handler (and the upstream request it awaits); request bodies stay as sent."""


class BodyTooLarge(ValueError):
    """The body, as sent or once decoded, is over the limit."""


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
