"""The eval command's pure parts on hand-made cases: metric names, the statistics, the
``_rank_eval`` bodies it sends, reading the answers, the report's movers and its documents."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from sidecar.evaluation.judgments.model import Judgment
from sidecar.evaluation.metric_names import MetricName, parse_metric_name
from sidecar.evaluation.report import build_report, report_json, run_documents
from sidecar.evaluation.runner import (
    BASELINE,
    EvalQuery,
    MetricRun,
    QueryResult,
    RankedHit,
    Variant,
    eval_queries,
    parse_response,
    rank_eval_body,
    search_body,
)
from sidecar.evaluation.statistics import bootstrap_mean, compare, paired_t_test


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("ndcg@5", {"dcg": {"k": 5, "normalize": True}}),
        ("DCG", {"dcg": {"k": 10, "normalize": False}}),
        ("p@3", {"precision": {"k": 3, "relevant_rating_threshold": 2}}),
        ("recall@20", {"recall": {"k": 20, "relevant_rating_threshold": 2}}),
        ("mrr", {"mean_reciprocal_rank": {"k": 10, "relevant_rating_threshold": 2}}),
        ("err@4", {"expected_reciprocal_rank": {"k": 4, "maximum_relevance": 3}}),
    ],
)
def test_metric_names_stand_for_rank_eval_metrics(text: str, body: dict) -> None:  # type: ignore[type-arg]
    assert parse_metric_name(text).body(relevant_rating=2, maximum_relevance=3) == body


@pytest.mark.parametrize("text", ["map@10", "ndcg@0", "ndcg@x", "", "ndcg@10@2"])
def test_unknown_metric_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"metric|k must"):
        parse_metric_name(text)


def test_the_paired_t_test_equals_the_textbook_value() -> None:
    # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 degrees of freedom;
    # with 2 degrees of freedom the t CDF is 1/2 + t / (2 sqrt(2 + t^2)), so the two-sided
    # p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14) = 0.0742.
    t = 2 / (1 / math.sqrt(3))
    expected = 1 - t / math.sqrt(2 + t * t)
    assert paired_t_test([1.0, 2.0, 3.0]) == pytest.approx(expected, rel=1e-9)
    assert paired_t_test([0.0, 0.0, 1e-12]) == 1.0
    assert paired_t_test([0.5, 0.5, 0.5]) == 0.0
    assert paired_t_test([]) == 1.0


def test_bootstrap_intervals_hold_the_mean_and_are_reproducible() -> None:
    values = [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 0.3, 0.6]
    interval = bootstrap_mean(values)
    assert interval.mean == pytest.approx(sum(values) / len(values))
    assert 0.0 <= interval.low < interval.mean < interval.high <= 1.0
    # The standard error is sd/sqrt(n) ~ 0.12: a 95% interval spans roughly 4 of them.
    assert 0.3 < interval.high - interval.low < 0.65
    assert bootstrap_mean(values) == interval
    assert bootstrap_mean([0.7]).low == bootstrap_mean([0.7]).high == 0.7
    assert math.isnan(bootstrap_mean([]).mean)


def test_compare_pairs_by_query_and_counts_wins_losses_ties() -> None:
    reference = {"a": 0.5, "b": 0.2, "c": 0.9, "d": 0.4, "gone": 1.0}
    variant = {"a": 0.7, "b": 0.2, "c": 0.6, "d": 0.8, "new": 0.0}
    c = compare(reference, variant)
    assert (c.queries, c.wins, c.losses, c.ties) == (4, 2, 1, 1)
    assert c.delta.mean == pytest.approx((0.2 + 0.0 - 0.3 + 0.4) / 4)
    assert c.delta.low <= c.delta.mean <= c.delta.high


JUDGMENTS = [
    Judgment(query_id="q1", query="red shoes", index="p", doc_id="1", rating=3),
    Judgment(query_id="q2", query="hat", index="p", doc_id="5", rating=1),
    Judgment(query_id="q1", query="red shoes", index="p", doc_id="2", rating=0),
]


def test_rank_eval_bodies_carry_ratings_searches_and_the_variant() -> None:
    queries = eval_queries(JUDGMENTS)
    assert queries == [
        EvalQuery("q1", "red shoes", (("p", "1", 3), ("p", "2", 0))),
        EvalQuery("q2", "hat", (("p", "5", 1),)),
    ]
    metric = {"dcg": {"k": 5, "normalize": True}}
    body = rank_eval_body(queries, metric, Variant("titles", "titles"), fields=["title^2"])
    assert body["ext"] == {"rerank": {"profile": "titles"}}
    assert body["requests"][0] == {
        "id": "q1",
        "request": {"query": {"multi_match": {"query": "red shoes", "fields": ["title^2"]}}},
        "ratings": [
            {"_index": "p", "_id": "1", "rating": 3},
            {"_index": "p", "_id": "2", "rating": 0},
        ],
    }
    assert "ext" not in rank_eval_body(queries, metric, BASELINE)
    assert BASELINE.headers == {"X-Rerank": "off"} and Variant("x", "x").headers == {}
    template = {
        "query": {"match": {"title": {"query": "{{query}}"}}},
        "size": 3,
        "x": ["{{query}}!"],
    }
    assert search_body('say "hi"', [], template) == {
        "query": {"match": {"title": {"query": 'say "hi"'}}},
        "size": 3,
        "x": ['say "hi"!'],
    }


def test_answers_are_read_with_failures_and_nan() -> None:
    queries = eval_queries(JUDGMENTS)
    answer = {
        "metric_score": 0.5,
        "details": {
            "q1": {
                "metric_score": "NaN",
                "unrated_docs": [],
                "hits": [{"hit": {"_index": "p", "_id": "1", "_score": 2.5}, "rating": 3}],
            }
        },
        "failures": {"q2": {"type": "search_phase_execution_exception", "reason": "boom"}},
    }
    results = parse_response(answer, queries)
    assert math.isnan(results["q1"].score or 0.0)
    assert results["q1"].hits == [RankedHit("p", "1", 2.5, 3)]
    assert results["q2"].score is None
    assert results["q2"].failure == "search_phase_execution_exception: boom"


def run(variant: Variant, metric: MetricName, scores: dict[str, float | None]) -> MetricRun:
    results = {
        q: QueryResult(
            s, [RankedHit("p", f"{q}-{variant.name}", 1.0, 1)], None if s is not None else "x"
        )
        for q, s in scores.items()
    }
    return MetricRun(variant, metric, 0.0, results, 12.0, "sidecar")


def test_the_report_finds_movers_and_writes_one_document_per_pair() -> None:
    ndcg = MetricName("ndcg", 10)
    queries = [EvalQuery(q, f"text {q}", ()) for q in ("a", "b", "c", "d")]
    titles = Variant("titles", "titles")
    runs = [
        run(BASELINE, ndcg, {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}),
        run(titles, ndcg, {"a": 0.9, "b": 0.1, "c": 0.5, "d": None}),
    ]
    when = datetime(2026, 12, 1, tzinfo=UTC)
    report = build_report(
        index="p", judgments="j.csv", variants=[BASELINE, titles], reference=BASELINE,
        metrics=[ndcg], queries=queries, runs=runs, label="try 1", now=when,
    )  # fmt: skip
    gained, lost = report.movers(titles, ndcg)
    assert [(m.query_id, round(m.delta, 6)) for m in gained] == [("a", 0.4)]
    assert [(m.query_id, round(m.delta, 6)) for m in lost] == [("b", -0.4)]
    summary = report.summary(titles, ndcg)
    assert (summary.queries, summary.failed) == (3, 1)
    assert summary.comparison is not None and summary.comparison.ties == 1
    assert report.summary(BASELINE, ndcg).comparison is None

    docs = dict(run_documents(report))
    assert report.run_id.startswith("20261201T000000Z-")
    assert len(docs) == 2 + 4 + 3  # two summaries, 4 + 3 scored queries
    top = docs[f"{report.run_id}:titles:ndcg@10"]
    assert top["kind"] == "summary" and top["wins"] == 1 and top["losses"] == 1
    assert top["label"] == "try 1" and top["profile"] == "titles"
    per_query = docs[f"{report.run_id}:titles:ndcg@10:a"]
    assert per_query["delta"] == pytest.approx(0.4) and per_query["reference_score"] == 0.5
    assert "delta" not in docs[f"{report.run_id}:baseline:ndcg@10:a"]
    as_json = report_json(report)
    assert as_json["queries"][3]["failures"] == {"titles ndcg@10": "x"}
