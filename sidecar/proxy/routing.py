"""Routing on the request target exactly as the engines do, so the sidecar never serves or
rewrites a request the engine would read as something else.

aiohttp resolves routes on a decoded path (``/%5Frerank/metrics`` reaches ``/_rerank/metrics``,
``/a%2Fb/_search`` has the index ``a/b``), where the engines split the raw target on ``/``, match
literal segments as sent and percent-decode only the values of parameters (``{index}``). A
request that reaches one of the sidecar's own routes is therefore checked against the raw target:
every literal segment equal as sent, every parameter present, and no segment that decodes to
``.`` or ``..``. Anything else goes to the cluster as received (the passthrough forwards the raw
target byte for byte), and the engine answers it as it would without the sidecar.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FALLBACK: web.AppKey[Handler] = web.AppKey("exact_routing_fallback")


def raw_target_path(request: web.BaseRequest) -> str:
    """The path of the request target as received (no decoding, no dot-segment removal)."""
    return request.raw_path.split("?", 1)[0]


def matches_exactly(raw_path: str, canonical: str) -> bool:
    """Does ``raw_path`` (as received) match the route ``canonical`` (``/{index}/_search``) the
    way the engines' path tries match it?"""
    raw = raw_path.split("/")
    pattern = canonical.split("/")
    if len(raw) != len(pattern):
        return False
    for segment, expected in zip(raw, pattern, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            if not segment or unquote(segment) in (".", ".."):
                return False
        elif segment != expected:
            return False
    return True


@web.middleware
async def exact_routing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests that aiohttp routed to one of the sidecar's own handlers but whose raw target
    the engine would read differently go to the fallback (the passthrough) instead."""
    route = request.match_info.route
    fallback = request.app.get(FALLBACK)
    if route.resource is None or fallback is None or route.handler is fallback:
        return await handler(request)
    if not matches_exactly(raw_target_path(request), route.resource.canonical):
        return await fallback(request)
    return await handler(request)


def set_fallback(app: web.Application, handler: Handler) -> None:
    """The handler of every request the sidecar must not interpret (the passthrough)."""
    app[FALLBACK] = handler


__all__ = ["exact_routing", "matches_exactly", "raw_target_path", "set_fallback"]
