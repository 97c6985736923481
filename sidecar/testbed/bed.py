"""`testbed up` / `testbed down`: start a set of servers, remember them, stop them later."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sidecar.settings import Settings
from sidecar.testbed.celery_worker import start_worker
from sidecar.testbed.engines import engine_specs, start_engine
from sidecar.testbed.errors import TestbedError
from sidecar.testbed.process import ManagedProcess
from sidecar.testbed.redis_server import start_redis


@dataclass
class Service:
    """One running server: what it is, where to reach it, and its process."""

    name: str
    url: str
    process: ManagedProcess
    detail: str = ""


def state_path(settings: Settings) -> Path:
    return settings.cache_dir / "testbed" / "state.json"


def load_state(settings: Settings) -> list[Service]:
    path = state_path(settings)
    if not path.is_file():
        return []
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [
        Service(e["name"], e["url"], ManagedProcess.from_state(e["process"]), e.get("detail", ""))
        for e in entries
    ]


def save_state(settings: Settings, services: list[Service]) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [
        {"name": s.name, "url": s.url, "detail": s.detail, "process": s.process.to_state()}
        for s in services
    ]
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")


def up(
    settings: Settings,
    engines: list[str],
    with_redis: bool,
    with_worker: bool,
    on_started: Callable[[Service], None] = lambda service: None,
) -> list[Service]:
    """Start the named engines, Redis and a worker; on any failure stop what was started."""
    running = [s for s in load_state(settings) if s.process.is_running()]
    if running:
        names = ", ".join(s.name for s in running)
        raise TestbedError(
            f"a test bed is already up ({names}); run `rerank-sidecar testbed down` first."
        )
    specs = engine_specs(settings)
    unknown = [name for name in engines if name not in specs]
    if unknown:
        raise TestbedError(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    services: list[Service] = []

    def started(service: Service) -> None:
        services.append(service)
        save_state(settings, services)
        on_started(service)

    try:
        for name in engines:
            engine = start_engine(specs[name], settings)
            started(
                Service(
                    name, engine.url, engine.process, f"{specs[name].flavor} {specs[name].version}"
                )
            )
        if with_redis or with_worker:
            redis_server = start_redis(settings)
            started(Service("redis", redis_server.url, redis_server.process))
            if with_worker:
                worker = start_worker(settings, redis_server.url)
                started(
                    Service("celery-worker", worker.broker_url, worker.process, worker.hostname)
                )
    except BaseException:
        for service in reversed(services):
            service.process.stop()
        save_state(settings, [])
        raise
    return services


def down(settings: Settings) -> list[Service]:
    """Stop every server the last `up` started, workers before the Redis they use."""
    services = load_state(settings)
    for service in reversed(services):
        service.process.stop()
    state_path(settings).unlink(missing_ok=True)
    return services
