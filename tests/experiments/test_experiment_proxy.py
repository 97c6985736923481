"""Experiments through the real sidecar, engines (OpenSearch 2, Elasticsearch 8), Redis and
Celery worker: the split of a few thousand simulated users, sticky assignment across two sidecar
processes, each variant's order against load_scorer's, team-draft interleaving and its paging,
UBI logging in the UBI plugin's own mappings, /ubi_events, the admin API, and a UBI cluster that
does not answer never holding a search."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from scipy import stats

from sidecar.app import create_app
from sidecar.experiments.interleaving import interleaving_seed, team_draft
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.ports import free_port
from sidecar.testbed.process import ManagedProcess
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog
from tests.waiting import wait_for

AB_INDEX = "exp-ab-products"
IL_INDEX = "exp-il-products"
API_INDEX = "exp-api-products"
PLAIN_INDEX = "exp-plain-products"  # no experiment applies
TOKEN = "admin-token-for-tests"
QUERY = {"query": {"match": {"title": "red shoes"}}, "size": 6}
INSTRUCTION = "Find the product a shopper means."
FIXTURES = Path(__file__).parent / "fixtures"


def config(engine_url: str, broker: str, registry: dict[str, Any]) -> dict[str, Any]:
    return {
        "models": {name: spec.model_dump(mode="json") for name, spec in registry.items()},
        "upstream": {"urls": [engine_url]},
        "celery": {"broker_url": broker},
        "admin": {"tokens": [TOKEN], "experiments_refresh_s": 0.2},
        "ubi": {"flush_interval_ms": 100},
        "rerank": {
            "profiles": {
                "titles": {"model": "tiny-text", "window": 8, "fields": {"text": ["title"]}}
            },
            "timeout_ms": 60_000,
            "max_timeout_ms": 60_000,
        },
        "experiments": [
            {
                "name": "three-way",
                "indices": ["exp-ab-*"],
                "variants": [
                    {"name": "control", "off": True, "weight": 1},
                    {"name": "titles", "profile": "titles", "weight": 1},
                    {
                        "name": "described",
                        "model": "tiny-text",
                        "options": {
                            "window": 8,
                            "instruction": INSTRUCTION,
                            "fields": {"text": ["title", "description"]},
                        },
                        "weight": 2,
                    },
                ],
                "key": ["header:X-User-Id", "ubi.client_id"],
            },
            {
                "name": "mixed",
                "indices": ["exp-il-*"],
                "variants": [
                    {"name": "control", "off": True},
                    {"name": "titles", "profile": "titles"},
                ],
                "interleave": ["control", "titles"],
            },
        ],
    }


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def engine(request: pytest.FixtureRequest, media_dir: Path) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    for index in (AB_INDEX, IL_INDEX, API_INDEX, PLAIN_INDEX):
        catalog.load(handle.client, index, media_dir)
    for index in ("ubi_queries", "ubi_events"):
        handle.client.indices.delete(index=index, ignore_unavailable=True)
    return handle


@pytest.fixture(scope="module")
def sidecar_config(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> dict[str, Any]:
    return config(engine.url, scoring_worker.worker.broker_url, tiny_registry)


@pytest.fixture(scope="module")
def proxy(sidecar_config: dict[str, Any]) -> Iterator[str]:
    with serve_in_thread(create_app(Settings.model_validate(sidecar_config))) as url:
        yield url


def search(url: str, index: str, body: dict[str, Any], user: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"X-User-Id": user} if user else {})}
    response = httpx.post(f"{url}/{index}/_search", json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    return response


def ids(response: httpx.Response) -> list[str]:
    return [h["_id"] for h in response.json()["hits"]["hits"]]


def direct(engine: EngineHandle, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{engine.url}/{index}/_search", json=body, timeout=60)
    hits: list[dict[str, Any]] = response.json()["hits"]["hits"]
    return hits


def order(hits: list[dict[str, Any]], scores: list[float]) -> list[str]:
    return [hits[i]["_id"] for i in sorted(range(len(hits)), key=lambda i: (-scores[i], i))]


def count(engine: EngineHandle, index: str, query: dict[str, Any]) -> int:
    if not engine.client.indices.exists(index=index):
        return 0
    engine.client.indices.refresh(index=index)
    return int(engine.client.count(index=index, body={"query": query})["count"])


async def _variants_of(url: str, users: list[str]) -> list[str]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(user: str) -> str:
            async with limit:
                response = await client.post(
                    f"{url}/{AB_INDEX}/_search", json=QUERY, headers={"X-User-Id": user}
                )
                assert response.status_code == 200, response.text
                return response.headers["X-Rerank-Variant"]

        return await asyncio.gather(*(one(u) for u in users))


USERS = [f"user-{i}" for i in range(2400)]


@pytest.fixture(scope="module")
def split(proxy: str) -> dict[str, str]:
    return dict(zip(USERS, asyncio.run(_variants_of(proxy, USERS)), strict=True))


def test_three_variants_split_users_by_their_weights(
    split: dict[str, str], proxy: str, engine: EngineHandle
) -> None:
    counts = Counter(split.values())
    expected = {"control": 0.25, "titles": 0.25, "described": 0.5}
    assert set(counts) == set(expected)
    chi = stats.chisquare(
        [counts[v] for v in expected], [len(USERS) * share for share in expected.values()]
    )
    assert chi.pvalue > 0.001, counts  # no sample-ratio mismatch
    query = {"term": {"query_attributes.experiment": "three-way"}}
    wait_for(lambda: count(engine, "ubi_queries", query) >= len(USERS), 60, "UBI searches")
    for variant, n in counts.items():
        logged = {"bool": {"filter": [query, {"term": {"query_attributes.variant": variant}}]}}
        assert count(engine, "ubi_queries", logged) == n


def test_assignment_is_sticky_across_sidecar_processes(
    split: dict[str, str], sidecar_config: dict[str, Any], engine: EngineHandle, tmp_path: Path
) -> None:
    port = free_port()
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump({**sidecar_config, "server": {"port": port}}))
    second = ManagedProcess.spawn(
        "second-sidecar",
        [sys.executable, "-m", "sidecar", "serve", "--config", str(path)],
        log_path=tmp_path / "second.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/_rerank/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "the second sidecar")
        sample = USERS[:300]
        again = asyncio.run(_variants_of(url, sample))
        assert again == [split[u] for u in sample]
    finally:
        second.stop()


def test_each_variant_returns_its_own_order(
    split: dict[str, str], proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    window = direct(engine, AB_INDEX, {**QUERY, "size": 8})
    text = tiny_scorers["tiny-text"]
    query = {"text": "red shoes"}
    titles = [{"text": h["_source"]["title"]} for h in window]
    described = [
        {"text": f"{h['_source']['title']}\n{h['_source']['description']}"} for h in window
    ]
    expected = {
        "control": [h["_id"] for h in window][:6],
        "titles": order(window, text.score(query, titles))[:6],
        "described": order(window, text.score(query, described, instruction=INSTRUCTION))[:6],
    }
    assert len({tuple(v) for v in expected.values()}) == 3  # three different orders to tell apart
    for variant in expected:
        user = next(u for u, v in split.items() if v == variant)
        response = search(proxy, AB_INDEX, QUERY, user)
        assert response.headers["X-Rerank-Variant"] == variant
        assert ids(response) == expected[variant]
        assert response.headers["X-Rerank-Experiment"].startswith("three-way; revision=")
        status = response.headers["X-Rerank-Status"]
        assert status == ("skipped; reason=variant_off" if variant == "control" else "applied")


def test_interleaving_is_team_draft_of_both_orders_and_pages_continue(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    window = direct(engine, IL_INDEX, {**QUERY, "size": 8})
    control = [(IL_INDEX, h["_id"]) for h in window]
    scores = tiny_scorers["tiny-text"].score(
        {"text": "red shoes"}, [{"text": h["_source"]["title"]} for h in window]
    )
    titles = [(IL_INDEX, i) for i in order(window, scores)]
    for user in ("ana", "bob", "chen"):
        seed = interleaving_seed("red shoes", user, "mixed")
        placed = team_draft(control, titles, teams=("control", "titles"), seed=seed)
        first = search(proxy, IL_INDEX, {**QUERY, "size": 4}, user)
        second = search(proxy, IL_INDEX, {**QUERY, "from": 4, "size": 4}, user)
        assert first.headers["X-Rerank-Variant"] == "interleave:control,titles"
        shown = first.json()["hits"]["hits"] + second.json()["hits"]["hits"]
        assert [h["_id"] for h in shown] == [p.key[1] for p in placed[:8]]
        assert all(
            h["fields"]["_rerank_team"][0] == p.team for h, p in zip(shown, placed, strict=False)
        )


def test_searches_and_events_are_logged_in_the_ubi_plugins_mappings(
    proxy: str, engine: EngineHandle
) -> None:
    body = {**QUERY, "ext": {"ubi": {"client_id": "ubi-user-7", "user_query": "red shoes"}}}
    response = search(proxy, IL_INDEX, body)
    query_id = response.json()["ext"]["ubi"]["query_id"]
    assert response.headers["X-Rerank-Query-Id"] == query_id
    shown = ids(response)
    events = [
        {  # the UBI JavaScript collector's shape
            "action_name": "click",
            "query_id": query_id,
            "client_id": "ubi-user-7",
            "timestamp": int(time.time() * 1000),
            "message_type": "INFO",
            "message": "clicked a product",
            "event_attributes": {
                "object": {"object_id": shown[1], "object_id_field": "_id", "description": "x"},
                "position": {"ordinal": 1},
            },
        },
        {"query_id": query_id, "event_attributes": {}},  # no action_name
        {
            "action_name": "impression",
            "query_id": "never-logged",
            "timestamp": "2026-12-01T10:00:00Z",
        },
        {"action_name": "click", "event_attributes": {"position": {"ordinal": "third"}}},
    ]
    wait_for(
        lambda: count(engine, "ubi_queries", {"term": {"query_id": query_id}}) == 1,
        30,
        "the search",
    )
    answer = httpx.post(f"{proxy}/ubi_events", json=events, timeout=30).json()
    assert answer["accepted"] == 2 and answer["orphans"] == 1 and answer["dropped"] == 0
    assert [r["position"] for r in answer["rejected"]] == [1, 3]
    assert "action_name is required" in answer["rejected"][0]["reason"]
    assert "ordinal must be an integer" in answer["rejected"][1]["reason"]
    wait_for(
        lambda: (
            count(engine, "ubi_events", {"terms": {"query_id": [query_id, "never-logged"]}}) == 2
        ),
        30,
        "the events",
    )
    logged = engine.client.search(
        index="ubi_queries", body={"query": {"term": {"query_id": query_id}}}
    )
    doc = logged["hits"]["hits"][0]["_source"]
    assert doc["client_id"] == "ubi-user-7" and doc["query_response_hit_ids"] == shown
    attributes = doc["query_attributes"]
    assert attributes["experiment"] == "mixed" and attributes["variant"] == "interleave"
    assert len(attributes["teams"]) == len(shown)
    metrics = httpx.get(f"{proxy}/_rerank/metrics").text
    assert 'rerank_sidecar_ubi_events_total{outcome="orphan"}' in metrics
    if engine.name.startswith("opensearch"):  # the plugin's mappings use flat_object
        stored_events = engine.client.search(
            index="ubi_events", body={"query": {"term": {"query_id": query_id}}}
        )
        for name, source in (
            ("queries", doc),
            ("events", stored_events["hits"]["hits"][0]["_source"]),
        ):
            index = f"ubi-plugin-{name}"
            engine.client.indices.delete(index=index, ignore_unavailable=True)
            mapping = json.loads((FIXTURES / f"ubi-plugin-{name}-mapping.json").read_text())
            engine.client.indices.create(
                index=index, body={"settings": {"number_of_replicas": 0}, "mappings": mapping}
            )
            result = engine.client.index(index=index, body=source, refresh=True)
            assert result["result"] == "created"


def _admin(
    proxy: str, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(
        method, f"{proxy}/_rerank/experiments{path}", json=body, headers=headers, timeout=30
    )


def test_reranked_searches_outside_experiments_are_logged_when_asked(
    proxy: str, sidecar_config: dict[str, Any], engine: EngineHandle
) -> None:
    reranked = {**QUERY, "ext": {"rerank": {"profile": "titles"}}}
    assert "X-Rerank-Query-Id" not in search(proxy, PLAIN_INDEX, reranked).headers  # the default
    logging = {**sidecar_config, "ubi": {**sidecar_config["ubi"], "log_reranked": True}}
    with serve_in_thread(create_app(Settings.model_validate(logging))) as url:
        response = search(url, PLAIN_INDEX, reranked)
        assert response.headers["X-Rerank-Status"].startswith("applied")
        query_id = response.headers["X-Rerank-Query-Id"]
        assert "X-Rerank-Query-Id" not in search(url, PLAIN_INDEX, QUERY).headers  # not reranked
        wait_for(
            lambda: count(engine, "ubi_queries", {"term": {"query_id": query_id}}) == 1,
            30,
            "the reranked search in ubi_queries",
        )
    logged = engine.client.search(
        index="ubi_queries", body={"query": {"term": {"query_id": query_id}}}
    )["hits"]["hits"][0]["_source"]
    assert logged["query_response_hit_ids"] == ids(response)
    assert logged["query_attributes"]["model"] == "tiny-text"
    assert logged["query_attributes"]["rerank"] == "applied"
    assert logged["user_query"] == "red shoes"
    assert logged["indexes"] == [PLAIN_INDEX]


def test_the_admin_api_runs_experiments_and_refuses_bad_ones(proxy: str) -> None:
    assert _admin(proxy, "GET", "", token=None).status_code == 401
    assert _admin(proxy, "GET", "", token="wrong").status_code == 401
    listed = _admin(proxy, "GET", "").json()["experiments"]
    assert {(e["name"], e["source"]) for e in listed} >= {
        ("three-way", "settings"),
        ("mixed", "settings"),
    }
    experiment = {
        "indices": ["exp-api-*"],
        "variants": [{"name": "a", "off": True}, {"name": "b", "profile": "titles"}],
        "salt": "s1",
    }
    made = _admin(proxy, "PUT", "/from-api", experiment)
    assert made.status_code == 201, made.text
    revision = made.json()["revision"]
    response = search(proxy, API_INDEX, QUERY, "someone")
    assert (
        response.headers["X-Rerank-Experiment"] == f"from-api; revision={revision}; assignment=key"
    )
    same = _admin(proxy, "PUT", "/from-api", experiment)
    assert same.status_code == 200 and same.json()["new_revision"] is False
    changed = {
        **experiment,
        "variants": [*experiment["variants"], {"name": "c", "profile": "titles"}],
    }
    again = _admin(proxy, "PUT", "/from-api", changed)
    assert again.json()["new_revision"] is True and again.json()["revision"] != revision
    variants = {
        "variants.1.profile": [{"name": "a", "off": True}, {"name": "b", "profile": "nope"}],
        "weights": [
            {"name": "a", "off": True, "weight": 0},
            {"name": "b", "off": True, "weight": 0},
        ],
        "model registry": [{"name": "a", "model": "nope"}, {"name": "b", "off": True}],
    }
    bad = [({**experiment, "variants": v}, reason) for reason, v in variants.items()]
    bad += [
        ({**experiment, "interleave": ["a", "b", "a"]}, "exactly two"),
        ({**experiment, "key": ["query:user"]}, "header:NAME"),
    ]
    for body, reason in bad:
        refused = _admin(proxy, "PUT", "/bad-one", body)
        assert refused.status_code == 400 and reason in refused.json()["error"]["reason"], (
            refused.text
        )
    assert _admin(proxy, "GET", "/bad-one").status_code == 404
    assert _admin(proxy, "PUT", "/three-way", experiment).status_code == 409
    assert _admin(proxy, "DELETE", "/from-api").status_code == 200
    assert "X-Rerank-Experiment" not in search(proxy, API_INDEX, QUERY, "someone").headers


class BlackHole:
    """A TCP server that accepts connections and never answers: a stalled cluster."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_stalled_ubi_cluster_never_holds_a_search(sidecar_config: dict[str, Any]) -> None:
    hole = BlackHole()
    stalled = {
        **sidecar_config,
        "ubi": {"urls": [hole.url], "request_timeout_s": 1, "flush_interval_ms": 50},
    }
    try:
        with serve_in_thread(create_app(Settings.model_validate(stalled))) as url:
            search(url, AB_INDEX, QUERY, "warm-up")  # the score cache is warm after this
            started = time.perf_counter()
            for i in range(20):
                search(url, AB_INDEX, QUERY, f"stalled-{i}")
            per_search = (time.perf_counter() - started) / 20
            assert per_search < 0.5  # the writer's 1 s timeout never reaches a search

            def dropped() -> bool:
                text = httpx.get(f"{url}/_rerank/metrics").text
                return (
                    'outcome="dropped_timeout"' in text
                    or 'outcome="dropped_cluster_unavailable"' in text
                )

            wait_for(dropped, 30, "the dropped UBI documents to be counted")
            hole.close()  # the cluster comes back as refused connections; the app then closes
    finally:
        hole.close()


