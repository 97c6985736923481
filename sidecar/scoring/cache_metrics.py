"""``rerank_sidecar_cache_lookups_total{result}``: the score cache's lookups, read from the
CachedDispatcher's counts at scrape time (the dispatcher is built before the app's metrics, so it
keeps plain integers and this collector turns them into a Prometheus counter).

``result`` is ``hit``, ``miss`` or ``error`` (Redis could not be read: the pairs were scored as
if missing). The hit ratio of the dashboards is ``hit / (hit + miss + error)``, per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

NAME = "rerank_sidecar_cache_lookups"
HELP = "(query, document) pairs looked up in the score cache, by result: hit, miss, error"


class CacheLookups(Collector):
    """Collects ``source()`` (result → count), or nothing while it is None (no cache)."""

    def __init__(self, source: Callable[[], Mapping[str, int] | None]) -> None:
        self._source = source

    def describe(self) -> Iterator[CounterMetricFamily]:
        # Registering asks for the names only: the dispatcher may not exist yet.
        yield CounterMetricFamily(NAME, HELP, labels=["result"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self._source()
        if counts is None:
            return
        family = CounterMetricFamily(NAME, HELP, labels=["result"])
        for result, count in counts.items():
            family.add_metric([result], count)
        yield family


__all__ = ["CacheLookups"]
