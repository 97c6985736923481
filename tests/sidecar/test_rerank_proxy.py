"""Reranked searches through the sidecar, against real engines, Redis and a scoring worker.

Every expected order is computed here from the tiny model's scores of the same pairs, scored
directly with load_scorer, and the engine's own baseline answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog

INDEX = "catalog-products"
PLAIN_INDEX = "plain-products"
WINDOW = 8
QUERY = {"match": {"title": "red shoes"}}
QUERY_TEXT = "red shoes"
TOL = 1e-5


def rerank_settings(engine_url: str, broker_url: str, registry: dict[str, Any]) -> Settings:
    return Settings(
        models=registry,
        upstream={"urls": [engine_url]},
        celery={"broker_url": broker_url},
        dispatch={"cache_enabled": False},
        rerank={
            "profiles": {
                "catalog": {
                    "model": "tiny-vl",
                    "window": WINDOW,
                    "fields": {"text": ["title", "description"], "image": ["image"]},
                },
                "text-only": {"model": "tiny-text", "fields": {"text": "title"}},
            },
            "rules": [{"index": "catalog-*", "profile": "catalog"}],
            "timeout_ms": 120_000,
            "max_timeout_ms": 120_000,
            "window": WINDOW,
            "max_window": 20,
        },
    )


@pytest.fixture(
    scope="module", params=["opensearch", "elasticsearch", "opensearch3", "elasticsearch9"]
)
def engine(request: pytest.FixtureRequest, media_dir: Path) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    catalog.load(handle.client, INDEX, media_dir)
    catalog.load(handle.client, PLAIN_INDEX, media_dir)
    return handle


@pytest.fixture(scope="module")
def proxy(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> Iterator[str]:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    merged = {"Content-Type": "application/json", **(headers or {})}
    return httpx.post(url, content=content, headers=merged, timeout=180)


def direct_hits(engine: EngineHandle, body: dict[str, Any], index: str = INDEX) -> list[Any]:
    response = post(f"{engine.url}/{index}/_search", body)
    assert response.status_code == 200, response.text
    hits: list[Any] = response.json()["hits"]["hits"]
    return hits


def reference_scores(
    scorers: dict[str, Any], hits: list[Any], query: str = QUERY_TEXT, model: str = "tiny-vl"
) -> list[float]:
    """The tiny model's scores of (query, hit) pairs, in process, documents built the way the
    catalog profile says: title and description as text, the image field as the image."""
    if model == "tiny-vl":
        docs = [
            {
                "text": f"{h['_source']['title']}\n{h['_source']['description']}",
                "image": h["_source"]["image"],
            }
            for h in hits
        ]
    else:
        docs = [{"text": h["_source"]["title"]} for h in hits]
    scores: list[float] = scorers[model].score({"text": query}, docs)
    return scores


def reranked_ids(hits: list[Any], scores: list[float]) -> list[str]:
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [hits[i]["_id"] for i in order]


def ids(response: httpx.Response) -> list[str]:
    return [h["_id"] for h in response.json()["hits"]["hits"]]


def test_rule_reranks_the_window_by_the_models_scores(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    scores = reference_scores(tiny_scorers, baseline)
    expected = reranked_ids(baseline, scores)

    response = post(f"{proxy}/{INDEX}/_search", {"query": QUERY, "size": 5})

    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Status"] == "applied"
    assert response.headers["X-Rerank-Model"] == "tiny-vl"
    assert float(response.headers["X-Rerank-Took-Ms"]) > 0
    if engine.name.startswith("elasticsearch"):
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    data = response.json()
    assert ids(response) == expected[:5]
    by_id = {h["_id"]: s for h, s in zip(baseline, scores, strict=True)}
    original = {h["_id"]: (rank, h["_score"]) for rank, h in enumerate(baseline, start=1)}
    for hit in data["hits"]["hits"]:
        assert hit["_score"] == pytest.approx(by_id[hit["_id"]], abs=TOL)
        assert hit["fields"]["_rerank_score"][0] == pytest.approx(by_id[hit["_id"]], abs=TOL)
        assert hit["fields"]["_rerank_original_rank"] == [original[hit["_id"]][0]]
        assert hit["fields"]["_rerank_original_score"] == [original[hit["_id"]][1]]
        assert set(hit["_source"]) >= {"title", "description", "image", "variants"}
    assert data["hits"]["max_score"] == pytest.approx(max(scores), abs=TOL)
    direct_total = post(f"{engine.url}/{INDEX}/_search", {"query": QUERY}).json()["hits"]["total"]
    assert data["hits"]["total"] == direct_total


def test_paging_across_the_window_boundary(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    everything = direct_hits(engine, {"query": QUERY, "size": 12})
    window = everything[:WINDOW]
    expected = reranked_ids(window, reference_scores(tiny_scorers, window)) + [
        h["_id"] for h in everything[WINDOW:]
    ]

    page = post(f"{proxy}/{INDEX}/_search", {"query": QUERY, "from": 6, "size": 4})
    url_page = httpx.get(
        f"{proxy}/{INDEX}/_search",
        params={"from": "6", "size": "4", "q": "title:(red shoes)"},
        timeout=180,
    )

    assert page.status_code == 200, page.text
    assert ids(page) == expected[6:10]
    # Hits beyond the window keep the engine's score and carry no rerank fields.
    beyond = page.json()["hits"]["hits"][2:]
    assert [h["_score"] for h in beyond] == [h["_score"] for h in everything[WINDOW:10]]
    assert all("_rerank_score" not in h.get("fields", {}) for h in beyond)
    assert url_page.status_code == 200, url_page.text
    assert url_page.headers["X-Rerank-Status"] == "applied"
    assert len(ids(url_page)) == 4


@pytest.mark.parametrize(
    ("source", "params", "expected_keys"),
    [
        (["title"], {}, {"title"}),
        ({"includes": ["title", "variants.color"]}, {}, {"title", "variants"}),
        ({"excludes": ["description", "image"]}, {}, {"title", "brand", "tags", "variants"}),
        (None, {"_source_includes": "brand"}, {"brand"}),
        (False, {}, None),
    ],
)
def test_the_clients_source_view_is_restored(
    proxy: str,
    engine: EngineHandle,
    tiny_scorers: dict[str, Any],
    source: Any,
    params: dict[str, str],
    expected_keys: set[str] | None,
) -> None:
    body: dict[str, Any] = {"query": QUERY, "size": 3}
    if source is not None:
        body["_source"] = source
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    expected = reranked_ids(baseline, reference_scores(tiny_scorers, baseline))[:3]

    response = httpx.post(f"{proxy}/{INDEX}/_search", json=body, params=params, timeout=180)

    assert response.status_code == 200, response.text
    assert ids(response) == expected  # scored on fields the client did not ask to see
    for hit in response.json()["hits"]["hits"]:
        if expected_keys is None:
            assert "_source" not in hit
        else:
            assert set(hit["_source"]) == expected_keys
    if source == {"includes": ["title", "variants.color"]}:
        first = response.json()["hits"]["hits"][0]["_source"]
        assert first["variants"] == [{"color": "red"}, {"color": "black"}]


def test_stored_fields_without_source_stay_without_source(proxy: str) -> None:
    response = post(
        f"{proxy}/{INDEX}/_search", {"query": QUERY, "size": 2, "stored_fields": ["brand"]}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Status"] == "applied"
    assert all("_source" not in h for h in response.json()["hits"]["hits"])


def test_aggregations_and_highlight_are_the_engines(proxy: str, engine: EngineHandle) -> None:
    body = {
        "query": QUERY,
        "size": 4,
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "highlight": {"fields": {"title": {}}},
    }
    direct = post(f"{engine.url}/{INDEX}/_search", {**body, "size": WINDOW}).json()
    response = post(f"{proxy}/{INDEX}/_search", body)

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["aggregations"] == direct["aggregations"]
    highlights = {h["_id"]: h["highlight"] for h in direct["hits"]["hits"]}
    for hit in data["hits"]["hits"]:
        assert hit["highlight"] == highlights[hit["_id"]]
    assert data["_shards"] == direct["_shards"]


def test_weighted_and_rrf_combine(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    scores = reference_scores(tiny_scorers, baseline)
    weighted = {
        h["_id"]: 0.2 * h["_score"] + 3.0 * s for h, s in zip(baseline, scores, strict=True)
    }
    rerank_rank = {h: r for r, h in enumerate(reranked_ids(baseline, scores), start=1)}
    rrf = {
        h["_id"]: 1 / (10 + rank) + 1 / (10 + rerank_rank[h["_id"]])
        for rank, h in enumerate(baseline, start=1)
    }

    for combine, expected in (
        ({"mode": "weighted", "query_weight": 0.2, "rerank_weight": 3.0}, weighted),
        ({"mode": "rrf", "rank_constant": 10}, rrf),
    ):
        body = {"query": QUERY, "size": WINDOW, "ext": {"rerank": {"combine": combine}}}
        response = post(f"{proxy}/{INDEX}/_search", body)
        assert response.status_code == 200, response.text
        hits = response.json()["hits"]["hits"]
        assert ids(response) == sorted(expected, key=lambda i: -expected[i])
        for hit in hits:
            assert hit["_score"] == pytest.approx(expected[hit["_id"]], abs=1e-4)


def test_min_score_drops_window_hits_below_it(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    scores = reference_scores(tiny_scorers, baseline)
    # Halfway between two neighbouring scores: a score equal to the threshold would decide on
    # the last bit, which batch composition and padding may change (within TOL).
    ordered = sorted(scores)
    middle = len(ordered) // 2
    threshold = (ordered[middle - 1] + ordered[middle]) / 2
    assert ordered[middle] - ordered[middle - 1] > 2 * TOL, "the test needs distinct scores"
    kept = [h for h, s in zip(baseline, scores, strict=True) if s >= threshold]

    body = {"query": QUERY, "size": WINDOW, "ext": {"rerank": {"min_score": threshold}}}
    response = post(f"{proxy}/{INDEX}/_search", body)

    assert response.status_code == 200, response.text
    got = ids(response)
    assert set(got) == {h["_id"] for h in kept}
    assert all(
        h["fields"]["_rerank_score"][0] >= threshold for h in response.json()["hits"]["hits"]
    )


def test_ext_rerank_on_an_index_without_rule(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW}, PLAIN_INDEX)
    scores = reference_scores(tiny_scorers, baseline, "shoes for the rain", model="tiny-text")
    body = {
        "query": QUERY,
        "size": 5,
        "ext": {"rerank": {"profile": "text-only", "query": {"text": "shoes for the rain"}}},
    }

    response = post(f"{proxy}/{PLAIN_INDEX}/_search", body)

    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Model"] == "tiny-text"
    assert ids(response) == reranked_ids(baseline, scores)[:5]


def test_switched_off_by_header_or_enabled_false(proxy: str, engine: EngineHandle) -> None:
    baseline = [h["_id"] for h in direct_hits(engine, {"query": QUERY, "size": 5})]
    off = post(f"{proxy}/{INDEX}/_search", {"query": QUERY, "size": 5}, {"X-Rerank": "off"})
    disabled = post(
        f"{proxy}/{INDEX}/_search",
        {"query": QUERY, "size": 5, "ext": {"rerank": {"enabled": False}}},
    )
    assert off.headers["X-Rerank-Status"] == "skipped; reason=header"
    assert disabled.headers["X-Rerank-Status"] == "skipped; reason=disabled"
    assert ids(off) == baseline
    assert ids(disabled) == baseline


def test_no_query_text_is_skipped_with_the_reason(proxy: str) -> None:
    response = post(f"{proxy}/{INDEX}/_search", {"query": {"match_all": {}}, "size": 3})
    assert response.status_code == 200
    assert response.headers["X-Rerank-Status"] == "skipped; reason=no_query_text"
    sorted_search = post(
        f"{proxy}/{INDEX}/_search", {"query": QUERY, "sort": [{"brand": "asc"}], "size": 3}
    )
    assert sorted_search.headers["X-Rerank-Status"] == "skipped; reason=sort"


def test_msearch_mixes_reranked_and_plain_searches(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    expected = reranked_ids(baseline, reference_scores(tiny_scorers, baseline))
    plain = direct_hits(engine, {"query": QUERY, "size": 3}, PLAIN_INDEX)
    lines = [
        {"index": INDEX},
        {"query": QUERY, "size": 3},
        {"index": PLAIN_INDEX},
        {"query": QUERY, "size": 3},
        {"index": INDEX},
        {"query": QUERY, "size": 3, "ext": {"rerank": {"window": 99}}},
        {"index": PLAIN_INDEX},
        {"query": QUERY, "size": 3, "ext": {"rerank": {"profile": "catalog"}}},
    ]
    ndjson = "".join(json.dumps(line) + "\n" for line in lines).encode()

    response = post(f"{proxy}/_msearch", ndjson, {"Content-Type": "application/x-ndjson"})

    assert response.status_code == 200, response.text
    first, second, third, fourth = response.json()["responses"]
    assert [h["_id"] for h in first["hits"]["hits"]] == expected[:3]
    assert [h["_id"] for h in second["hits"]["hits"]] == [h["_id"] for h in plain]
    assert third["status"] == 400 and "ext.rerank.window" in third["error"]["reason"]
    assert len(fourth["hits"]["hits"]) == 3
    statuses = response.headers["X-Rerank-Status"].split(", ")
    assert statuses == [
        "applied",
        "skipped; reason=no_rule",
        "failed; reason=ext_rerank",
        "applied",
    ]


@pytest.mark.parametrize(
    ("rerank", "path"),
    [
        ({"windw": 5}, "ext.rerank.windw"),
        ({"window": "many"}, "ext.rerank.window"),
        ({"window": 500}, "ext.rerank.window"),
        ({"model": "no-such-model"}, "ext.rerank.model"),
        ({"profile": "nope"}, "ext.rerank.profile"),
        ({"combine": {"mode": "max"}}, "ext.rerank.combine.mode"),
        ({"fields": {"text": [1]}}, "ext.rerank.fields.text.0"),
        ([1, 2], "ext.rerank"),
    ],
)
def test_bad_ext_rerank_is_a_400_naming_the_key(proxy: str, rerank: Any, path: str) -> None:
    response = post(f"{proxy}/{PLAIN_INDEX}/_search", {"query": QUERY, "ext": {"rerank": rerank}})
    assert response.status_code == 400
    error = response.json()
    assert error["status"] == 400
    assert error["error"]["type"] == "illegal_argument_exception"
    assert error["error"]["reason"].startswith(f"[{path}]")
    assert error["error"]["root_cause"][0]["reason"] == error["error"]["reason"]


def test_the_official_client_gets_its_own_exception_for_a_bad_ext(
    proxy: str, engine: EngineHandle
) -> None:
    client = type(engine.client)(proxy)
    if engine.name.startswith("elasticsearch"):
        from elasticsearch import BadRequestError as expected
    else:
        from opensearchpy import RequestError as expected  # type: ignore[assignment]
    with pytest.raises(expected, match=r"ext\.rerank\.x"):
        client.search(index=PLAIN_INDEX, body={"query": QUERY, "ext": {"rerank": {"x": 1}}})
    ok = client.search(index=INDEX, body={"query": QUERY, "size": 2})
    assert len(ok["hits"]["hits"]) == 2
    client.close()


def test_engine_errors_and_malformed_bodies_reach_the_client_unchanged(
    proxy: str, engine: EngineHandle
) -> None:
    for path, body in (
        ("catalog-missing/_search", json.dumps({"query": QUERY}).encode()),
        (f"{INDEX}/_search", b'{"query": {"match": '),
        (f"{INDEX}/_search", json.dumps({"query": {"no_such_query": {}}}).encode()),
    ):
        direct = post(f"{engine.url}/{path}", body)
        through = post(f"{proxy}/{path}", body)
        assert through.status_code == direct.status_code >= 400
        assert through.content == direct.content


def test_a_body_too_large_to_inspect_goes_to_the_engine_untouched(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    small = settings.model_copy(
        update={"server": settings.server.model_copy(update={"max_inspect_bytes": 2000})}
    )
    big = {"query": {"bool": {"should": [QUERY, {"match": {"description": "x" * 5000}}]}}}
    with serve_in_thread(create_app(small)) as url:
        response = post(f"{url}/{INDEX}/_search", big)
    direct = post(f"{engine.url}/{INDEX}/_search", big)
    assert response.status_code == direct.status_code == 200
    assert response.headers["X-Rerank-Status"] == "skipped; reason=body_too_large"
    assert ids(response) == [h["_id"] for h in direct.json()["hits"]["hits"]]


def test_template_searches_pass_through(proxy: str, engine: EngineHandle) -> None:
    body = {"source": {"query": {"match": {"title": "{{q}}"}}, "size": 3}, "params": {"q": "red"}}
    direct = post(f"{engine.url}/{INDEX}/_search/template", body)
    through = post(f"{proxy}/{INDEX}/_search/template", body)
    # The integ-test distributions have no lang-mustache: both answer the same error.
    assert through.status_code == direct.status_code
    assert "X-Rerank-Status" not in through.headers
    assert _strip_took(through.content) == _strip_took(direct.content)


def _strip_took(raw: bytes) -> Any:
    data = json.loads(raw)
    data.pop("took", None)
    return data


def test_opensearch_query_context_syntax(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    if not engine.name.startswith("opensearch"):
        pytest.skip("OpenSearch's rerank-processor syntax")
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    by_text = reranked_ids(baseline, reference_scores(tiny_scorers, baseline, "warm wool"))
    body = {"query": QUERY, "size": 4, "ext": {"rerank": {"query_context": {}}}}

    with_text = post(
        f"{proxy}/{INDEX}/_search",
        {**body, "ext": {"rerank": {"query_context": {"query_text": "warm wool"}}}},
    )
    with_path = post(
        f"{proxy}/{INDEX}/_search",
        {
            **body,
            "ext": {"rerank": {"query_context": {"query_text_path": "query.match.title"}}},
        },
    )
    # On an index without a sidecar rule, a query_context-only ext.rerank is the engine's own
    # business: it reaches OpenSearch untouched (these distributions have no rerank processor,
    # so both answers are the same error).
    plain = {"query": QUERY, "ext": {"rerank": {"query_context": {"query_text": "x"}}}}
    direct = post(f"{engine.url}/{PLAIN_INDEX}/_search", plain)
    through = post(f"{proxy}/{PLAIN_INDEX}/_search", plain)

    assert with_text.status_code == 200, with_text.text
    assert ids(with_text) == by_text[:4]
    assert with_path.headers["X-Rerank-Status"] == "applied"
    baseline_scores = reference_scores(tiny_scorers, baseline, "red shoes")
    assert ids(with_path) == reranked_ids(baseline, baseline_scores)[:4]
    assert through.status_code == direct.status_code
    assert through.content == direct.content
    assert "X-Rerank-Status" not in through.headers


def test_repeated_search_is_answered_from_the_score_cache(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> None:
    settings = rerank_settings(engine.url, scoring_worker.worker.broker_url, tiny_registry)
    cached = settings.model_copy(
        update={"dispatch": settings.dispatch.model_copy(update={"cache_enabled": True})}
    )
    body = {
        "query": QUERY,
        "size": 5,
        "ext": {"rerank": {"query": {"text": f"cache {engine.name}"}}},
    }
    with serve_in_thread(create_app(cached)) as url:
        first = post(f"{url}/{INDEX}/_search", body)
        pairs_after_first = scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-vl")
        second = post(f"{url}/{INDEX}/_search", body)
        pairs_after_second = scoring_worker.metric("rerank_worker_pairs_scored_total", "tiny-vl")

    assert first.headers["X-Rerank-Status"] == second.headers["X-Rerank-Status"] == "applied"
    assert pairs_after_first > 0
    assert pairs_after_second == pairs_after_first  # no pair reached the model again
    assert ids(first) == ids(second)
    assert [h["_score"] for h in first.json()["hits"]["hits"]] == [
        h["_score"] for h in second.json()["hits"]["hits"]
    ]


def test_a_compressed_search_body_is_reranked(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    import gzip

    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    expected = reranked_ids(baseline, reference_scores(tiny_scorers, baseline))
    body = gzip.compress(json.dumps({"query": QUERY, "size": 3}).encode())

    response = post(f"{proxy}/{INDEX}/_search", body, {"Content-Encoding": "gzip"})

    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Status"] == "applied"
    assert ids(response) == expected[:3]


def test_the_official_client_with_compression_is_reranked(proxy: str, engine: EngineHandle) -> None:
    client = type(engine.client)(proxy, http_compress=True)
    result = client.search(index=INDEX, body={"query": QUERY, "size": 2})
    assert [h["fields"]["_rerank_original_rank"] for h in result["hits"]["hits"]]
    client.close()


def test_filter_path_is_applied_to_the_reranked_answer_as_the_engine_would(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    expected = reranked_ids(baseline, reference_scores(tiny_scorers, baseline))
    response = post(
        f"{proxy}/{INDEX}/_search?filter_path=took,hits.hits._id", {"query": QUERY, "size": 5}
    )
    assert response.headers["X-Rerank-Status"] == "applied"
    body = response.json()
    assert set(body) == {"took", "hits"}
    assert body["hits"] == {"hits": [{"_id": hit_id} for hit_id in expected[:5]]}


def test_filter_path_on_an_msearch_is_applied_to_the_reranked_answer(
    proxy: str, engine: EngineHandle, tiny_scorers: dict[str, Any]
) -> None:
    baseline = direct_hits(engine, {"query": QUERY, "size": WINDOW})
    expected = reranked_ids(baseline, reference_scores(tiny_scorers, baseline))
    lines = [{"index": INDEX}, {"query": QUERY, "size": 3}] * 2
    raw = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = httpx.post(
        f"{proxy}/_msearch?filter_path=-responses.took,-responses.hits.hits._source,"
        "-responses.hits.hits.fields,-responses.hits.hits._index,-responses.hits.hits._score,"
        "-responses.hits.total,-responses.hits.max_score,-responses._shards,-responses.timed_out,"
        "-responses.status,-took",
        content=raw,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=180,
    )
    assert response.headers["X-Rerank-Status"] == "applied, applied"
    top = {"hits": {"hits": [{"_id": hit_id} for hit_id in expected[:3]]}}
    assert response.json() == {"responses": [top, top]}


def test_a_filter_path_that_shows_no_hit_is_the_engines_to_apply(
    proxy: str, engine: EngineHandle
) -> None:
    body = {"query": QUERY, "size": 3}
    through = post(f"{proxy}/{INDEX}/_search?filter_path=_shards", body)
    direct = post(f"{engine.url}/{INDEX}/_search?filter_path=_shards", body)
    assert through.headers["X-Rerank-Status"] == "skipped; reason=filter_path"
    assert through.json() == direct.json()


def test_a_lone_surrogate_in_the_query_text_still_reranks(proxy: str) -> None:
    raw = b'{"query": {"match": {"title": "red \\ud800 shoes"}}, "size": 3}'
    response = post(f"{proxy}/{INDEX}/_search", raw)
    assert response.status_code == 200
    assert response.headers["X-Rerank-Status"] == "applied"
