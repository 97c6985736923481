"""``_rank_eval`` through the sidecar, against the real engines.

On OpenSearch (2.19 with the rank-eval and lang-mustache modules from Maven Central, 3.6 with
its own), the engine is the oracle: the sidecar's own computation of the engine's order
(``X-Rerank-Eval: sidecar``) equals the engine's ``_rank_eval`` in every number, for every
metric and option; a reranked evaluation equals the same metric computed on the order the tiny
model's scores give (load_scorer); invalid bodies get the engine's own 400. Elasticsearch's
integ-test distribution has no rank-eval module: there the sidecar computes the engine's order
itself and says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.app import create_app
from sidecar.evaluation import Hit, parse_metric
from sidecar.evaluation.models import RatedDocument
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog

PLAIN = "eval-plain"
RERANKED = "eval-reranked"
WINDOW = 8

QUERIES = {
    "red_shoes": "red shoes",
    "running": "running",
    "rain": "rain jacket",
    "scarf": "red wool scarf",
}
# Ratings over the catalog's documents (ids 0..11), some unrated on purpose.
RATINGS = {
    "red_shoes": {"0": 3, "7": 2, "8": 1, "4": 0, "11": 1},
    "running": {"0": 2, "3": 3, "9": 1, "5": 0},
    "rain": {"1": 3, "4": 1},
    "scarf": {"2": 3, "6": 0, "10": 1, "0": 1},
}
METRICS: list[dict[str, Any]] = [
    {"precision": {}},
    {"precision": {"k": 3}},
    {"precision": {"relevant_rating_threshold": 2, "k": 5}},
    {"precision": {"ignore_unlabeled": True}},
    {"recall": {}},
    {"recall": {"k": 2, "relevant_rating_threshold": 2}},
    {"mean_reciprocal_rank": {}},
    {"mean_reciprocal_rank": {"k": 1, "relevant_rating_threshold": 3}},
    {"dcg": {}},
    {"dcg": {"normalize": True}},
    {"dcg": {"k": 3, "normalize": True}},
    {"expected_reciprocal_rank": {"maximum_relevance": 3}},
    {"expected_reciprocal_rank": {"maximum_relevance": 3, "unknown_doc_rating": 1, "k": 4}},
]


def rated_requests(index: str, text_field: str = "title") -> list[dict[str, Any]]:
    return [
        {
            "id": query_id,
            "request": {"query": {"match": {text_field: text}}},
            "ratings": [
                {"_index": index, "_id": doc, "rating": rating}
                for doc, rating in RATINGS[query_id].items()
            ],
        }
        for query_id, text in QUERIES.items()
    ]


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        url,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=180,
    )


@pytest.fixture(scope="module", params=["opensearch", "opensearch3"])
def engine(request: pytest.FixtureRequest, media_dir: Path) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    for index in (PLAIN, RERANKED):
        catalog.load(handle.client, index, media_dir)
    return handle


def sidecar_settings(engine_url: str, broker: str, registry: dict[str, Any]) -> Settings:
    return Settings(
        models=registry,
        upstream={"urls": [engine_url]},
        celery={"broker_url": broker},
        dispatch={"cache_enabled": False},
        rerank={
            "profiles": {
                "titles": {"model": "tiny-text", "window": WINDOW, "fields": {"text": "title"}}
            },
            "rules": [{"index": RERANKED, "profile": "titles"}],
            "timeout_ms": 60_000,
            "max_timeout_ms": 60_000,
        },
    )


@pytest.fixture(scope="module")
def proxy(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    settings = sidecar_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_a_rank_eval_nothing_reranks_is_the_engines_byte_for_byte(
    proxy: str, engine: EngineHandle
) -> None:
    body = {"requests": rated_requests(PLAIN), "metric": {"dcg": {"normalize": True}}}
    direct = post(f"{engine.url}/{PLAIN}/_rank_eval", body)
    through = post(f"{proxy}/{PLAIN}/_rank_eval", body)
    assert direct.status_code == through.status_code == 200
    assert through.content == direct.content
    assert "X-Rerank-Eval" not in through.headers


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: json.dumps(m, sort_keys=True))
def test_the_sidecars_computation_equals_the_engines_for_every_metric_and_option(
    proxy: str, engine: EngineHandle, metric: dict[str, Any]
) -> None:
    requests = rated_requests(PLAIN)
    requests[0]["summary_fields"] = ["title", "brand"]
    requests.append(  # a search the engine fails: a page beyond the result window
        {
            "id": "too_deep",
            "request": {"query": {"match_all": {}}, "from": 20_000},
            "ratings": [{"_index": PLAIN, "_id": "0", "rating": 1}],
        }
    )
    body = {"requests": requests, "metric": metric}
    direct = post(f"{engine.url}/{PLAIN}/_rank_eval", body)
    ours = post(f"{proxy}/{PLAIN}/_rank_eval", body, {"X-Rerank-Eval": "sidecar"})
    assert direct.status_code == ours.status_code == 200, ours.text
    assert ours.headers["X-Rerank-Eval"] == "sidecar"
    expected, got = direct.json(), ours.json()
    assert got["metric_score"] == expected["metric_score"]  # the same double, to the last bit
    assert got["details"] == expected["details"]
    assert list(got["details"]) == list(expected["details"])  # the engine's HashMap order
    assert set(got["failures"]) == set(expected["failures"]) == {"too_deep"}
    assert (
        got["failures"]["too_deep"]["error"]["type"]
        == expected["failures"]["too_deep"]["error"]["type"]
    )


def test_templates_render_as_the_engine_renders_them(proxy: str, engine: EngineHandle) -> None:
    body = {
        "templates": [
            {"id": "by_title", "template": {"source": {"query": {"match": {"title": "{{text}}"}}}}}
        ],
        "requests": [
            {
                "id": query_id,
                "template_id": "by_title",
                "params": {"text": QUERIES[query_id]},
                "ratings": request["ratings"],
            }
            for query_id, request in zip(QUERIES, rated_requests(PLAIN), strict=True)
        ],
        "metric": {"precision": {"k": 4}},
    }
    direct = post(f"{engine.url}/{PLAIN}/_rank_eval", body)
    ours = post(f"{proxy}/{PLAIN}/_rank_eval", body, {"X-Rerank-Eval": "sidecar"})
    assert direct.status_code == ours.status_code == 200, ours.text
    assert ours.json() == direct.json()


def test_a_reranked_evaluation_equals_the_metric_on_the_models_order(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    metric = {"dcg": {"k": 5, "normalize": True}}
    body = {"requests": rated_requests(RERANKED), "metric": metric}
    response = post(f"{proxy}/{RERANKED}/_rank_eval", body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Status"] == ", ".join(["applied"] * len(QUERIES))
    got = response.json()
    parsed = parse_metric(metric)
    qualities = []
    for query_id, text in QUERIES.items():
        window = post(
            f"{engine.url}/{RERANKED}/_search",
            {"query": {"match": {"title": text}}, "size": WINDOW},
        ).json()["hits"]["hits"]
        scores = tiny_scorers["tiny-text"].score(
            {"text": text}, [{"text": h["_source"]["title"]} for h in window]
        )
        order = sorted(range(len(window)), key=lambda i: (-scores[i], i))[:5]
        hits = [Hit(window[i]["_index"], window[i]["_id"]) for i in order]
        ratings = [RatedDocument(RERANKED, doc, r) for doc, r in RATINGS[query_id].items()]
        quality = parsed.evaluate(query_id, hits, ratings)
        detail = got["details"][query_id]
        assert [h["hit"]["_id"] for h in detail["hits"]] == [h.id for h in hits]
        assert detail["metric_score"] == pytest.approx(quality.metric_score, abs=1e-12)
        assert detail["metric_details"] == quality.to_json()["metric_details"]
        qualities.append(quality.metric_score)
    assert got["metric_score"] == pytest.approx(sum(qualities) / len(qualities), abs=1e-12)


def test_top_level_ext_rerank_reranks_every_request_and_is_never_sent(
    proxy: str, engine: EngineHandle
) -> None:
    body = {
        "requests": rated_requests(PLAIN),
        "metric": {"precision": {"k": 3}},
        "ext": {"rerank": {"profile": "titles"}},
    }
    response = post(f"{proxy}/{PLAIN}/_rank_eval", body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Status"].split(", ") == ["applied"] * len(QUERIES)
    off = post(f"{proxy}/{PLAIN}/_rank_eval", body, {"X-Rerank": "off"})
    # Off: the engine's own answer to the same body refuses our ext (an unknown field).
    assert off.status_code == 400


@pytest.mark.parametrize(
    "broken",
    [
        {"requests": [], "metric": {"precision": {}}},
        {"requests": "x", "metric": {"precision": {}}},
        {"requests": [{"id": "a", "ratings": []}], "metric": {"precision": {}}},
        {"metric": {"precision": {}}},
        {"requests": [{"id": "a", "request": {"query": {"match_all": {}}}, "ratings": []}]},
        {
            "requests": [{"id": "a", "request": {"query": {"match_all": {}}}, "ratings": []}],
            "metric": {"nope": {}},
        },
        {
            "requests": [{"id": "a", "request": {"query": {"match_all": {}}}, "ratings": []}],
            "metric": {"precision": {"k": -1}},
        },
        {
            "requests": [
                {
                    "id": "a",
                    "request": {
                        "query": {"match_all": {}},
                        "aggs": {"t": {"terms": {"field": "brand"}}},
                    },
                    "ratings": [],
                }
            ],
            "metric": {"precision": {}},
        },
        {
            "requests": [
                {
                    "id": "a",
                    "request": {"query": {"match_all": {}}, "highlight": {"fields": {"title": {}}}},
                    "ratings": [],
                }
            ],
            "metric": {"precision": {}},
        },
        {
            "requests": [
                {
                    "id": "a",
                    "request": {"query": {"match_all": {}}},
                    "template_id": "t",
                    "params": {"x": 1},
                    "ratings": [],
                }
            ],
            "metric": {"precision": {}},
        },
        {"requests": [{"id": "a", "params": {"x": 1}, "ratings": []}], "metric": {"precision": {}}},
        {
            "requests": [
                {
                    "id": "a",
                    "request": {"query": {"match_all": {}}},
                    "ratings": [
                        {"_index": RERANKED, "_id": "1", "rating": 1},
                        {"_index": RERANKED, "_id": "1", "rating": 2},
                    ],
                }
            ],
            "metric": {"precision": {}},
        },
        {
            "requests": [{"id": "a", "request": {"query": {"no_such_query": {}}}, "ratings": []}],
            "metric": {"precision": {}},
        },
        {
            "requests": [{"id": "a", "request": {"query": {"match_all": {}}}, "ratings": []}],
            "metric": {"precision": {}},
            "unknown": 1,
        },
    ],
)
def test_invalid_bodies_get_the_engines_own_400(
    proxy: str, engine: EngineHandle, broken: dict[str, Any]
) -> None:
    direct = post(f"{engine.url}/{RERANKED}/_rank_eval", broken)
    through = post(f"{proxy}/{RERANKED}/_rank_eval", broken)
    assert direct.status_code == 400
    assert through.status_code == 400
    assert through.json() == direct.json()


@pytest.fixture(scope="module")
def es_proxy(
    elasticsearch: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    media_dir: Path,
) -> Iterator[str]:
    for index in (PLAIN, RERANKED):
        catalog.load(elasticsearch.client, index, media_dir)
    settings = sidecar_settings(elasticsearch.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_on_elasticsearch_without_rank_eval_the_sidecar_evaluates_the_engines_order(
    es_proxy: str, elasticsearch: EngineHandle
) -> None:
    body = {"requests": rated_requests(PLAIN), "metric": {"precision": {"k": 3}}}
    response = post(f"{es_proxy}/{PLAIN}/_rank_eval", body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Eval"] == "sidecar"
    got = response.json()
    for query_id, text in QUERIES.items():
        top = post(
            f"{elasticsearch.url}/{PLAIN}/_search", {"query": {"match": {"title": text}}, "size": 3}
        ).json()["hits"]["hits"]
        relevant = sum(1 for h in top if RATINGS[query_id].get(h["_id"], 0) >= 1)
        detail = got["details"][query_id]
        assert detail["metric_score"] == relevant / len(top)
        assert detail["metric_details"] == {
            "precision": {"relevant_docs_retrieved": relevant, "docs_retrieved": len(top)}
        }
        assert [h["hit"]["_id"] for h in detail["hits"]] == [h["_id"] for h in top]
    assert got["failures"] == {}


def test_on_elasticsearch_an_invalid_body_is_a_400_naming_the_key(es_proxy: str) -> None:
    body = {
        "requests": [
            {"id": "a", "request": {"query": {"match_all": {}}, "aggs": {}}, "ratings": []}
        ],
        "metric": {"precision": {}},
        "ext": {"rerank": {}},
    }
    response = post(f"{es_proxy}/{RERANKED}/_rank_eval", body)
    assert response.status_code == 400
    assert "requests.0.request.aggs" in response.json()["error"]["reason"]
