"""The sidecar's aiohttp application: built from the settings, resources opened and closed
together in one cleanup context (dispatcher, cache)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from sidecar.admin import add_admin_routes
from sidecar.api.openapi import openapi_json
from sidecar.api.rerank import RerankService, add_rerank_routes
from sidecar.metrics import SidecarMetrics
from sidecar.proxy import Upstream, add_passthrough_route
from sidecar.proxy.search import SearchContext, add_search_routes
from sidecar.proxy.upstream import UpstreamOptions
from sidecar.scoring import CachedDispatcher, CeleryDispatcher, Dispatcher, ScoreCache
from sidecar.search.rerank import SearchReranker
from sidecar.settings import Settings

log = logging.getLogger(__name__)

DISPATCHER = web.AppKey("dispatcher", object)


def build_dispatcher(settings: Settings) -> Dispatcher:
    """The configured backend, with the score cache in front when enabled."""
    dispatch = settings.dispatch
    inner: Dispatcher
    if dispatch.backend == "local":
        # Imported by name, only when configured: this is where torch gets loaded.
        from sidecar.scoring.local_backend import LocalDispatcher
        from workers.registry import LoadOptions, load_batchers

        names = dispatch.local_models or [settings.api.default_model]
        inner = LocalDispatcher(load_batchers(settings.models, names, LoadOptions()))
    else:
        inner = CeleryDispatcher(settings.celery.broker_url, settings.celery.result_backend)
    if not dispatch.cache_enabled:
        return inner
    cache_url = settings.celery.result_backend or settings.celery.broker_url
    cache = ScoreCache(
        aioredis.Redis.from_url(cache_url),
        ttl_s=dispatch.cache_ttl_s,
        max_entries=dispatch.cache_max_entries,
    )
    revisions = {name: spec.revision for name, spec in settings.models.items()}
    return CachedDispatcher(inner, cache, revisions)


def create_app(settings: Settings, dispatcher: Dispatcher | None = None) -> web.Application:
    """The sidecar app. ``dispatcher`` overrides the configured one (tests, embedding)."""
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    chosen = dispatcher or build_dispatcher(settings)
    app[DISPATCHER] = chosen
    if not settings.api.keys:
        log.warning("the rerank API has no keys configured: it accepts every caller")
    service = RerankService(chosen, settings.models, settings.api)
    add_rerank_routes(app, service, settings.api.keys, settings.server.max_body_bytes)
    metrics = SidecarMetrics()
    add_admin_routes(app, settings, metrics)
    app.router.add_get("/openapi.json", openapi_json)
    upstream: Upstream | None = None
    if settings.upstream.urls:
        u = settings.upstream
        upstream = Upstream(
            u.urls,
            UpstreamOptions(
                connect_timeout_s=u.connect_timeout_s,
                read_timeout_s=u.read_timeout_s,
                connections_per_node=u.connections_per_node,
                ca_file=u.ca_file,
                verify_tls=u.verify_tls,
                retries=u.retries,
            ),
        )
        reranker = SearchReranker(chosen, hit_fields=settings.rerank.hit_fields)
        add_search_routes(app, SearchContext(settings, reranker, metrics))
        add_passthrough_route(app, upstream)  # last: it catches every other path

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await chosen.close()
        if upstream is not None:
            await upstream.close()

    app.cleanup_ctx.append(lifecycle)
    return app
