"""OpenTelemetry tracing, off by default (``tracing.enabled``).

When on, a process exports its spans over OTLP/HTTP (``tracing.otlp_endpoint``) and uses the
well-kept instrumentations: aiohttp's server middleware (one span per request the sidecar
serves), aiohttp's client (the engine calls, whose ``traceparent`` the engine receives), redis-py
(the score cache and the dispatch), and Celery (the publish in the sidecar, the task in the
worker, whose batch spans come from ``workers.tracing``). One search is one trace across the
sidecar, the engine call, Redis and the worker's batch. The packages are the ``tracing`` extra;
without them, enabling tracing is a clear start-up error.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from sidecar.settings import TracingSettings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_installed = False


class TracingUnavailable(RuntimeError):
    pass


def setup_tracing(
    settings: TracingSettings, service: str, *, celery: bool = False, server: bool = False
) -> bool:
    """Install the tracer provider and the instrumentations once per process; False when
    tracing is off."""
    global _installed
    if not settings.enabled:
        return False
    with _lock:
        if _installed:
            return True
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
            from opentelemetry.instrumentation.redis import RedisInstrumentor
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        except ImportError as exc:
            raise TracingUnavailable(
                f"tracing.enabled needs the tracing extra (pip install 'rerank-sidecar[tracing]'):"
                f" {exc}"
            ) from None
        resource = Resource.create({"service.name": settings.service_name or service})
        provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        exporter = OTLPSpanExporter(
            endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_s
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        AioHttpClientInstrumentor().instrument(tracer_provider=provider)
        if server:
            from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

            # Reads its settings (excluded URLs...) for the middleware; apps made after this
            # get the middleware by themselves, the sidecar's (made before) by instrument_app.
            AioHttpServerInstrumentor().instrument(tracer_provider=provider)
        RedisInstrumentor().instrument(tracer_provider=provider)
        if celery:
            from opentelemetry.instrumentation.celery import CeleryInstrumentor

            CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
        _installed = True
        log.info("tracing: spans go to %s", settings.otlp_endpoint)
        return True


def server_middleware() -> Any:
    """aiohttp's server-span middleware (its own instrumentation's)."""
    from opentelemetry.instrumentation.aiohttp_server import create_aiohttp_middleware

    return create_aiohttp_middleware()


def instrument_app(app: web.Application, settings: TracingSettings) -> None:
    """Tracing for the sidecar's app (and its Celery publishes), when on."""
    if setup_tracing(settings, "rerank-sidecar", celery=True, server=True):
        app.middlewares.insert(0, server_middleware())


def annotate(attributes: dict[str, str | int | float | bool]) -> None:
    """Set attributes on the current span (the search's server span); nothing when tracing is
    off or not installed."""
    if not _installed:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def context_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``...) for a message the sidecar
    builds itself (a scoring job's Celery headers); empty when tracing is off."""
    if not _installed:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
