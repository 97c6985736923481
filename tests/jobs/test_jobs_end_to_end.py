"""Bulk jobs through the real sidecar, a real job runner, a real scoring worker (tiny model),
Redis and the engines (OpenSearch 2, Elasticsearch 8): a 200-query job whose every result
document is checked against load_scorer's scores and the proxy's order for the same search, and
every bad input refused with the field named and nothing made."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sidecar.jobs.results import result_id
from sidecar.jobs.spec import DEFAULT_SEARCH, fill
from sidecar.testbed.job_runner import RunningJobRunner
from tests.conftest import EngineHandle, ScoringWorkerHandle
from tests.jobs.bed import (
    AUTH,
    SOURCE,
    WINDOW,
    config,
    drop_job_indices,
    load_source,
    queries,
    result_docs,
    submit,
    wait_done,
)


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def engine(request: pytest.FixtureRequest) -> Iterator[EngineHandle]:
    handle: EngineHandle = request.getfixturevalue(request.param)
    load_source(handle)
    yield handle
    drop_job_indices(handle)


@pytest.fixture(scope="module")
def jobs_config(
    engine: EngineHandle, scoring_worker: ScoringWorkerHandle, tiny_registry: dict[str, Any]
) -> dict[str, Any]:
    return config(engine.url, scoring_worker.worker.broker_url, tiny_registry)


def test_a_200_query_job_writes_the_proxys_order_with_load_scorers_scores(
    engine: EngineHandle,
    sidecar: str,
    runner: RunningJobRunner,
    tiny_scorers: dict[str, Any],
) -> None:
    target = f"jobs-results-{engine.name}"
    engine.client.indices.delete(index=target, ignore_unavailable=True)
    spec = {
        "index": SOURCE,
        "queries": {"inline": queries()},
        "rerank": {"profile": "titles"},
        "output": {"index": target},
        "name": "two hundred",
    }
    response = submit(sidecar, spec)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    final = wait_done(sidecar, job_id)
    assert final["state"] == "done", final
    totals = final["totals"]
    assert (totals["queries"], totals["done"], totals["failed"]) == (200, 200, 0)

    documents = result_docs(engine, target, job_id)
    assert len(documents) == totals["documents"]
    by_query: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_query.setdefault(document["query_id"], []).append(document)
    scorer = tiny_scorers["tiny-text"]
    checked = 0
    for query in queries():
        rows = sorted(by_query.get(query["id"], []), key=lambda d: d["rank"])
        body = fill(DEFAULT_SEARCH, query["text"])
        proxied = httpx.post(
            f"{sidecar}/{SOURCE}/_search",
            json={**body, "size": WINDOW, "ext": {"rerank": {"profile": "titles"}}},
            timeout=60,
        ).json()["hits"]["hits"]
        assert [d["hit_id"] for d in rows] == [h["_id"] for h in proxied], query
        if not rows:
            continue
        expected = scorer.score(
            {"text": query["text"]}, [{"text": h["_source"]["title"]} for h in proxied]
        )
        for row, hit, score in zip(rows, proxied, expected, strict=True):
            assert row["_id"] == result_id(job_id, query["id"], SOURCE, hit["_id"])
            assert row["rerank_score"] == pytest.approx(score, abs=1e-5)
            assert row["score"] == pytest.approx(hit["_score"], abs=1e-6)
            assert row["original_rank"] == hit["fields"]["_rerank_original_rank"][0]
            assert (row["model"], row["profile"], row["query_text"]) == (
                "tiny-text", "titles", query["text"],
            )  # fmt: skip
            checked += 1
    assert checked == len(documents) > 200  # every document was compared


def test_bad_input_is_refused_naming_the_field_and_nothing_is_made(
    engine: EngineHandle, sidecar: str, redis_client: Any
) -> None:
    fresh = f"jobs-never-made-{engine.name}"
    engine.client.indices.delete(index=fresh, ignore_unavailable=True)
    base = {"index": SOURCE, "rerank": {"profile": "titles"}, "output": {"index": fresh}}
    inline = {"inline": [{"id": "a", "text": "red shoes"}]}
    before = redis_client.zcard("rerank:jobs")

    def refused(spec: Any, status: int, field: str, **kwargs: Any) -> None:
        if "content" in kwargs:
            headers = {**AUTH, **kwargs.pop("headers")}
            response = httpx.post(f"{sidecar}/_rerank/jobs", headers=headers, timeout=60, **kwargs)
        else:
            response = submit(sidecar, spec, **kwargs)
        assert response.status_code == status, response.text
        assert f"[{field}]" in response.json()["error"]["reason"], response.text

    refused({**base, "index": "no-such-index", "queries": inline}, 400, "index")
    refused({**base, "queries": {"inline": []}}, 400, "queries")
    refused({**base, "queries": inline, "rerank": {"profile": "nope"}}, 400, "rerank.profile")
    refused({**base, "queries": inline, "rerank": {"model": "nope"}}, 400, "rerank.model")
    refused({**base, "queries": inline, "rerank": {"windw": 3}}, 400, "rerank.windw")
    refused({**base, "queries": {"path": "/etc/passwd"}}, 400, "queries.path")
    refused({**base, "queries": inline, "credentials": "nope"}, 400, "credentials")
    upload = json.dumps(base).encode() + b'\n{"id": "a", "text": "x"}\n{"id": "b", "tex'
    refused(None, 400, "queries[line 3]", content=upload,
            headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    empty = json.dumps(base).encode() + b"\n\n"
    refused(None, 400, "queries", content=empty, headers={"Content-Type": "application/x-ndjson"})
    incompatible = f"jobs-incompatible-{engine.name}"
    engine.client.indices.delete(index=incompatible, ignore_unavailable=True)
    engine.client.indices.create(
        index=incompatible, body={"mappings": {"properties": {"rank": {"type": "keyword"}}}}
    )
    refused({**base, "queries": inline, "output": {"index": incompatible}}, 400, "output.index")
    assert not engine.client.indices.exists(index=fresh)
    assert redis_client.zcard("rerank:jobs") == before

    missing = httpx.get(f"{sidecar}/_rerank/jobs/0000", headers=AUTH, timeout=10)
    assert missing.status_code == 404
    assert "[id]" in missing.json()["error"]["reason"]
    assert httpx.get(f"{sidecar}/_rerank/jobs", timeout=10).status_code == 401
    wrong = httpx.get(f"{sidecar}/_rerank/jobs", headers={"Authorization": "Bearer x"}, timeout=10)
    assert wrong.status_code == 401


def test_a_second_resume_of_a_running_job_and_a_cancel_of_an_ended_one_are_conflicts(
    engine: EngineHandle, sidecar: str, runner: RunningJobRunner
) -> None:
    spec = {
        "index": SOURCE,
        "queries": {"inline": queries()[:60]},
        "rerank": {"profile": "titles"},
        "output": {"warm_cache": True},
        "limits": {"searches": 1},
    }
    job_id = submit(sidecar, spec).json()["id"]
    resumed = httpx.post(f"{sidecar}/_rerank/jobs/{job_id}/_resume", headers=AUTH, timeout=10)
    assert resumed.status_code == 409, resumed.text
    cancelled = httpx.delete(f"{sidecar}/_rerank/jobs/{job_id}", headers=AUTH, timeout=90)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = httpx.delete(f"{sidecar}/_rerank/jobs/{job_id}", headers=AUTH, timeout=10)
    assert again.status_code == 409
    resumed = httpx.post(f"{sidecar}/_rerank/jobs/{job_id}/_resume", headers=AUTH, timeout=10)
    assert resumed.status_code == 202
    twice = httpx.post(f"{sidecar}/_rerank/jobs/{job_id}/_resume", headers=AUTH, timeout=10)
    assert twice.status_code == 409
    final = wait_done(sidecar, job_id)
    assert final["state"] == "done"
    assert final["totals"]["done"] == 60
    listed = httpx.get(f"{sidecar}/_rerank/jobs?size=5", headers=AUTH, timeout=10).json()
    assert job_id in [j["id"] for j in listed["jobs"]]
