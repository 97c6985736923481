"""The worker's Prometheus metrics and its /health and /metrics HTTP endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerMetrics:
    """Counters and histograms per model. Rates (pairs/s, tokens/s) come from the counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge(
            "rerank_worker_queue_depth", "Pairs waiting for the model", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "rerank_worker_batch_size",
            "Pairs per forward pass",
            ["model"],
            buckets=BATCH_SIZES,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rerank_worker_batch_seconds",
            "Forward pass time",
            ["model"],
            buckets=SECONDS,
            registry=r,
        )
        self.pairs = Counter("rerank_worker_pairs_scored", "Pairs scored", ["model"], registry=r)
        self.tokens = Counter(
            "rerank_worker_tokens", "Tokens scored, padding excluded", ["model"], registry=r
        )
        self.padded_tokens = Counter(
            "rerank_worker_padded_tokens",
            "Tokens run through the model, padding included",
            ["model"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "rerank_worker_job_seconds",
            "Time from task start to result",
            ["model"],
            buckets=SECONDS,
            registry=r,
        )
        self.errors = Counter(
            "rerank_worker_pair_errors",
            "Pairs that got no score, by reason",
            ["model", "reason"],
            registry=r,
        )
        self.expired_jobs = Counter(
            "rerank_worker_expired_jobs",
            "Jobs dropped because their deadline had passed",
            ["model"],
            registry=r,
        )
        self.redelivered_jobs = Counter(
            "rerank_worker_redelivered_jobs",
            "Jobs that arrived again after a worker died while running them",
            ["model"],
            registry=r,
        )
        self.dead_lettered_jobs = Counter(
            "rerank_worker_dead_lettered_jobs",
            "Jobs answered with an error, not run, because they had been delivered more than "
            "max_deliveries times (workers died while running them)",
            ["model"],
            registry=r,
        )

    def observer(self, model: str) -> _ModelObserver:
        return _ModelObserver(self, model)


class _ModelObserver:
    def __init__(self, metrics: WorkerMetrics, model: str) -> None:
        self._m = metrics
        self._model = model

    def batch_done(self, pairs: int, padded_tokens: int, real_tokens: int, seconds: float) -> None:
        m, model = self._m, self._model
        m.batch_size.labels(model).observe(pairs)
        m.batch_seconds.labels(model).observe(seconds)
        m.pairs.labels(model).inc(pairs)
        m.tokens.labels(model).inc(real_tokens)
        m.padded_tokens.labels(model).inc(padded_tokens)

    def pair_failed(self, reason: str) -> None:
        self._m.errors.labels(self._model, reason).inc()


def serve(
    metrics: WorkerMetrics,
    port: int,
    health: Callable[[], Mapping[str, Any]],
    host: str = "0.0.0.0",
) -> WSGIServer:
    """Serve /metrics (Prometheus text) and /health (JSON) on a daemon thread."""
    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            body = json.dumps(health()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
