"""The sidecar's aiohttp application: built from the settings, resources opened and closed
together in one cleanup context (dispatcher, cache)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from sidecar.admin import add_admin_routes, add_scrape_refresher
from sidecar.api.openapi import openapi_json
from sidecar.api.rerank import RerankService, add_rerank_routes
from sidecar.experiments.admin_api import add_experiment_routes
from sidecar.experiments.events import ubi_events
from sidecar.experiments.registry import ExperimentRegistry
from sidecar.experiments.search_path import EXPERIMENTS, Experiments
from sidecar.experiments.ubi_writer import UbiWriter
from sidecar.jobs.api import JOBS, add_job_routes, build_jobs_service
from sidecar.jobs.metrics import JobMetrics
from sidecar.metrics import SidecarMetrics
from sidecar.proxy import Upstream, add_passthrough_route
from sidecar.proxy.routing import exact_routing
from sidecar.proxy.search import SearchContext, add_search_routes
from sidecar.proxy.upstream import UpstreamOptions
from sidecar.scoring import CachedDispatcher, CeleryDispatcher, Dispatcher, ScoreCache
from sidecar.scoring.redis_pool import redis_client
from sidecar.search.rerank import SearchReranker
from sidecar.settings import ServerSettings, Settings
from sidecar.tracing import instrument_app

log = logging.getLogger(__name__)

DISPATCHER = web.AppKey("dispatcher", object)
RUNNER_OPTIONS = web.AppKey("runner_options", dict)


def runner_options(server: ServerSettings) -> dict[str, Any]:
    """How every sidecar server runs (``serve``, tests, benchmarks): a client that disconnects
    cancels its handler (and the upstream request it awaits); request bodies stay as sent; the
    request line and header limits and the keep-alive timeout of the settings."""
    return {
        "handler_cancellation": True,
        "auto_decompress": False,
        "max_line_size": server.max_line_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
        "keepalive_timeout": server.keepalive_timeout_s,
    }


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
        inner = CeleryDispatcher(
            settings.celery.broker_url, settings.celery.result_backend, options=dispatch
        )
    if not dispatch.cache_enabled:
        return inner
    cache_url = settings.celery.result_backend or settings.celery.broker_url
    cache = ScoreCache(
        redis_client(
            cache_url,
            max_connections=dispatch.redis_max_connections,
            timeout_s=dispatch.redis_timeout_s,
        ),
        ttl_s=dispatch.cache_ttl_s,
        max_entries=dispatch.cache_max_entries,
    )
    revisions = {name: spec.revision for name, spec in settings.models.items()}
    return CachedDispatcher(inner, cache, revisions)


def build_experiments(settings: Settings, metrics: SidecarMetrics) -> Experiments:
    """The experiment registry (settings + Redis) and the UBI writer to the cluster."""
    dispatch = settings.dispatch
    redis = redis_client(
        settings.celery.broker_url,
        max_connections=dispatch.redis_max_connections,
        timeout_s=dispatch.redis_timeout_s,
    )
    u = settings.upstream
    options = UpstreamOptions(
        connect_timeout_s=u.connect_timeout_s, ca_file=u.ca_file, verify_tls=u.verify_tls
    )
    writer = UbiWriter(settings.ubi.urls or u.urls, settings.ubi, metrics, redis, options)
    registry = ExperimentRegistry(settings.experiments, redis, settings.admin.experiments_refresh_s)
    return Experiments(registry, writer, redis)


CLOSE_TIMEOUT_S = 5.0


async def _bounded_close(name: str, close: Any) -> None:
    """One resource's close, at most CLOSE_TIMEOUT_S: a peer that stopped answering (a stalled
    cluster, a dead Redis) must not keep the process from exiting, nor the next close from
    running."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await close()
    except TimeoutError:
        log.warning("closing the %s took over %.0f s; left behind", name, CLOSE_TIMEOUT_S)
    except Exception:
        log.exception("closing the %s failed", name)


def create_app(settings: Settings, dispatcher: Dispatcher | None = None) -> web.Application:
    """The sidecar app. ``dispatcher`` overrides the configured one (tests, embedding)."""
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    # Before any client session or Redis pool exists: the instrumentations hook their creation.
    instrument_app(app, settings.tracing)
    app[RUNNER_OPTIONS] = runner_options(settings.server)
    chosen = dispatcher or build_dispatcher(settings)
    app[DISPATCHER] = chosen
    if not settings.api.keys:
        log.warning("the rerank API has no keys configured: it accepts every caller")
    service = RerankService(chosen, settings.models, settings.api)
    add_rerank_routes(app, service, settings.api.keys, settings.server.max_body_bytes)
    metrics = SidecarMetrics()
    add_admin_routes(app, settings, metrics)
    app.middlewares.append(exact_routing)  # inside the timing middleware: it sees every answer
    app.router.add_get("/openapi.json", openapi_json)
    upstream: Upstream | None = None
    if settings.upstream.urls:
        upstream = Upstream(settings.upstream.urls, UpstreamOptions.of(settings.upstream))
        reranker = SearchReranker(chosen, hit_fields=settings.rerank.hit_fields)
        add_search_routes(app, SearchContext(settings, reranker, metrics))
        experiments = build_experiments(settings, metrics)
        app[EXPERIMENTS] = experiments
        add_experiment_routes(app, settings)
        jobs = build_jobs_service(settings)
        add_job_routes(app, jobs)
        add_scrape_refresher(app, JobMetrics(jobs.store, metrics.registry).refresh)
        app.router.add_post("/ubi_events", ubi_events)
        # Last: it catches every other path, and every request the sidecar must not read.
        add_passthrough_route(app, upstream, settings.server.body_idle_timeout_s)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        running = app.get(EXPERIMENTS)
        if running is not None:
            await running.registry.start()
        yield
        closes: list[tuple[str, Any]] = []
        if running is not None:
            closes.append(("experiment registry", running.registry.close))
            if running.writer is not None:
                closes.append(("UBI writer", running.writer.close))
            if running.redis is not None:
                closes.append(("experiments Redis", running.redis.aclose))
        if JOBS in app:
            closes.append(("jobs service", app[JOBS].close))
        closes.append(("dispatcher", chosen.close))
        if upstream is not None:
            closes.append(("upstream pools", upstream.close))
        for name, close in closes:
            await _bounded_close(name, close)

    app.cleanup_ctx.append(lifecycle)
    return app
