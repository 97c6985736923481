"""What the job tests share: the source index, the query set, the settings and HTTP helpers."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import EngineHandle
from tests.waiting import wait_for

SOURCE = "jobs-products"
TOKEN = "jobs-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOW = 5
COLORS = ["red", "blue", "green", "black", "white", "grey", "yellow", "pink", "brown", "navy"]
# fmt: off
ITEMS = ["shoes", "jacket", "scarf", "socks", "boots", "cap", "gloves", "shorts", "shirt", "bag",
         "hat", "belt", "coat", "dress", "skirt", "sweater", "jeans", "tie", "vest", "sandals"]
# fmt: on
ENDED = ("done", "failed", "cancelled")


def products() -> list[dict[str, Any]]:
    out = []
    for i in range(80):
        color, item = COLORS[i % len(COLORS)], ITEMS[(i * 7) % len(ITEMS)]
        other = COLORS[(i * 3 + 1) % len(COLORS)]
        out.append({"title": f"{color} {item} with {other} trim", "sku": f"p{i}"})
    return out


def queries() -> list[dict[str, str]]:
    return [{"id": f"q{c}-{i}", "text": f"{c} {i}"} for c in COLORS for i in ITEMS]  # 200


def load_source(engine: EngineHandle, index: str = SOURCE) -> None:
    client = engine.client
    client.indices.delete(index=index, ignore_unavailable=True)
    client.indices.create(
        index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    )
    lines = "".join(
        json.dumps({"index": {"_index": index, "_id": str(i)}}) + "\n" + json.dumps(doc) + "\n"
        for i, doc in enumerate(products())
    )
    client.bulk(body=lines, refresh=True)


def config(engine_url: str, broker: str, registry: dict[str, Any], **jobs: Any) -> dict[str, Any]:
    return {
        "models": {name: spec.model_dump(mode="json") for name, spec in registry.items()},
        "upstream": {"urls": [engine_url]},
        "celery": {"broker_url": broker},
        "admin": {"tokens": [TOKEN]},
        "rerank": {
            "profiles": {
                "titles": {"model": "tiny-text", "window": WINDOW, "fields": {"text": ["title"]}}
            },
            "timeout_ms": 60_000,
            "max_timeout_ms": 60_000,
        },
        "jobs": {"chunk_size": 25, "default_concurrency": 4, **jobs},
    }


def submit(url: str, spec: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/_rerank/jobs", json=spec, headers=AUTH, timeout=60, **kwargs)


def job(url: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/_rerank/jobs/{job_id}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_done(url: str, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    wait_for(lambda: job(url, job_id)["state"] in ENDED, timeout_s, f"job {job_id} to end")
    return job(url, job_id)


def wait_progress(url: str, job_id: str, done: int, timeout_s: float = 300) -> dict[str, Any]:
    """The job once at least ``done`` of its queries are counted (and it still runs)."""
    wait_for(lambda: job(url, job_id)["totals"]["done"] >= done, timeout_s,
             f"job {job_id} to count {done} queries")  # fmt: skip
    return job(url, job_id)


def result_docs(engine: EngineHandle, index: str, job_id: str) -> list[dict[str, Any]]:
    engine.client.indices.refresh(index=index)
    answer = engine.client.search(
        index=index, body={"query": {"term": {"job_id": job_id}}, "size": 5000}
    )
    return [{"_id": h["_id"], **h["_source"]} for h in answer["hits"]["hits"]]


def expected_ids(engine: EngineHandle, job_id: str, items: list[dict[str, str]]) -> set[str]:
    """The ids a job's results index must hold: one per (query, hit of its window), read from
    the engine's own top hits for the job's search (the window's members, in any order)."""
    from sidecar.jobs.results import result_id
    from sidecar.jobs.spec import DEFAULT_SEARCH, fill

    ids = set()
    for item in items:
        body = {**fill(DEFAULT_SEARCH, item["text"]), "size": WINDOW, "_source": False}
        hits = engine.client.search(index=SOURCE, body=body)["hits"]["hits"]
        ids.update(result_id(job_id, item["id"], SOURCE, hit["_id"]) for hit in hits)
    return ids


def drop_job_indices(engine: EngineHandle) -> None:
    """Delete the indices the job tests made (``jobs-*``, by name: Elasticsearch refuses
    wildcard deletes), so the single-node cluster is green again for the tests after them
    (a results index the API creates has the engine's default replica)."""
    names = list(engine.client.indices.get(index="jobs-*", expand_wildcards="open,closed"))
    for name in names:
        engine.client.indices.delete(index=name, ignore_unavailable=True)
