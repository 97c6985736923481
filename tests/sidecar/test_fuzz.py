"""Property-based fuzzing of what clients send (hypothesis), against a real sidecar in front of a
real engine and a real scoring worker: search bodies, ``ext.rerank`` objects and rerank-API
bodies. No answer is a 500 the engine did not give itself, and every 4xx the sidecar gives
names the offending key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.conftest import API_KEY, EngineHandle, ScoringWorkerHandle
from tests.sidecar import catalog

INDEX = "fuzz-products"
EXT_KEYS = [
    "profile",
    "model",
    "window",
    "query",
    "instruction",
    "fields",
    "combine",
    "min_score",
    "timeout_ms",
    "on_error",
    "enabled",
    "max_doc_tokens",
    "query_context",
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["title", "description", "red shoes", "_score", "rrf", "weighted", "fail"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Numbers and literals JSON has no room for, written as a lenient writer would.
odd_literals = st.sampled_from(["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1E2", "-0"])


@pytest.fixture(scope="module")
def sidecar(
    opensearch: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    media_dir: Path,
) -> Iterator[str]:
    catalog.load(opensearch.client, INDEX, media_dir)
    config = Settings(
        models=tiny_registry,
        upstream={"urls": [opensearch.url]},
        celery={"broker_url": scoring_worker.worker.broker_url},
        api={"keys": [API_KEY], "default_model": "tiny-text", "max_documents": 20},
        rerank={
            "profiles": {
                "titles": {"model": "tiny-text", "window": 5, "fields": {"text": "title"}}
            },
            "rules": [{"index": INDEX, "profile": "titles"}],
            "window": 5,
            "max_window": 20,
            "timeout_ms": 20_000,
        },
    )
    with serve_in_thread(create_app(config)) as url:
        yield url


def _post(url: str, raw: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(url, content=raw, headers={"Content-Type": content_type}, timeout=60)


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return ""
    return str(error.get("reason", "")) if isinstance(error, dict) else ""


def _assert_answered(sidecar: str, engine: EngineHandle, raw: bytes, path: str) -> None:
    through = _post(f"{sidecar}{path}", raw)
    if through.status_code >= 500:
        direct = _post(f"{engine.url}{path}", raw)
        assert direct.status_code == through.status_code, (raw, through.text)
    if 400 <= through.status_code < 500 and _reason(through).startswith("[ext.rerank"):
        return  # the sidecar's own refusal, naming the key (checked in detail below)
    if 400 <= through.status_code < 500:
        # Not the sidecar's words: the engine refused what it was sent.
        assert "X-Rerank-Status" not in through.headers or through.headers[
            "X-Rerank-Status"
        ].startswith("skipped"), through.headers


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "query",
                "size",
                "from",
                "sort",
                "_source",
                "ext",
                "min_score",
                "track_total_hits",
                "search_after",
                "stored_fields",
                "aggs",
            ]
        ),
        json_values,
    )
)
def test_any_search_body_is_answered_by_the_engine_or_reranked_never_a_500(
    sidecar: str, opensearch: EngineHandle, body: dict[str, Any]
) -> None:
    body.setdefault("query", {"match": {"title": "red shoes"}})
    _assert_answered(sidecar, opensearch, json.dumps(body).encode(), f"/{INDEX}/_search")


@FUZZ
@given(key=st.sampled_from(["size", "from", "min_score", "sort", "query"]), literal=odd_literals)
def test_numbers_json_cannot_hold_are_the_engines_to_refuse(
    sidecar: str, opensearch: EngineHandle, key: str, literal: str
) -> None:
    raw = f'{{"query": {{"match": {{"title": "red"}}}}, "{key}": {literal}}}'.encode()
    _assert_answered(sidecar, opensearch, raw, f"/{INDEX}/_search")


@FUZZ
@given(depth=st.integers(min_value=1, max_value=5000), bools=st.integers(min_value=1, max_value=60))
def test_deeply_nested_bodies_are_the_engines_to_judge(
    sidecar: str, opensearch: EngineHandle, depth: int, bools: int
) -> None:
    # Deep arrays under a key the engine refuses at once (the sidecar's parser and writer give up
    # at their own depths and pass the body on), and bool queries nested as deep as the engine
    # survives: OpenSearch 2.19 dies of a StackOverflowError on bool queries a few hundred
    # levels deep, sent directly or through the sidecar alike.
    query = '{"bool": {"must": [' * bools + '{"match": {"title": "red"}}' + "]}}" * bools
    deep = "[" * depth + "]" * depth
    raw = f'{{"query": {query}, "_deep": {deep}, "ext": {{"rerank": {{"window": 3}}}}}}'
    _assert_answered(sidecar, opensearch, raw.encode(), f"/{INDEX}/_search")


ext_objects = st.dictionaries(
    st.sampled_from(EXT_KEYS) | st.text(max_size=6), json_values, max_size=5
)


@FUZZ
@given(ext=ext_objects)
def test_a_bad_ext_rerank_is_a_400_naming_its_key_and_a_good_one_reranks(
    sidecar: str, ext: dict[str, Any]
) -> None:
    ext.pop("query", None)  # media in a query would be fetched: covered by the media tests
    body = {"query": {"match": {"title": "red shoes"}}, "size": 3, "ext": {"rerank": ext}}
    response = _post(f"{sidecar}/{INDEX}/_search", json.dumps(body).encode())
    assert response.status_code in (200, 400, 502, 504), response.text
    if response.status_code == 400:
        reason = _reason(response)
        assert reason.startswith("[ext.rerank"), reason
        named = reason[1:].split("]", 1)[0].split(".")
        assert len(named) == 2 or named[2] in ext, (reason, ext)
    else:
        status = response.headers["X-Rerank-Status"]
        assert status.split(";")[0] in ("applied", "skipped", "degraded", "failed"), status


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "model",
                "query",
                "documents",
                "top_n",
                "return_documents",
                "instruction",
                "max_tokens_per_doc",
                "rank_fields",
            ]
        )
        | st.text(max_size=6),
        json_values,
        max_size=6,
    )
)
def test_any_rerank_api_body_is_answered_never_a_500(sidecar: str, body: dict[str, Any]) -> None:
    body.setdefault("query", "red shoes")
    body.setdefault("documents", ["red running shoes", "a blue jacket"])
    response = httpx.post(
        f"{sidecar}/v1/rerank",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert response.status_code < 500 or response.status_code in (502, 504), response.text
    if 400 <= response.status_code < 500:
        error = response.json()["error"]
        assert error["param"], error  # names the offending field
        assert error["param"].split(".")[0].split("[")[0] in body, (error, body)


rated = st.fixed_dictionaries(
    {"id": st.text(max_size=4), "ratings": st.lists(json_values, max_size=3)},
    optional={
        "request": st.one_of(json_values, st.just({"query": {"match": {"title": "red"}}})),
        "template_id": st.text(max_size=3),
        "params": json_values,
        "summary_fields": json_values,
    },
)


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "requests": st.one_of(st.lists(rated, max_size=3), json_values),
            "metric": st.one_of(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "precision",
                            "recall",
                            "dcg",
                            "mean_reciprocal_rank",
                            "expected_reciprocal_rank",
                            "nope",
                        ]
                    ),
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "k",
                                "relevant_rating_threshold",
                                "ignore_unlabeled",
                                "normalize",
                                "maximum_relevance",
                                "unknown_doc_rating",
                                "x",
                            ]
                        ),
                        scalars,
                        max_size=3,
                    ),
                    max_size=2,
                ),
                json_values,
            ),
            "templates": json_values,
            "max_concurrent_searches": scalars,
            "ext": st.one_of(st.just({"rerank": {"window": 3}}), json_values),
        },
    )
)
def test_any_rank_eval_body_is_evaluated_or_refused_never_a_500(
    sidecar: str, opensearch: EngineHandle, body: dict[str, Any]
) -> None:
    _assert_answered(sidecar, opensearch, json.dumps(body).encode(), f"/{INDEX}/_rank_eval")