SIMULATED_QUERIES = ["red shoes", "running", "rain jacket", "red wool scarf"]


async def _simulate(url: str, users: int, seed: int, preference: dict[str, float]) -> int:
    """A population of users with known preferences: each searches the interleaved index,
    examines the hit at 0-based position i with probability 1 / (1 + i), and clicks an examined
    hit with the probability its team has in ``preference``; clicks go to /ubi_events in the UBI
    collector's shape, as a browser would send them."""
    import random

    rng = random.Random(seed)
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(user: str, query: str) -> int:
            async with limit:
                body = {"query": {"match": {"title": query}}, "size": 6, "ext": {"ubi": {}}}
                response = await client.post(
                    f"{url}/{IL_INDEX}/_search", json=body, headers={"X-User-Id": user}
                )
                assert response.status_code == 200, response.text
                query_id = response.json()["ext"]["ubi"]["query_id"]
                events = [
                    {
                        "action_name": "click",
                        "query_id": query_id,
                        "client_id": user,
                        "event_attributes": {
                            "object": {"object_id": hit["_id"]},
                            "position": {"ordinal": i},
                        },
                    }
                    for i, hit in enumerate(response.json()["hits"]["hits"])
                    if rng.random() < preference[hit["fields"]["_rerank_team"][0]] / (1 + i)
                ]
                if events:
                    answer = await client.post(f"{url}/ubi_events", json=events)
                    assert answer.json()["accepted"] == len(events)
                return len(events)

        clicks = await asyncio.gather(
            *(one(f"sim-{seed}-{u}", rng.choice(SIMULATED_QUERIES)) for u in range(users))
        )
        return sum(clicks)


def test_a_simulated_population_preferring_one_variant_makes_the_report_pick_it(
    proxy: str, engine: EngineHandle, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from sidecar.cli import app

    asyncio.run(_simulate(proxy, 400, seed=1, preference={"titles": 0.6, "control": 0.15}))
    wait_for(
        lambda: (
            count(engine, "ubi_events", {"prefix": {"client_id": "sim-1-"}}) > 0
            and count(engine, "ubi_queries", {"prefix": {"client_id": "sim-1-"}}) == 400
        ),
        60,
        "the simulated searches and clicks",
    )
    httpx.post(f"{proxy}/_rerank/metrics")  # nothing to flush by hand: the writer is async
    result = CliRunner().invoke(
        app, ["experiments", "report", "mixed", "--url", engine.url, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    interleaving = report["interleaving"]
    assert interleaving["winner"] == "titles", interleaving
    assert interleaving["sign"]["p_value"] < 0.05
    assert (tmp_path / "report.html").is_file()
