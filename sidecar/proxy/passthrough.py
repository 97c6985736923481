"""Pass-through: stream the client's request to the cluster and the cluster's answer back,
unchanged but for hop-by-hop headers. The body is never parsed here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping

import aiohttp
from aiohttp import web

from sidecar.body import BodyReadTimeout, timed_chunks
from sidecar.proxy.errors import engine_error
from sidecar.proxy.headers import end_to_end, end_to_end_raw
from sidecar.proxy.media_types import rewritten_content_type
from sidecar.proxy.response import ExactHeadersStreamResponse
from sidecar.proxy.routing import set_fallback
from sidecar.proxy.upstream import Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

UPSTREAM = web.AppKey("upstream", Upstream)
BODY_IDLE_TIMEOUT_S = web.AppKey("body_idle_timeout_s", float)
CHUNK = 64 * 1024


def add_passthrough_route(
    app: web.Application, upstream: Upstream, body_idle_timeout_s: float = 60.0
) -> None:
    """Everything not routed before this catch-all goes to the cluster, as does every request
    the sidecar must not interpret (see ``sidecar.proxy.routing``)."""
    app[UPSTREAM] = upstream
    app[BODY_IDLE_TIMEOUT_S] = body_idle_timeout_s
    app.router.add_route("*", "/{tail:.*}", passthrough)
    set_fallback(app, passthrough)


async def passthrough(request: web.Request) -> web.StreamResponse:
    body = None
    if request.body_exists:
        body = timed_chunks(request, request.app[BODY_IDLE_TIMEOUT_S])
    return await forward(request, body)


async def forward(
    request: web.Request,
    body: bytes | AsyncIterator[bytes] | None,
    *,
    drop: Iterable[str] = (),
    path_qs: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    rewritten: bool = False,
) -> web.StreamResponse:
    """Send ``body`` to the cluster with the client's headers (less ``drop``) and stream its
    answer back, with ``extra_headers`` added. The request target goes on exactly as received
    (``path_qs`` replaces it). ``rewritten``: the sidecar wrote ``body`` (UTF-8 JSON)."""
    headers = end_to_end(request.headers, drop=("Host", *drop))
    if rewritten:
        headers["Content-Type"] = rewritten_content_type(request.headers.get("Content-Type"))
    try:
        upstream = await request.app[UPSTREAM].request(
            request.method, path_qs or request.raw_path, headers, body
        )
    except UpstreamUnavailable as exc:
        return upstream_error(exc)
    except BodyReadTimeout as exc:
        return engine_error(408, "rerank_sidecar_request_timeout", str(exc))
    try:
        response = ExactHeadersStreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end_raw(upstream.raw_headers))
        if extra_headers:
            response.headers.update(extra_headers)
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The status line is out: all that is left is to cut the answer short, as the
            # engine's own failure would have.
            log.info("the cluster's answer broke off: %s", type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
    finally:
        upstream.release()


def upstream_error(exc: UpstreamUnavailable) -> web.Response:
    """The answer when the cluster could not be reached or did not answer."""
    if exc.timeout:
        return engine_error(504, "rerank_sidecar_upstream_timeout", str(exc))
    return engine_error(502, "rerank_sidecar_upstream_unavailable", str(exc))
