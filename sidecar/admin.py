"""The sidecar's own endpoints, under /_rerank/ where no engine API lives: health (the process
answers), readiness (a cluster node answers; Redis is reported, see ``ready``) and Prometheus
metrics. A request-timing
middleware feeds the metrics; the scoring queues' depth (``sidecar.scoring.queue_depth``) is read
from Redis for each scrape, for autoscalers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web

from sidecar.metrics import SidecarMetrics
from sidecar.proxy.passthrough import UPSTREAM
from sidecar.proxy.upstream import UpstreamUnavailable
from sidecar.scoring.cache_metrics import CacheLookups
from sidecar.scoring.queue_depth import QueueDepth
from sidecar.scoring.redis_pool import redis_client
from sidecar.settings import Settings

METRICS = web.AppKey("metrics", SidecarMetrics)
READINESS_REDIS = web.AppKey("readiness_redis", aioredis.Redis)
QUEUE_DEPTH = web.AppKey("queue_depth", QueueDepth)
Refresh = Callable[[], Awaitable[object]]
SCRAPE_REFRESHERS = web.AppKey("scrape_refreshers", list[Refresh])
CHECK_TIMEOUT_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_admin_routes(app: web.Application, settings: Settings, metrics: SidecarMetrics) -> None:
    app[METRICS] = metrics
    app[SCRAPE_REFRESHERS] = []
    if settings.dispatch.backend == "celery" or settings.dispatch.cache_enabled:
        url = settings.celery.result_backend or settings.celery.broker_url
        app[READINESS_REDIS] = aioredis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
        )
    if settings.dispatch.backend == "celery":
        broker = redis_client(
            settings.celery.broker_url, max_connections=2, timeout_s=CHECK_TIMEOUT_S
        )
        app[QUEUE_DEPTH] = QueueDepth(broker, settings.models, metrics.registry)
    metrics.registry.register(CacheLookups(lambda: _cache_lookups(app)))
    app.router.add_get("/_rerank/health", health)
    app.router.add_get("/_rerank/ready", ready)
    app.router.add_get("/_rerank/metrics", metrics_endpoint)
    app.middlewares.append(timing)

    async def close_redis(app: web.Application) -> None:
        if READINESS_REDIS in app:
            await app[READINESS_REDIS].aclose()
        if QUEUE_DEPTH in app:
            await app[QUEUE_DEPTH].close()

    app.on_cleanup.append(close_redis)


CLIENT_CLOSED = 499
"""The code a request the client gave up on is counted under (nginx's "client closed request"):
nothing was answered, and it was not the sidecar's failure."""


@web.middleware
async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    except asyncio.CancelledError:
        code = CLIENT_CLOSED  # handler_cancellation: the client disconnected
        raise
    finally:
        route = getattr(request.match_info.route.handler, "__name__", "other")
        request.app[METRICS].request(route, code, time.perf_counter() - started)


async def health(request: web.Request) -> web.Response:
    # Which of `serve --workers N`'s processes answered: for operators and the tests.
    return web.json_response({"status": "ok"}, headers={"X-Rerank-Process": str(os.getpid())})


async def _cluster_answers(request: web.Request) -> str:
    if UPSTREAM not in request.app:
        return "not configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            # Any HTTP answer (401 on a secured cluster included) means a node is reachable;
            # the sidecar has no credentials of its own to ask more.
            response = await request.app[UPSTREAM].request("HEAD", "/", {}, None)
            response.release()
    except (UpstreamUnavailable, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _redis_answers(request: web.Request) -> str:
    if READINESS_REDIS not in request.app:
        return "not configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await request.app[READINESS_REDIS].ping()
    except (aioredis.RedisError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def ready(request: web.Request) -> web.Response:
    cluster, redis = await asyncio.gather(_cluster_answers(request), _redis_answers(request))
    checks = {"cluster": cluster, "redis": redis}
    # Only the cluster decides: without Redis, searches still pass through and reranking
    # degrades to the engine's order, so taking the sidecar out of rotation would do more harm.
    good = cluster in ("ok", "not configured")
    return web.json_response(
        {"status": "ready" if good else "not ready", "checks": checks}, status=200 if good else 503
    )


def _cache_lookups(app: web.Application) -> dict[str, int] | None:
    from sidecar.app import DISPATCHER  # at scrape time: sidecar.app imports this module
    from sidecar.scoring.cache import CachedDispatcher

    dispatcher = app.get(DISPATCHER)
    return dispatcher.lookups if isinstance(dispatcher, CachedDispatcher) else None


def add_scrape_refresher(app: web.Application, refresh: Refresh) -> None:
    """``refresh`` is awaited before each exposition (bounded by its own timeout)."""
    app[SCRAPE_REFRESHERS].append(refresh)


async def metrics_endpoint(request: web.Request) -> web.Response:
    if QUEUE_DEPTH in request.app:
        await request.app[QUEUE_DEPTH].refresh()  # bounded by its own timeout
    for refresh in request.app[SCRAPE_REFRESHERS]:
        await refresh()
    return web.Response(
        body=request.app[METRICS].exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
