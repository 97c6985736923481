"""The sidecar's Prometheus metrics (served on /_rerank/metrics).

One registry per app, so several apps in one process (tests, benchmarks) do not collide.
Labels stay low-cardinality: routes are route names, never paths or index names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from sidecar.search.rerank import Outcome

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rerank_sidecar_requests",
            "HTTP requests answered, by route and status code",
            ["route", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "rerank_sidecar_request_seconds",
            "Time to answer a request, by route",
            ["route"],
            buckets=SECONDS,
            registry=r,
        )
        self.searches = Counter(
            "rerank_sidecar_searches",
            "Searches (and _msearch sub-searches) the sidecar looked at, by outcome and reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.rerank_seconds = Histogram(
            "rerank_sidecar_rerank_seconds",
            "Time spent reranking one search (scoring and merge), by model",
            ["model"],
            buckets=SECONDS,
            registry=r,
        )

        self.ubi_documents = Counter(
            "rerank_sidecar_ubi_documents",
            "UBI documents (ubi_queries, ubi_events) by outcome: written, or dropped and why",
            ["index", "outcome"],
            registry=r,
        )
        self.ubi_events = Counter(
            "rerank_sidecar_ubi_events",
            "Events received at /ubi_events: accepted, rejected (malformed), orphan (accepted, "
            "for a query id the sidecar did not log)",
            ["outcome"],
            registry=r,
        )
        self.experiment_searches = Counter(
            "rerank_sidecar_experiment_searches",
            "Searches under an experiment, by experiment, variant and assignment",
            ["experiment", "variant", "assignment"],
            registry=r,
        )

    def search(self, outcome: str, reason: str = "") -> None:
        self.searches.labels(outcome, reason).inc()

    def rerank(self, outcome: Outcome, model: str) -> None:
        self.searches.labels(outcome.kind, outcome.reason).inc()
        self.rerank_seconds.labels(model).observe(outcome.took_ms / 1000)

    def request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.request_seconds.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
