"""Tracing across the real parts: a `rerank-sidecar serve` process and a real scoring worker,
both exporting OTLP/HTTP to a receiver in the test (it decodes the protobuf requests the SDK's
exporter sends), in front of a real OpenSearch (through a recording hop that keeps the headers
the engine receives) and a real Redis. One reranked search must be one trace holding the
sidecar's server span (with the rerank status and window), its call to the engine (whose
``traceparent`` the engine got), its Redis commands, the Celery publish, the worker's task and
its ``rerank.batch`` span."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sidecar.settings import Settings
from sidecar.testbed import start_worker
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.ports import free_port
from tests.conftest import EngineHandle
from tests.sidecar import catalog
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
INDEX = "traced-products"
WINDOW = 6  # "red shoes" matches more catalog titles than this
CLIENT_KIND = 3  # SpanKind.SPAN_KIND_CLIENT in the OTLP protobuf


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent: str
    kind: int
    attributes: dict[str, Any]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def receiver(spans: list[Span]) -> web.Application:
    """An OTLP/HTTP traces endpoint keeping every span it is sent."""

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    spans.append(
                        Span(
                            str(resource.get("service.name")),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            {a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    return app


def recording_hop(engine_url: str, seen: list[dict[str, str]]) -> web.Application:
    """Forwards everything to the engine and keeps the headers of each request."""

    async def forward(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, engine_url + request.path_qs, data=await request.read(),
                headers=headers,
            ) as answer,
        ):  # fmt: skip
            body = await answer.read()
            keep = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
            return web.Response(status=answer.status, body=body, headers=keep)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@pytest.fixture
def collected() -> Iterator[tuple[str, list[Span]]]:
    spans: list[Span] = []
    with serve_in_thread(receiver(spans)) as url:
        yield f"{url}/v1/traces", spans


def test_one_reranked_search_is_one_trace_across_sidecar_engine_redis_and_worker(
    opensearch: EngineHandle,
    redis_url: str,
    tiny_registry: dict[str, Any],
    media_dir: Path,
    collected: tuple[str, list[Span]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    endpoint, spans = collected
    catalog.load(opensearch.client, INDEX, media_dir)
    broker = redis_url.rsplit("/", 1)[0] + "/9"  # a database of its own: only this worker serves it
    for name, value in {
        "RERANK_TRACING__ENABLED": "true",
        "RERANK_TRACING__OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the SDK's 5 s
    }.items():
        monkeypatch.setenv(name, value)
    model = {"tiny-text": tiny_registry["tiny-text"]}
    worker = start_worker(Settings(), broker, models=model)
    engine_headers: list[dict[str, str]] = []
    port = free_port()
    try:
        with serve_in_thread(recording_hop(opensearch.url, engine_headers)) as hop:
            config = tmp_path / "sidecar.yaml"
            config.write_text(
                json.dumps(
                    {
                        "upstream": {"urls": [hop]},
                        "celery": {"broker_url": broker},
                        "models": {k: v.model_dump(mode="json") for k, v in model.items()},
                        "dispatch": {"cache_enabled": False},
                        "rerank": {
                            "profiles": {
                                "titles": {
                                    "model": "tiny-text",
                                    "window": WINDOW,
                                    "fields": {"text": ["title"]},
                                }
                            },
                            "rules": [{"index": [INDEX], "profile": "titles"}],
                            "timeout_ms": 60_000,
                            "max_timeout_ms": 60_000,
                        },
                    }
                ),
                encoding="utf-8",
            )
            command = [sys.executable, "-m", "sidecar", "serve", "--port", str(port)]
            sidecar = subprocess.Popen(
                [*command, "--config", str(config)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_for(lambda: _answers(url, sidecar), 60, "the traced sidecar")
                body = {"query": {"match": {"title": "red shoes"}}, "size": 4}
                answer = httpx.post(f"{url}/{INDEX}/_search", json=body, timeout=60)
                assert answer.status_code == 200, answer.text
                assert answer.headers["X-Rerank-Status"] == "applied"

                def search_span() -> Span | None:
                    return next(
                        (
                            s
                            for s in list(spans)
                            if s.service == "rerank-sidecar"
                            and s.attributes.get("rerank.status") == "applied"
                        ),
                        None,
                    )

                wait_for(lambda: search_span() is not None, 30, "the search's server span")
                root = search_span()
                assert root is not None
                trace_id = root.trace_id

                def in_trace() -> list[Span]:
                    return [s for s in list(spans) if s.trace_id == trace_id]

                try:
                    wait_for(
                        lambda: any(s.name == "rerank.batch" for s in in_trace()),
                        30,
                        "the worker's batch span in the search's trace",
                    )
                except AssertionError:
                    seen = sorted({(s.service, s.name, s.trace_id == trace_id) for s in spans})
                    raise AssertionError(f"spans seen (service, name, in trace): {seen}") from None
            finally:
                sidecar.terminate()
                sidecar.communicate(timeout=30)
    finally:
        worker.stop()

    trace = in_trace()
    assert root.parent == ""  # the search starts the trace
    assert root.attributes["rerank.window"] == WINDOW
    assert root.attributes["rerank.model"] == "tiny-text"
    by_id = {s.span_id: s for s in trace}

    def under_root(span: Span) -> bool:
        while span.parent:
            if span.parent == root.span_id:
                return True
            parent = by_id.get(span.parent)
            if parent is None:
                return False
            span = parent
        return False

    sidecar_clients = [s for s in trace if s.service == "rerank-sidecar" and s.kind == CLIENT_KIND]
    redis_spans = [s for s in trace if "redis" in str(s.attributes.get("db.system", ""))]
    assert sidecar_clients and all(under_root(s) for s in sidecar_clients)  # the engine calls
    assert redis_spans, [s.name for s in trace]  # the dispatch's Redis commands
    # The engine received the trace's context with its search.
    assert any(trace_id in h.get("traceparent", "") for h in engine_headers), engine_headers
    worker_spans = [s for s in trace if s.service == "rerank-worker"]
    task = next(s for s in worker_spans if s.name.startswith("run/"))
    batches = [s for s in worker_spans if s.name == "rerank.batch"]
    assert under_root(task) and all(b.parent == task.span_id for b in batches)
    assert sum(b.attributes["rerank.batch.job_pairs"] for b in batches) == WINDOW  # every pair
    assert all(b.attributes["rerank.batch.real_tokens"] > 0 for b in batches)


def _answers(url: str, process: subprocess.Popen[str]) -> bool:
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    try:
        return httpx.get(f"{url}/_rerank/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
