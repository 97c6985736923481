"""Pass-through: stream the client's request to the cluster and the cluster's answer back,
unchanged but for hop-by-hop headers. The body is never parsed here."""

from __future__ import annotations

import json

from aiohttp import web

from sidecar.proxy.headers import end_to_end
from sidecar.proxy.upstream import Upstream, UpstreamUnavailable

UPSTREAM = web.AppKey("upstream", Upstream)
CHUNK = 64 * 1024


def add_passthrough_route(app: web.Application, upstream: Upstream) -> None:
    """Everything not routed before this catch-all goes to the cluster."""
    app[UPSTREAM] = upstream
    app.router.add_route("*", "/{tail:.*}", passthrough)


def _engine_error(status: int, kind: str, reason: str) -> web.Response:
    """An error in the engines' own envelope, for failures of the sidecar itself."""
    cause = {"type": kind, "reason": reason}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def passthrough(request: web.Request) -> web.StreamResponse:
    headers = end_to_end(request.headers, drop=("Host",))
    body = request.content.iter_chunked(CHUNK) if request.body_exists else None
    try:
        upstream = await request.app[UPSTREAM].request(
            request.method, request.path_qs, headers, body
        )
    except UpstreamUnavailable as exc:
        return _engine_error(502, "rerank_sidecar_upstream_unavailable", str(exc))
    try:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end(upstream.headers))
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        upstream.release()
