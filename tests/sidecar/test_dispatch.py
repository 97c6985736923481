"""The sidecar's dispatch interface: Celery and local backends, the Redis score cache."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from sidecar.scoring import (
    BrokerUnavailable,
    CachedDispatcher,
    CeleryDispatcher,
    DispatchTimeout,
    ScoreCache,
    score_key,
)
from sidecar.scoring.dispatch import NoWorker
from sidecar.testbed.ports import free_port
from tests.conftest import ScoringWorkerHandle
from workers.contract import Content, ScoringJob

T = TypeVar("T")
TOLERANCE = 1e-5


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main(), debug=True)


def _job(
    model: str, query: dict[str, Any], docs: list[dict[str, Any]], seconds: float = 60
) -> ScoringJob:
    return ScoringJob(
        model=model,
        query=query,
        documents=[{"id": str(i), **d} for i, d in enumerate(docs)],
        deadline=time.time() + seconds,
    )


async def _score(dispatcher: Any, job: ScoringJob) -> Any:
    try:
        return await dispatcher.score(job)
    finally:
        await dispatcher.close()


def test_celery_dispatch_scores_equal_in_process_scores(
    scoring_worker: ScoringWorkerHandle, tiny_scorers: dict[str, Any], media_dir: Path
) -> None:
    docs = [{"text": "red running shoes"}, {"image": str(media_dir / "red.png")}, {"text": "scarf"}]
    job = _job("tiny-vl", {"text": "red shoes"}, docs)
    result = _run(lambda: _score(CeleryDispatcher(scoring_worker.worker.broker_url), job))
    expected = tiny_scorers["tiny-vl"].score({"text": "red shoes"}, docs)
    assert max(abs(a - b) for a, b in zip(result.scores, expected, strict=True)) <= TOLERANCE  # type: ignore[operator]


def test_cache_hits_skip_the_worker_and_only_missing_pairs_are_sent(
    scoring_worker: ScoringWorkerHandle, redis_url: str
) -> None:
    query = {"text": f"cache test {time.time()}"}  # fresh keys for this run
    first_docs = [{"text": "alpha"}, {"text": "beta"}]
    pairs = "rerank_worker_pairs_scored_total"

    async def flow() -> tuple[Any, Any, Any, list[float]]:
        client = aioredis.Redis.from_url(redis_url)
        cache = ScoreCache(client, ttl_s=60, max_entries=1000)
        dispatcher = CachedDispatcher(CeleryDispatcher(scoring_worker.worker.broker_url), cache)
        try:
            before = scoring_worker.metric(pairs, "tiny-text")
            cold = await dispatcher.score(_job("tiny-text", query, first_docs))
            after_cold = scoring_worker.metric(pairs, "tiny-text")
            warm = await dispatcher.score(_job("tiny-text", query, first_docs))
            after_warm = scoring_worker.metric(pairs, "tiny-text")
            mixed = await dispatcher.score(
                _job("tiny-text", query, [{"text": "gamma"}, *first_docs])
            )
            after_mixed = scoring_worker.metric(pairs, "tiny-text")
            ttl = await client.ttl(
                score_key("tiny-text", None, None, Content(**query), Content(text="alpha"))
            )
        finally:
            await dispatcher.close()
            await client.aclose()
        return cold, warm, mixed, [before, after_cold, after_warm, after_mixed, ttl]

    cold, warm, mixed, counts = _run(flow)
    before, after_cold, after_warm, after_mixed, ttl = counts
    assert after_cold - before == 2
    assert after_warm == after_cold  # every pair came from the cache
    assert warm.scores == cold.scores
    assert after_mixed - after_warm == 1  # only "gamma" went to the worker
    assert mixed.scores[1:] == cold.scores
    assert 0 < ttl <= 60


def test_cache_key_covers_model_instruction_query_and_document() -> None:
    q, d = Content(text="q"), Content(text="d")
    base = score_key("m", None, None, q, d)
    assert base == score_key("m", None, None, Content(text="q"), Content(text="d"))
    variants = {
        score_key("m2", None, None, q, d),
        score_key("m", "rev2", None, q, d),
        score_key("m", None, "find shoes", q, d),
        score_key("m", None, None, Content(text="q2"), d),
        score_key("m", None, None, q, Content(text="d", image="https://x/a.png")),
        score_key("m", None, None, q, d, max_doc_tokens=128),
    }
    assert base not in variants and len(variants) == 6


def test_cache_keeps_at_most_max_entries(redis_url: str) -> None:
    async def flow() -> int:
        # A database of its own: the URL's /0 would win over a db= argument, and flushing the
        # broker's database would drop the session worker's queues and heartbeat.
        client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
        try:
            await client.flushdb()
            cache = ScoreCache(client, ttl_s=60, max_entries=5)
            for batch in range(3):
                await cache.put_many({f"rerank:score:{batch}-{i}": 0.5 for i in range(4)})
                await client.script_flush()  # as a Redis restart would: the script loads again
            keys = await client.keys("rerank:score:*")
            assert await client.zcard("rerank:score-index") == 5
            assert 0 < await client.ttl(keys[0]) <= 60
            assert float(await client.get("rerank:score:2-3")) == 0.5  # the newest are kept
            return len(keys)
        finally:
            await client.aclose()

    assert _run(flow) == 5


def test_a_redis_that_refuses_scripts_still_gets_every_entry(redis_url: str) -> None:
    """An ACL user without @scripting (as managed Redis offers): the write falls back to a
    pipeline once, and the entries, expiries and index are there all the same."""
    base = redis_url.rsplit("/", 1)[0]
    user = f"cache-no-scripts-{os.getpid()}"

    async def flow() -> None:
        admin = aioredis.Redis.from_url(base + "/3")
        await admin.execute_command(
            "ACL", "SETUSER", user, "on", ">secret-pw", "~*", "&*", "+@all", "-@scripting"
        )
        client = aioredis.Redis.from_url(base + "/3", username=user, password="secret-pw")
        try:
            await admin.flushdb()
            cache = ScoreCache(client, ttl_s=60, max_entries=5)
            await cache.put_many({f"rerank:score:a{i}": 0.25 for i in range(3)})
            assert cache.scripting is False
            await cache.put_many({f"rerank:score:b{i}": 0.75 for i in range(4)})  # evicts two
            assert await admin.zcard("rerank:score-index") == 5
            assert float(await admin.get("rerank:score:b3")) == 0.75
            assert 0 < await admin.ttl("rerank:score:b3") <= 60
            assert await admin.get("rerank:score:a0") is None  # the oldest went
        finally:
            await client.aclose()
            await admin.execute_command("ACL", "DELUSER", user)
            await admin.aclose()

    _run(flow)


def test_a_deadline_shorter_than_the_model_needs_is_a_timeout(
    scoring_worker: ScoringWorkerHandle,
) -> None:
    docs = [{"text": "long text " * 500} for _ in range(64)]
    job = _job("tiny-text", {"text": "q"}, docs, seconds=0.05)
    with pytest.raises(DispatchTimeout):
        _run(lambda: _score(CeleryDispatcher(scoring_worker.worker.broker_url), job))


def test_redis_outage_is_a_dispatch_error() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailable, match="could not send the job"):
        _run(
            lambda: _score(
                CeleryDispatcher(dead), _job("tiny-text", {"text": "q"}, [{"text": "d"}], seconds=5)
            )
        )


def test_a_model_no_worker_serves_fails_at_once_and_sends_nothing(
    scoring_worker: ScoringWorkerHandle, redis_client: Any
) -> None:
    job = _job("no-such-model", {"text": "q"}, [{"text": "d"}], seconds=30.0)
    queue = "rerank.no-such-model.interactive"
    started = time.monotonic()
    with pytest.raises(NoWorker, match="no-such-model"):
        _run(lambda: _score(CeleryDispatcher(scoring_worker.worker.broker_url), job))
    assert time.monotonic() - started < 2  # not the job's 30 s deadline
    assert redis_client.llen(queue) == 0  # nothing left in Redis for nobody


def test_local_dispatch_scores_equal_in_process_scores(
    tiny_registry: dict[str, Any], tiny_scorers: dict[str, Any]
) -> None:
    from sidecar.scoring.local_backend import LocalDispatcher
    from workers.registry import LoadOptions, load_batchers

    batchers = load_batchers(tiny_registry, ["tiny-text"], LoadOptions())
    docs = [{"text": "red running shoes"}, {"text": "scarf"}, {"image": "x.png"}]
    try:
        result = _run(
            lambda: _score(LocalDispatcher(batchers), _job("tiny-text", {"text": "red"}, docs))
        )
    finally:
        for batcher in batchers.values():
            batcher.close()
    expected = tiny_scorers["tiny-text"].score_with_errors({"text": "red"}, docs)
    assert result.scores[:2] == pytest.approx(expected.scores[:2], abs=TOLERANCE)
    assert result.scores[2] is None
    assert [(e.index, e.error) for e in result.errors] == expected.errors


def test_lone_surrogates_become_replacement_characters_and_make_cache_keys() -> None:
    # JSON "\ud800" parses to a lone surrogate, which cannot be encoded: the contract replaces
    # it, so cache keys, Celery messages and tokenizers all get valid text.
    query = Content(text="red \ud800 shoes")
    assert query.text == "red \ufffd shoes"
    key = score_key("m", None, None, query, Content(text="doc \udfff", image=["a\ud801.png"]))
    assert key == score_key(
        "m",
        None,
        None,
        Content(text="red \ufffd shoes"),
        Content(text="doc \ufffd", image=["a\ufffd.png"]),
    )
