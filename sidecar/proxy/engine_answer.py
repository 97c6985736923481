"""Asking the engine a question the sidecar rewrote, and answering the client with what the
engine would have answered it, in the engine's own encoding.

The widened request goes out with the client's Accept-Encoding (narrowed to what the sidecar can
decode: gzip and deflate), so the engine picks the encoding it would have picked for the client;
the sidecar decodes the answer, rewrites it, and encodes it again the same way. (The engines'
compression depends on their settings, ``http.compression``, off by default with TLS on
Elasticsearch: only the engine knows.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_response import ContentCoding
from multidict import CIMultiDict

from sidecar.body import BodyTooLarge, UnreadableEncoding, decode
from sidecar.proxy.errors import engine_error
from sidecar.proxy.headers import end_to_end, end_to_end_raw
from sidecar.proxy.media_types import rewritten_content_type
from sidecar.proxy.passthrough import UPSTREAM, upstream_error
from sidecar.proxy.response import ExactHeadersResponse
from sidecar.proxy.upstream import UpstreamUnavailable

# A body the sidecar rewrote goes out as UTF-8 JSON: its old length and encoding no longer apply.
DROP_REWRITTEN = (
    "Content-Length",
    "Content-Encoding",
    "X-Rerank",
    "X-Rerank-Eval",
    "Accept-Encoding",
)
DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "identity", "*"})
MAX_DECODED_ANSWER = 1 << 30  # the engine is trusted; this only bounds a broken one
CODINGS = {
    "gzip": ContentCoding.gzip,
    "x-gzip": ContentCoding.gzip,
    "deflate": ContentCoding.deflate,
}


@dataclass(frozen=True)
class EngineAnswer:
    """The engine's answer to a rewritten request: status, end-to-end headers (without length
    and encoding), the body decoded, and the encoding the engine chose (None: identity)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    encoding: str | None


def decodable_accept_encoding(value: str | None) -> str | None:
    """The client's Accept-Encoding without the codings the sidecar cannot decode (br, zstd):
    ``gzip, deflate, br;q=0.9`` → ``gzip, deflate``."""
    if not value:
        return None
    kept = [
        part.strip()
        for part in value.split(",")
        if part.split(";", 1)[0].strip().lower() in DECODABLE
    ]
    return ", ".join(kept) or None


async def ask_engine(
    request: web.Request, body: bytes, path_qs: str
) -> EngineAnswer | web.Response:
    """Send the rewritten ``body`` to ``path_qs`` with the client's headers; the engine's answer
    decoded, or the response to give the client when the cluster failed or answered in an
    encoding the sidecar cannot read."""
    headers = end_to_end(request.headers, drop=("Host", *DROP_REWRITTEN))
    headers["Content-Type"] = rewritten_content_type(request.headers.get("Content-Type"))
    accept = decodable_accept_encoding(request.headers.get("Accept-Encoding"))
    if accept:
        headers["Accept-Encoding"] = accept
    try:
        upstream = await request.app[UPSTREAM].request(request.method, path_qs, headers, body)
    except UpstreamUnavailable as exc:
        return upstream_error(exc)
    try:
        try:
            raw = await upstream.read()
        except Exception as exc:  # aiohttp.ClientError or a timeout while reading the body
            return upstream_error(
                UpstreamUnavailable(
                    f"the cluster's answer broke off: {type(exc).__name__}",
                    timeout=isinstance(exc, TimeoutError),
                )
            )
        encoding = upstream.headers.get("Content-Encoding", "").strip().lower() or None
        try:
            plain = decode(raw, encoding, MAX_DECODED_ANSWER)
        except (UnreadableEncoding, BodyTooLarge) as exc:
            return engine_error(502, "rerank_sidecar_upstream_unreadable", str(exc))
        headers_out = end_to_end_raw(
            upstream.raw_headers, drop=("Content-Length", "Content-Encoding")
        )
        return EngineAnswer(upstream.status, headers_out, plain, encoding)
    finally:
        upstream.release()


def respond(
    answer: EngineAnswer, body: bytes, extra: Mapping[str, str], status: int | None = None
) -> web.Response:
    """The client's answer: the engine's status and headers, ``body``, ``extra`` headers, in the
    encoding the engine chose."""
    headers: CIMultiDict[Any] = CIMultiDict(answer.headers)
    headers.update(extra)
    response = ExactHeadersResponse(status=status or answer.status, body=body, headers=headers)
    coding = CODINGS.get(answer.encoding or "")
    if coding is not None:
        response.enable_compression(coding)
    return response


__all__ = ["EngineAnswer", "ask_engine", "decodable_accept_encoding", "respond"]
