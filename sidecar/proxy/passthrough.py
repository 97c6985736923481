"""Pass-through: stream the client's request to the cluster and the cluster's answer back,
unchanged but for hop-by-hop headers. The body is never parsed here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from aiohttp import web

from sidecar.proxy.errors import engine_error
from sidecar.proxy.headers import end_to_end
from sidecar.proxy.upstream import Upstream, UpstreamUnavailable

UPSTREAM = web.AppKey("upstream", Upstream)
CHUNK = 64 * 1024


def add_passthrough_route(app: web.Application, upstream: Upstream) -> None:
    """Everything not routed before this catch-all goes to the cluster."""
    app[UPSTREAM] = upstream
    app.router.add_route("*", "/{tail:.*}", passthrough)


async def passthrough(request: web.Request) -> web.StreamResponse:
    body = request.content.iter_chunked(CHUNK) if request.body_exists else None
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
    answer back, with ``extra_headers`` added. ``rewritten``: the sidecar wrote ``body`` (JSON)."""
    headers = end_to_end(request.headers, drop=("Host", *drop))
    if rewritten:
        headers.setdefault("Content-Type", "application/json")
    try:
        upstream = await request.app[UPSTREAM].request(
            request.method, path_qs or request.path_qs, headers, body
        )
    except UpstreamUnavailable as exc:
        return engine_error(502, "rerank_sidecar_upstream_unavailable", str(exc))
    try:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end(upstream.headers))
        if extra_headers:
            response.headers.update(extra_headers)
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        upstream.release()
