"""Shared-prefix scoring: the layout functions on hand-made cases, and the same scores from the
three layouts (plain pairs, shared prefix + padding, shared prefix + packing) of the Qwen3 text
reranker, in-process and through the real Celery worker: fp32, max abs diff 1e-5, for mixed
lengths, custom and empty instructions, the truncation boundary and documents that fail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.scoring.celery_client import celery_client
from tests.conftest import ScoringWorkerHandle
from tests.workers.layouts import TOLERANCE, assert_same, by_layout
from workers.contract import SCORE_TASK, ScoringJob, ScoringResult, queue_name
from workers.scoring import Scorer, load_scorer
from workers.scoring.qwen3_text import Qwen3TextReranker
from workers.scoring.shared_prefix import MIN_GROUP, group_by_prefix, pack_layout, plan_packs

QUERY = {"text": "red running shoes"}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"text": " ".join(["red", "trail", "shoes", "blue", "warm"][: i % 5 + 1] * (i % 9 + 1))}
        for i in range(24)
    ]
    docs += [
        {"text": "x " * 300},  # long: a pack of its own
        {"image": "a.png"},  # no text: fails, alone
        {"text": ""},
        {"text": "  two leading spaces"},
        {"text": "\nstarts with a newline"},
        {"text": ["a list", "of texts"]},
    ]
    return docs


def test_pack_layout_opens_the_prefix_and_each_documents_own_past() -> None:
    layout = pack_layout(2, [2, 3])
    assert layout.position_ids.tolist() == [[2, 3, 2, 3, 4]]
    assert layout.last.tolist() == [1, 4]
    mask = layout.mask[0, 0].int().tolist()
    assert mask == [
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0],
        [1, 1, 0, 0, 1, 1, 0],
        [1, 1, 0, 0, 1, 1, 1],
    ]


def test_plan_packs_and_grouping_by_prefix() -> None:
    assert plan_packs([3, 3, 3, 9, 1], 6) == [[0, 1], [2], [3], [4]]
    keys = [(1, 2), None, (1, 2), (3,), (1, 2)]
    groups, plain = group_by_prefix(keys, min_group=2)
    assert groups == {(1, 2): [0, 2, 4]} and plain == [1, 3]
    groups, plain = group_by_prefix(keys, min_group=4)  # three pairs, under a threshold of four
    assert groups == {} and plain == [0, 1, 2, 3, 4]
    groups, plain = group_by_prefix([*keys, (1, 2), (3,)], min_group=4)
    assert groups == {(1, 2): [0, 2, 4, 5]} and plain == [1, 3, 6]


@pytest.fixture(scope="module")
def text_scorer(tiny_model_dirs: dict[str, Path]) -> Scorer:
    return load_scorer(tiny_model_dirs["qwen3"])  # its own: the test switches its layout


@pytest.mark.parametrize("instruction", [None, "Find shoes for trail running", ""])
def test_the_three_layouts_give_the_same_scores(text_scorer: Scorer, instruction: Any) -> None:
    outcomes = by_layout(text_scorer, QUERY, documents(), instruction)
    assert_same(outcomes)
    assert [i for i, _ in outcomes["plain"].errors] == [25]  # the image-only document


def test_the_shared_prefix_is_claimed_only_where_the_ids_start_with_it(text_scorer: Scorer) -> None:
    model = text_scorer.model
    assert isinstance(model, Qwen3TextReranker)
    prepared = model.prepare_many(QUERY, documents(), "custom")
    shared = [p for p in prepared if not isinstance(p, Exception)]
    lengths = {p.prefix_len for p in shared}
    assert len(lengths) == 1 and lengths.pop() > len(model.prefix_ids)  # one prefix per request
    first = shared[0]
    for p in shared:
        assert p.input_ids[: p.prefix_len] == first.input_ids[: first.prefix_len]


@pytest.mark.parametrize("count", [MIN_GROUP - 1, MIN_GROUP])
def test_a_request_under_the_threshold_runs_as_plain_pairs(text_scorer: Scorer, count: int) -> None:
    model = text_scorer.model
    assert isinstance(model, Qwen3TextReranker)
    calls: list[int] = []
    shared = model._forward_shared
    model._forward_shared = lambda batch: calls.append(len(batch)) or shared(batch)  # type: ignore[method-assign]
    try:
        # The batcher queues a job's pairs together, so its model thread sees them as one.
        scores = text_scorer.score(QUERY, documents()[:count])
    finally:
        del model._forward_shared
    assert calls == ([] if count < MIN_GROUP else [count])
    model.layout = "plain"
    try:
        plain = text_scorer.score(QUERY, documents()[:count])
    finally:
        model.layout = "packed"
    assert max(abs(a - b) for a, b in zip(scores, plain, strict=True)) <= TOLERANCE


def test_the_truncation_boundary_scores_the_same(tiny_model_dirs: dict[str, Path]) -> None:
    model = Qwen3TextReranker(str(tiny_model_dirs["qwen3"]), max_length=110)
    scorer = Scorer(model)
    docs = [{"text": "word " * n} for n in (1, 20, 39, 40, 41, 60, 200)]
    outcomes = by_layout(scorer, QUERY, docs, None)
    assert_same(outcomes)
    prepared = model.prepare_many(QUERY, docs, None)
    assert {p.length for p in prepared if not isinstance(p, Exception)} >= {110}  # truncated


def test_a_query_without_text_fails_every_document_in_every_layout(text_scorer: Scorer) -> None:
    outcomes = by_layout(text_scorer, {"image": "q.png"}, documents()[:3], None)
    for outcome in outcomes.values():
        assert outcome.scores == [None] * 3 and len(outcome.errors) == 3


def test_the_celery_workers_packed_scores_equal_plain_pairs(
    scoring_worker: ScoringWorkerHandle, text_scorer: Scorer
) -> None:
    docs = [d for d in documents() if isinstance(d.get("text"), str)]
    job = ScoringJob(
        model="tiny-text",
        query=QUERY,
        documents=[{"id": str(i), **d} for i, d in enumerate(docs)],
        instruction="Find shoes for trail running",
        deadline=time.time() + 120,
    )
    broker = scoring_worker.worker.broker_url
    client = celery_client("rerank-client", broker, broker)
    try:
        result = client.send_task(SCORE_TASK, args=[job.model_dump(mode="json")],
                                  queue=queue_name(job.model, job.priority))  # fmt: skip
        scored = ScoringResult.model_validate(result.get(timeout=120))
    finally:
        client.close()
    plain = by_layout(text_scorer, QUERY, docs, job.instruction)["plain"]
    assert not scored.errors and not plain.errors
    diff = max(abs(a - b) for a, b in zip(scored.scores, plain.scores, strict=True))  # type: ignore[operator]
    assert diff <= TOLERANCE
