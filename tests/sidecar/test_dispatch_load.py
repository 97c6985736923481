"""Dispatch under load and faults, through a real engine, Redis and Celery worker: a burst of
reranked sub-searches reaching a fresh sidecar, the in-flight limit, and a Redis restart in the
middle of steady load."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.app import create_app
from sidecar.settings import Settings, WorkerSettings
from sidecar.testbed import start_redis, start_worker
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog

INDEX = "load-products"


@pytest.fixture(scope="module")
def engine(opensearch: EngineHandle, media_dir: Path) -> EngineHandle:
    catalog.load(opensearch.client, INDEX, media_dir)
    return opensearch


def load_settings(
    engine_url: str, broker_url: str, registry: dict[str, Any], **dispatch: Any
) -> Settings:
    return Settings(
        models=registry,
        upstream={"urls": [engine_url]},
        celery={"broker_url": broker_url},
        dispatch={"cache_enabled": False, **dispatch},
        rerank={
            "profiles": {
                "titles": {"model": "tiny-text", "window": 3, "fields": {"text": "title"}}
            },
            "rules": [{"index": INDEX, "profile": "titles"}],
            "timeout_ms": 30_000,
        },
    )


def msearch_body(count: int, tag: str) -> bytes:
    lines = []
    for i in range(count):
        lines.append(json.dumps({"index": INDEX}))
        lines.append(json.dumps({"query": {"match": {"title": f"red shoes {tag} {i}"}}, "size": 3}))
    return ("\n".join(lines) + "\n").encode()


async def _msearch(url: str, count: int, tag: str) -> tuple[int, list[str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/_msearch",
            data=msearch_body(count, tag),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=aiohttp.ClientTimeout(total=180),
        ) as response,
    ):
        await response.read()
        return response.status, response.headers.get("X-Rerank-Status", "").split(", ")


async def _search(session: aiohttp.ClientSession, url: str, text: str) -> tuple[int, str]:
    body = {"query": {"match": {"title": text}}, "size": 3}
    async with session.post(
        f"{url}/{INDEX}/_search",
        json=body,
        timeout=aiohttp.ClientTimeout(total=60),
    ) as response:
        await response.read()
        return response.status, response.headers.get("X-Rerank-Status", "")


def _kind(status: str) -> str:
    """``degraded; reason=overloaded`` → ``degraded;overloaded``; ``applied`` → ``applied``."""
    kind, _, rest = status.partition(";")
    reason = rest.split("reason=", 1)[1] if "reason=" in rest else ""
    return f"{kind};{reason}" if reason else kind


def _kinds(statuses: list[str]) -> Counter[str]:
    """Kinds of the sub-searches, from the list or from its counted form (``…; count=298``)."""
    kinds: Counter[str] = Counter()
    for status in statuses:
        head, _, count = status.partition("; count=")
        kinds[_kind(head)] += int(count) if count else 1
    return kinds


def test_a_burst_of_300_sub_searches_on_a_fresh_sidecar_is_all_applied(
    engine: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    with caplog.at_level(logging.WARNING), serve_in_thread(create_app(settings)) as url:
        status, statuses = asyncio.run(_msearch(url, 300, "burst"))
        assert status == 200
        assert len(statuses) == 300
        assert _kinds(statuses) == Counter({"applied": 300})

        async def singles() -> list[tuple[int, str]]:
            async with aiohttp.ClientSession() as session:
                return [await _search(session, url, f"red single {i}") for i in range(5)]

        assert asyncio.run(singles()) == [(200, "applied")] * 5
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_jobs_beyond_the_in_flight_limit_degrade_as_overloaded_and_the_rest_apply(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = load_settings(
        engine.url, scoring_worker.worker.broker_url, tiny_registry, max_in_flight=20
    )
    with serve_in_thread(create_app(settings)) as url:
        status, statuses = asyncio.run(_msearch(url, 200, "limit"))
        assert status == 200
        kinds = _kinds(statuses)
        assert set(kinds) == {"applied", "degraded;overloaded"}
        assert kinds["applied"] >= 20
        assert asyncio.run(_msearch(url, 5, "after"))[1] == ["applied"] * 5


def test_a_redis_restart_under_steady_load_fails_no_search_and_reranking_comes_back(
    engine: EngineHandle,
    settings: Settings,
    own_redis: Any,
    tiny_registry: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_url = own_redis.url
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    text_only = {"tiny-text": tiny_registry["tiny-text"]}
    worker = start_worker(settings, redis_url, models=text_only, worker_settings=WorkerSettings())
    sidecar = load_settings(engine.url, redis_url, text_only, cache_enabled=True)
    servers: list[Any] = [own_redis]
    back: list[float] = []

    async def steady_load(url: str) -> list[tuple[float, int, str]]:
        results: list[tuple[float, int, str]] = []
        started = time.monotonic()
        stop_at = started + 30.0
        restarted_at: float | None = None

        async def client(n: int, session: aiohttp.ClientSession) -> None:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                status, header = await _search(session, url, f"red steady {n} {i}")
                results.append((time.monotonic(), status, header))
                await asyncio.sleep(0.02)

        async def fault() -> None:
            nonlocal restarted_at, stop_at
            await asyncio.sleep(3.0)
            await asyncio.to_thread(servers[0].stop)
            await asyncio.sleep(1.5)
            servers[0] = await asyncio.to_thread(start_redis, settings, port=port)
            restarted_at = time.monotonic()
            # Run on until reranking has been back for a while (or give up at 30 s).
            while time.monotonic() < stop_at:
                recent = [r for r in results if r[0] > restarted_at]
                if sum(1 for r in recent[-20:] if r[2] == "applied") == 20:
                    stop_at = time.monotonic()
                await asyncio.sleep(0.2)

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(fault(), *(client(n, session) for n in range(4)))
        assert restarted_at is not None
        back.append(restarted_at)
        return results

    try:
        with caplog.at_level(logging.WARNING), serve_in_thread(create_app(sidecar)) as url:
            results = asyncio.run(steady_load(url))
    finally:
        worker_log = worker.process.log_tail(60)
        worker.stop()
        servers[0].stop()

    assert results, "no search ran"
    assert {status for _, status, _ in results} == {200}  # no search failed
    kinds = Counter(header.split(";")[0] for _, _, header in results)
    assert set(kinds) <= {"applied", "degraded"}
    assert kinds["degraded"] > 0  # the outage was felt
    # ... and healed (a worker that stopped on the outage would show in its log)
    assert [header for _, _, header in results[-20:]] == ["applied"] * 20, worker_log
    assert "Unrecoverable error" not in worker_log  # kombu's close-time bug (broker_guard)
    # by itself and soon: the listener reconnects at once, the workers beat again within 0.5 s
    # of Redis answering, and the sidecar does not wait for their heartbeats meanwhile.
    first_applied = min(at for at, _, header in results if at > back[0] and header == "applied")
    assert first_applied - back[0] < 5.0
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
