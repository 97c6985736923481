"""The jobs' pure logic on hand-made cases: the spec and the search each query becomes, JSONL
query sets, result documents and mapping checks, progress, the pair budget; and the job
store's state changes against the real Redis (each one a Lua script)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from sidecar.jobs.errors import JobError
from sidecar.jobs.execution import PairBudget
from sidecar.jobs.progress import progress
from sidecar.jobs.queries import check_unique, parse_jsonl, read_query_file
from sidecar.jobs.results import mapping_conflicts, result_documents, result_id
from sidecar.jobs.spec import JobSpec, QueryItem, fill, search_body
from sidecar.jobs.store import JobStore, job_key, new_job_id


def spec(**overrides: Any) -> JobSpec:
    base: dict[str, Any] = {
        "index": "products",
        "queries": {"inline": [{"id": "a", "text": "x"}]},
        "output": {"index": "results"},
        "rerank": {"profile": "titles"},
    }
    return JobSpec.model_validate({**base, **overrides})


def test_fill_replaces_the_placeholder_in_every_string_but_not_in_keys() -> None:
    template = {"query": {"bool": {"should": [{"match": {"title": "{{query}}"}},
                                              {"match_phrase": {"{{query}}": "say {{query}}!"}}]}},
                "size": 10}  # fmt: skip
    filled = fill(template, "red shoes")
    assert filled["query"]["bool"]["should"][0] == {"match": {"title": "red shoes"}}
    assert filled["query"]["bool"]["should"][1] == {"match_phrase": {"{{query}}": "say red shoes!"}}
    assert filled["size"] == 10
    assert template["query"]["bool"]["should"][0]["match"]["title"] == "{{query}}"  # a copy


def test_search_body_carries_the_jobs_rerank_settings_and_keeps_a_bodys_own_ext() -> None:
    job = spec(rerank={"profile": "titles", "window": 7})
    text = search_body(job, QueryItem(id="a", text="red shoes"))
    assert text["query"] == {"multi_match": {"query": "red shoes"}}
    assert text["ext"] == {"rerank": {"profile": "titles", "window": 7}}  # text: read from body

    own = QueryItem(id="b", body={"query": {"term": {"sku": "p1"}}, "ext": {"other": 1}})
    body = search_body(job, own)
    assert body["query"] == {"term": {"sku": "p1"}}
    assert body["ext"] == {"other": 1, "rerank": {"profile": "titles", "window": 7}}
    assert own.body == {"query": {"term": {"sku": "p1"}}, "ext": {"other": 1}}  # untouched

    image = search_body(job, QueryItem(id="c", image="https://img/x.png"))
    assert image["query"] == {"match_all": {}}
    assert image["ext"]["rerank"]["query"] == {"image": "https://img/x.png"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"v": 2}, "v"),
        ({"indx": "x"}, "indx"),
        ({"output": {}}, "output"),
        ({"output": {"index": "res*"}}, "output"),
        ({"queries": {"inline": [], "path": "/q.jsonl"}}, "queries"),
        ({"queries": {"inline": [{"id": "a"}]}}, "queries"),
        ({"limits": {"searches": 0}}, "limits"),
        ({"rerank": {"windw": 3}}, "rerank"),
    ],
)
def test_the_spec_refuses_what_it_does_not_know(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec(**overrides)
    assert caught.value.errors()[0]["loc"][0] == field


def test_parse_jsonl_names_the_line_of_each_kind_of_bad_query() -> None:
    good = parse_jsonl([b'{"id": "a", "text": "x"}', b"  ", b'{"id": "b", "image": "i.png"}'])
    assert [q.id for q in good] == ["a", "b"]
    cases = {
        b'{"id": "a", "te': "not JSON",
        b'["a"]': "JSON object, not list",
        b'{"id": "a"}': "needs text",
        b'{"id": "a", "text": "y"}': "used on line 2 too",
    }
    for bad, reason in cases.items():
        with pytest.raises(JobError) as caught:
            parse_jsonl([b'{"id": "a", "text": "x"}', b"", bad], first_line=2)
        assert caught.value.field == "queries[line 4]", bad
        assert reason in str(caught.value), bad


def test_check_unique_names_the_second_use_of_an_id() -> None:
    items = [QueryItem(id="a", text="x"), QueryItem(id="b", text="y"), QueryItem(id="a", text="z")]
    with pytest.raises(JobError) as caught:
        check_unique(items)
    assert caught.value.field == "queries.inline.2.id"


def test_query_files_are_read_only_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "queries"
    root.mkdir()
    (root / "head.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n')
    assert [q.id for q in read_query_file(str(root / "head.jsonl"), [root])] == ["a", "b"]
    (tmp_path / "outside.jsonl").write_text('{"id": "a", "text": "x"}\n')
    for path, roots, reason in [
        (str(tmp_path / "outside.jsonl"), [root], "not under jobs.query_roots"),
        (str(root / ".." / "outside.jsonl"), [root], "not under jobs.query_roots"),
        (str(root / "head.jsonl"), [], "off"),
        (str(root / "missing.jsonl"), [root], "cannot read"),
    ]:
        with pytest.raises(JobError) as caught:
            read_query_file(path, roots)
        assert caught.value.field == "queries.path" and reason in str(caught.value), path


def test_result_documents_keep_both_orders_and_deterministic_ids() -> None:
    original = [{"_index": "p", "_id": str(i), "_score": 4.0 - i} for i in (1, 2, 3)]
    ordered = [
        {"_index": "p", "_id": "3", "_score": 0.9, "fields": {"_rerank_score": [0.9]}},
        {"_index": "p", "_id": "1", "_score": 0.5, "fields": {"_rerank_score": [0.5]}},
        {"_index": "p", "_id": "2", "_score": 0.1, "fields": {"_rerank_score": [0.1]}},
    ]
    now = datetime(2026, 12, 3, tzinfo=UTC)
    docs = result_documents("j1", QueryItem(id="q", text="t"), "t", original, ordered, "m",
                            "inst", "titles", now)  # fmt: skip
    assert [i for i, _ in docs] == ["j1:q:p:3", "j1:q:p:1", "j1:q:p:2"]
    first = docs[0][1]
    assert (first["rank"], first["original_rank"], first["original_score"]) == (1, 3, 1.0)
    assert (first["rerank_score"], first["model"], first["profile"]) == (0.9, "m", "titles")
    assert first["timestamp"] == "2026-12-03T00:00:00+00:00"
    assert result_id("j", "q:1", "i", "d") == "j:q:1:i:d"


def test_mapping_conflicts_name_each_field_that_cannot_hold_a_result() -> None:
    assert mapping_conflicts({}) == []
    assert mapping_conflicts({"rank": {"type": "long"}, "job_id": {"type": "keyword"}}) == []
    conflicts = mapping_conflicts({"rank": {"type": "keyword"}, "timestamp": {"type": "text"},
                                   "job_id": {"properties": {}}})  # fmt: skip
    assert conflicts == [
        "job_id is mapped as object, the results need keyword",
        "rank is mapped as keyword, the results need integer",
        "timestamp is mapped as text, the results need date",
    ]


def test_progress_rates_and_eta() -> None:
    assert progress(100, 0, 0, 1000.0, 1010.0).eta_s is None  # nothing done: no rate yet
    assert progress(100, 10, 50, 1000.0, 1000.5).queries_per_s is None  # under a second
    shown = progress(100, 25, 125, 1000.0, 1010.0)
    assert (shown.fraction, shown.queries_per_s, shown.pairs_per_s) == (0.25, 2.5, 12.5)
    assert shown.eta_s == pytest.approx(30.0)
    assert progress(100, 100, 500, 1000.0, 1050.0).eta_s == 0.0
    assert progress(0, 0, 0, None, 0.0).fraction == 1.0


def test_the_pair_budget_holds_at_most_its_limit_and_lets_a_larger_window_through_alone() -> None:
    async def scenario() -> list[int]:
        budget = PairBudget(10)
        seen: list[int] = []

        async def take(pairs: int) -> None:
            async with budget.hold(pairs):
                seen.append(budget.used)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(take(n) for n in (6, 6, 4, 25, 3)))
        assert budget.used == 0
        return seen

    seen = asyncio.run(scenario())
    assert max(seen) <= 10 and len(seen) == 5


def test_the_store_counts_a_query_once_and_never_writes_for_a_stopped_job(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = JobStore(client)
        job_id = new_job_id()
        items = [QueryItem(id=f"q{i}", text="x") for i in range(5)]
        try:
            await store.create(job_id, spec(), items, chunk_size=2)
            view = await store.get(job_id)
            assert view is not None and (view.state, view.chunks, view.cursor) == ("queued", 3, 0)
            assert await store.lease(job_id, 10) is None  # not running: no write starts
            assert await store.start(job_id) == "running"
            assert await store.record(job_id, "q0", "done", pairs=5, documents=5)
            assert not await store.record(job_id, "q0", "done", pairs=5, documents=5)  # again
            assert await store.record(job_id, "q1", "failed", error="engine said no")
            assert await store.recorded(job_id, ["q0", "q1", "q2"]) == [True, True, False]
            assert await store.advance(job_id, 0) == 1
            assert await store.advance(job_id, 0) == -1  # a second copy of chunk 0
            token = await store.lease(job_id, 10)
            assert token is not None and await store.writes_in_flight(job_id) == 1
            assert await store.cancel(job_id) == "running"
            assert await store.lease(job_id, 10) is None  # cancelled: no new write
            await store.release(job_id, token)
            assert await store.writes_in_flight(job_id) == 0
            assert await store.cancel(job_id) == "cancelled"  # the caller answers 409
            assert await store.resume(job_id) == "cancelled"
            assert await store.resume(job_id) == "queued"  # the second resume: 409
            view = await store.get(job_id)
            assert view is not None
            assert view.totals == {"done": 1, "failed": 1, "pairs": 5, "cache_hits": 0,
                                   "documents": 5}  # fmt: skip
            assert [e["query_id"] for e in view.errors] == ["q1"]
            assert await store.finish(job_id, "done", "", keep_s=60) == "done"
            assert 0 < await client.ttl(job_key(job_id, "queries")) <= 60
            assert await store.finish(job_id, "failed", "late", keep_s=60) == "done"  # ended
        finally:
            await client.delete(*(job_key(job_id, p) for p in ("", "queries", "done", "errors")))
            await store.forget(job_id)
            await client.aclose()

    asyncio.run(scenario())


def test_auth_headers_carry_the_credentials_secret_which_its_repr_hides() -> None:
    from sidecar.jobs.engine import auth_headers
    from sidecar.settings import JobCredential

    assert auth_headers(None) == {}
    key = JobCredential.model_validate({"api_key": "abc", "indices": ["x*"]})
    assert auth_headers(key) == {"Authorization": "ApiKey abc"}
    basic = JobCredential.model_validate({"basic_auth": "u:p", "indices": ["x*"]})
    assert auth_headers(basic) == {"Authorization": "Basic dTpw"}
    assert "abc" not in repr(key) and "u:p" not in repr(basic)
    keyless = JobCredential.model_validate({"indices": ["x*"]})  # the secret lives elsewhere
    assert not keyless.has_secret
    with pytest.raises(ValidationError, match="not both"):
        JobCredential.model_validate({"api_key": "a", "basic_auth": "u:p", "indices": ["x"]})
