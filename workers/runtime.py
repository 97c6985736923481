"""The loaded models of this worker process.

Celery tasks are plain functions, so they find the process's batchers here. The worker command
fills it once, before the worker starts consuming; nothing is loaded per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.batcher import Batcher
from workers.contract import ModelSpec
from workers.metrics import WorkerMetrics


@dataclass
class WorkerRuntime:
    batchers: dict[str, Batcher]
    metrics: WorkerMetrics

    def health(self) -> dict[str, object]:
        return {
            "status": "ok",
            "models": sorted(self.batchers),
            "queue_depth": {name: b.queue_depth() for name, b in self.batchers.items()},
        }


_current: WorkerRuntime | None = None


def install(runtime: WorkerRuntime) -> None:
    global _current
    _current = runtime
    for name, batcher in runtime.batchers.items():
        runtime.metrics.queue_depth.labels(name).set_function(batcher.queue_depth)


def current() -> WorkerRuntime:
    if _current is None:
        raise RuntimeError(
            "this process has no models loaded; start it with `rerank-sidecar worker`"
        )
    return _current


def start_runtime(
    registry: Mapping[str, ModelSpec],
    names: Sequence[str],
    *,
    token_budget: int,
    max_batch: int,
    media_roots: Sequence[Path],
    media_allow_networks: Sequence[str],
    media_timeout_s: float,
    media_cache_dir: Path,
    metrics_port: int | None,
) -> WorkerRuntime:
    """Load and warm up the named models, start the media fetcher and metrics, install them."""
    from workers.fetch import BlockingMediaFetcher, FetchPolicy, MediaFetcher, parse_networks
    from workers.media import MediaResolver
    from workers.metrics import serve
    from workers.registry import LoadOptions, load_batchers

    policy = FetchPolicy(
        timeout_s=media_timeout_s, allow_networks=parse_networks(media_allow_networks)
    )
    fetcher = BlockingMediaFetcher(MediaFetcher(media_cache_dir, policy))
    media = MediaResolver(local_roots=tuple(media_roots), fetch_remote=fetcher)
    metrics = WorkerMetrics()
    batchers = load_batchers(
        registry,
        names,
        LoadOptions(token_budget=token_budget, max_batch=max_batch, media=media),
        observers={name: metrics.observer(name) for name in names},
    )
    runtime = WorkerRuntime(batchers, metrics)
    install(runtime)
    if metrics_port is not None:
        serve(metrics, metrics_port, runtime.health)
    return runtime
