"""Engine answers a real engine would not give (200 with a body that is not a search
response): they cannot be made on demand from a real cluster, so a tiny stand-in upstream gives
them (the one fake in these tests; scores still come from the real worker). The client then
gets what the engine answered to its own request, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import ScoringWorkerHandle

ODD_ANSWERS: dict[str, tuple[str, bytes]] = {
    "text": ("text/plain", b"all good"),
    "not-json": ("application/json", b"{not json"),
    "array": ("application/json", b"[1, 2, 3]"),
    "hits-list": ("application/json", b'{"hits": [1, 2]}'),
    "hit-string": ("application/json", b'{"hits": {"hits": ["a", "b"]}}'),
    "hits-object": ("application/json", b'{"hits": {"hits": {"a": 1}}}'),
    "fields-list": (
        "application/json",
        b'{"hits": {"hits": [{"_id": "1", "_score": 1.0, "_source": {"title": "red"},'
        b' "fields": [1]}]}}',
    ),
    "source-string": (
        "application/json",
        b'{"hits": {"hits": [{"_id": "1", "_score": 1.0, "_source": "red shoes"}]}}',
    ),
}


@pytest.fixture(scope="module")
def odd_engine() -> Iterator[str]:
    async def answer(request: web.Request) -> web.Response:
        index = request.match_info.get("index")
        if index is None:  # _msearch: the index of the first header line
            index = json.loads((await request.read()).split(b"\n", 1)[0])["index"]
        kind = index.removeprefix("odd-")
        content_type, body = ODD_ANSWERS.get(kind, ("application/json", b"{}"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{index}/_search", answer)
    app.router.add_route("*", "/_msearch", answer)
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def sidecar(
    odd_engine: str, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    settings = Settings(
        models=tiny_registry,
        upstream={"urls": [odd_engine]},
        celery={"broker_url": scoring_worker.worker.broker_url},
        rerank={
            "profiles": {"titles": {"model": "tiny-text", "fields": {"text": "title"}}},
            "rules": [{"index": "odd-*", "profile": "titles"}],
        },
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("kind", sorted(ODD_ANSWERS))
def test_an_unreadable_engine_answer_reaches_the_client_as_the_engine_gave_it(
    sidecar: str, kind: str
) -> None:
    body = {"query": {"match": {"title": "red shoes"}}}
    response = httpx.post(f"{sidecar}/odd-{kind}/_search", json=body, timeout=60)
    expected = ODD_ANSWERS[kind][1]
    if kind == "source-string":  # readable after all: scored as text, the page comes back
        assert response.status_code == 200
        assert response.headers["X-Rerank-Status"].startswith("applied")
        return
    assert response.status_code == 200
    assert response.content == expected
    # Not JSON by its type: an answer the sidecar does not read; JSON it cannot use: unreadable.
    reason = "engine_status" if kind == "text" else "engine_response"
    assert response.headers["X-Rerank-Status"] == f"skipped; reason={reason}"


@pytest.mark.parametrize("kind", ["array", "not-json", "hits-list"])
def test_an_unreadable_msearch_answer_reaches_the_client_as_it_came(
    sidecar: str, kind: str
) -> None:
    lines = [{"index": f"odd-{kind}"}, {"query": {"match": {"title": "red"}}}]
    raw = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = httpx.post(
        f"{sidecar}/_msearch",
        content=raw,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.content == ODD_ANSWERS[kind][1]
    assert response.headers["X-Rerank-Status"] == "skipped; reason=engine_response"
