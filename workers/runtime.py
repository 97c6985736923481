"""The loaded models of this worker process.

Celery tasks are plain functions, so they find the process's batchers here. The worker command
fills it once, before the worker starts consuming; nothing is loaded per task. The runtime also
holds what the tasks need besides the models (the broker's Redis for delivery counts, the time
limit) and the heartbeat that tells the sidecar which workers serve which models.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from workers.batcher import Batcher
from workers.contract import WORKER_HEARTBEAT_S, WORKER_STALE_S, ModelSpec, heartbeat_key
from workers.media import MediaLimits
from workers.metrics import WorkerMetrics

log = logging.getLogger(__name__)

RETRY_S = 0.5
"""Heartbeat interval while Redis does not answer."""
PRUNE_EVERY = 12
"""Heartbeats between removals of members not heard from for WORKER_STALE_S × 10 (a minute)."""


class Heartbeat:
    """While the worker runs, ``ZADD heartbeat_key(model) {node: now}`` for every model it
    serves, every WORKER_HEARTBEAT_S; on stop, its members are removed. Redis failures are
    logged once (until the next success) and never stop the worker."""

    def __init__(
        self,
        client: redis.Redis,
        models: Sequence[str],
        interval_s: float = WORKER_HEARTBEAT_S,
    ) -> None:
        self.client = client
        self.models = list(models)
        self.interval_s = interval_s
        self.node: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._beats = 0

    def start(self, node: str) -> None:
        if self._thread is not None:
            return
        self.node = node
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        if self.node is None:
            return
        now = time.time()
        try:
            pipe = self.client.pipeline(transaction=False)
            for model in self.models:
                pipe.zadd(heartbeat_key(model), {self.node: now})
                if self._beats % PRUNE_EVERY == 0:
                    pipe.zremrangebyscore(heartbeat_key(model), "-inf", now - WORKER_STALE_S * 10)
            pipe.execute()
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("heartbeat to Redis failed (retrying quietly): %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat to Redis works again")
        self._failing = False
        self._beats += 1

    def _run(self) -> None:
        while True:
            self.beat()
            # While Redis is unreachable (restarting), try again soon: a restarted Redis has lost
            # the heartbeat set, and the sidecar says no_worker until it is back.
            wait = min(self.interval_s, RETRY_S) if self._failing else self.interval_s
            if self._stop.wait(wait):
                return

    def stop(self) -> None:
        """Stop beating and remove this worker's members (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
        node, self.node = self.node, None
        if node is None:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for model in self.models:
                pipe.zrem(heartbeat_key(model), node)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not remove the heartbeat of %s: %s", node, exc)


@dataclass
class WorkerRuntime:
    batchers: dict[str, Batcher]
    metrics: WorkerMetrics
    redis: redis.Redis | None = None
    """The broker's Redis: delivery counts, the dead-letter list, the heartbeat."""
    max_deliveries: int = 2
    task_time_limit_s: float | None = None
    heartbeat: Heartbeat | None = None
    closers: list[Any] = field(default_factory=list)

    def health(self) -> dict[str, object]:
        return {
            "status": "ok",
            "models": sorted(self.batchers),
            "queue_depth": {name: b.queue_depth() for name, b in self.batchers.items()},
        }

    def close(self) -> None:
        """Stop the heartbeat (its members removed), the batchers and the fetcher."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
        for batcher in self.batchers.values():
            batcher.close()
        for closer in self.closers:
            try:
                closer()
            except Exception:  # closing is best effort
                log.exception("closing the worker runtime")
        self.closers.clear()


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


def _connect_signals(runtime: WorkerRuntime) -> None:
    """Start the heartbeat once the worker consumes; stop it when the worker shuts down."""
    from celery.signals import worker_ready, worker_shutdown

    def on_ready(sender: Any = None, **_: Any) -> None:
        if runtime.heartbeat is not None:
            runtime.heartbeat.start(str(getattr(sender, "hostname", None) or "celery"))

    def on_shutdown(**_: Any) -> None:
        if runtime.heartbeat is not None:
            runtime.heartbeat.stop()

    worker_ready.connect(on_ready, weak=False, dispatch_uid="rerank-heartbeat-start")
    worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="rerank-heartbeat-stop")


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
    media_limits: MediaLimits | None = None,
    media_cache_max_bytes: int | None = None,
    broker_url: str | None = None,
    max_deliveries: int = 2,
    task_time_limit_s: float | None = None,
) -> WorkerRuntime:
    """Load and warm up the named models, start the media fetcher and metrics, install them.

    With ``broker_url``, jobs are counted per delivery (dead-lettered past ``max_deliveries``)
    and a heartbeat starts when the Celery worker is ready."""
    from workers.fetch import (
        DEFAULT_CACHE_MAX_BYTES,
        BlockingMediaFetcher,
        FetchPolicy,
        MediaFetcher,
        parse_networks,
    )
    from workers.media import MediaResolver
    from workers.metrics import serve
    from workers.registry import LoadOptions, load_batchers

    policy = FetchPolicy(
        timeout_s=media_timeout_s, allow_networks=parse_networks(media_allow_networks)
    )
    fetcher = BlockingMediaFetcher(
        MediaFetcher(media_cache_dir, policy, media_cache_max_bytes or DEFAULT_CACHE_MAX_BYTES)
    )
    media = MediaResolver(
        limits=media_limits or MediaLimits(),
        local_roots=tuple(media_roots),
        fetch_remote=fetcher,
    )
    metrics = WorkerMetrics()
    batchers = load_batchers(
        registry,
        names,
        LoadOptions(token_budget=token_budget, max_batch=max_batch, media=media),
        observers={name: metrics.observer(name) for name in names},
    )
    client = (
        redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
        if broker_url
        else None
    )
    runtime = WorkerRuntime(
        batchers,
        metrics,
        redis=client,
        max_deliveries=max_deliveries,
        task_time_limit_s=task_time_limit_s,
        heartbeat=Heartbeat(client, names) if client is not None else None,
        closers=[fetcher.close] + ([client.close] if client is not None else []),
    )
    install(runtime)
    _connect_signals(runtime)
    if metrics_port is not None:
        serve(metrics, metrics_port, runtime.health)
    return runtime
