"""The ``_rank_eval`` metrics, one rule per test, against numbers worked out by hand.

Expected errors and JSON are what OpenSearch 3.6.0 answered to the same input (its
``[line:col]`` token locations left out).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from sidecar.evaluation import (
    DiscountedCumulativeGain,
    ExpectedReciprocalRank,
    Hit,
    MeanReciprocalRank,
    MetricError,
    Precision,
    PrecisionDetail,
    QueryQuality,
    RatedDocument,
    Recall,
    check_search_size,
    combine,
    json_double,
    map_capacity,
    parse_metric,
    parse_rated_document,
    validate_ratings,
)


def hits(*keys: str) -> list[Hit]:
    """``"idx:id"`` keys in rank order, scored 1000, 999, ..."""
    pairs = [key.split(":") for key in keys]
    return [Hit(index, id_, 1000.0 - rank) for rank, (index, id_) in enumerate(pairs)]


def rated(*entries: tuple[str, int]) -> list[RatedDocument]:
    pairs = [(key.split(":"), rating) for key, rating in entries]
    return [RatedDocument(index, id_, rating) for (index, id_), rating in pairs]


def error_chain(exc: MetricError) -> list[tuple[str, str]]:
    chain: list[tuple[str, str]] = []
    error: MetricError | None = exc
    while error is not None:
        chain.append((error.type, error.reason))
        error = error.caused_by
    return chain


def parse_error(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(MetricError) as info:
        parse_metric(raw)
    return error_chain(info.value)


FAILED_METRIC = ("x_content_parse_exception", "[rank_eval] failed to parse field [metric]")


# --- precision ---------------------------------------------------------------------------------


def test_precision_counts_unrated_hits_as_irrelevant_by_default() -> None:
    quality = Precision().evaluate("q", hits("i:a", "i:b", "i:c"), rated(("i:a", 1)))
    assert quality.metric_score == 1 / 3
    assert quality.metric_details.to_json() == {
        "precision": {"relevant_docs_retrieved": 1, "docs_retrieved": 3}
    }


def test_precision_ignore_unlabeled_leaves_unrated_hits_out_of_the_denominator() -> None:
    ratings = rated(("i:a", 1), ("i:c", 0))
    quality = Precision(ignore_unlabeled=True).evaluate("q", hits("i:a", "i:b", "i:c"), ratings)
    assert quality.metric_score == 1 / 2


def test_precision_threshold_is_inclusive() -> None:
    ratings = rated(("i:a", 2), ("i:b", 1), ("i:c", 3))
    quality = Precision(relevant_rating_threshold=2).evaluate(
        "q", hits("i:a", "i:b", "i:c"), ratings
    )
    assert quality.metric_score == 2 / 3


def test_precision_of_no_counted_hit_is_zero() -> None:
    assert Precision().evaluate("q", [], rated(("i:a", 1))).metric_score == 0.0
    only_unrated = Precision(ignore_unlabeled=True).evaluate("q", hits("i:x"), [])
    assert only_unrated.metric_score == 0.0
    assert only_unrated.metric_details.to_json()["precision"]["docs_retrieved"] == 0


# --- recall ------------------------------------------------------------------------------------


def test_recall_divides_by_every_relevant_rating_not_only_the_hits() -> None:
    ratings = rated(("i:a", 1), ("i:b", 0), ("i:z", 2), ("i:y", 3))
    quality = Recall().evaluate("q", hits("i:a", "i:b", "i:c"), ratings)
    assert quality.metric_score == 1 / 3
    assert quality.metric_details.to_json() == {
        "recall": {"relevant_docs_retrieved": 1, "relevant_docs": 3}
    }


def test_recall_without_any_relevant_rating_is_zero() -> None:
    quality = Recall().evaluate("q", hits("i:a"), rated(("i:a", 0)))
    assert quality.metric_score == 0.0
    assert quality.metric_details.to_json()["recall"]["relevant_docs"] == 0


# --- mean reciprocal rank ----------------------------------------------------------------------


def test_reciprocal_rank_counts_unrated_and_irrelevant_hits_before_the_first_relevant() -> None:
    ratings = rated(("i:b", 0), ("i:c", 2))
    quality = MeanReciprocalRank().evaluate("q", hits("i:a", "i:b", "i:c"), ratings)
    assert quality.metric_score == 1 / 3
    assert quality.metric_details.to_json() == {"mean_reciprocal_rank": {"first_relevant": 3}}


def test_reciprocal_rank_without_a_relevant_hit_is_zero_and_first_relevant_minus_one() -> None:
    quality = MeanReciprocalRank(relevant_rating_threshold=3).evaluate(
        "q", hits("i:a", "i:b"), rated(("i:a", 2))
    )
    assert quality.metric_score == 0.0
    assert quality.metric_details.to_json() == {"mean_reciprocal_rank": {"first_relevant": -1}}


# --- discounted cumulative gain ----------------------------------------------------------------


def test_dcg_unrated_hits_add_nothing_but_keep_their_rank() -> None:
    # ranks 1, 3, 7: log2(rank + 1) = 1, 2, 3
    keys = ("i:a", "i:u1", "i:b", "i:u2", "i:u3", "i:u4", "i:c")
    quality = DiscountedCumulativeGain().evaluate(
        "q", hits(*keys), rated(("i:a", 3), ("i:b", 2), ("i:c", 1))
    )
    assert quality.metric_score == 7 / 1 + 3 / 2 + 1 / 3
    assert quality.metric_details.to_json() == {"dcg": {"dcg": 7 + 1.5 + 1 / 3, "unrated_docs": 4}}


def test_dcg_unknown_doc_rating_rates_the_unrated_hits() -> None:
    metric = DiscountedCumulativeGain(unknown_doc_rating=1)
    quality = metric.evaluate("q", hits("i:a", "i:u1", "i:u2"), rated(("i:a", 2)))
    assert quality.metric_score == 3 / 1 + 1 / (math.log(3) / math.log(2)) + 1 / 2
    assert quality.metric_details.to_json()["dcg"]["unrated_docs"] == 2


def test_ideal_dcg_sorts_all_ratings_and_cuts_them_to_the_number_of_hits() -> None:
    # 3 hits, 5 rated documents (4 of them not retrieved): ideal = ratings 3, 3, 2 at ranks 1-3
    ratings = rated(("i:a", 1), ("i:x", 3), ("i:y", 2), ("i:z", 3), ("i:w", 1))
    metric = DiscountedCumulativeGain(normalize=True)
    quality = metric.evaluate("q", hits("i:u", "i:v", "i:a"), ratings)
    dcg = 1 / 2
    ideal = 7 / 1 + 7 / (math.log(3) / math.log(2)) + 3 / 2
    assert quality.metric_score == dcg / ideal
    assert quality.metric_details.to_json() == {
        "dcg": {"dcg": dcg, "ideal_dcg": ideal, "normalized_dcg": dcg / ideal, "unrated_docs": 2}
    }


def test_ideal_dcg_with_fewer_hits_than_k_uses_as_many_ratings_as_hits() -> None:
    metric = DiscountedCumulativeGain(normalize=True, k=10)
    quality = metric.evaluate("q", hits("i:b"), rated(("i:a", 3), ("i:b", 1)))
    assert quality.metric_score == 1 / 7
    assert quality.metric_details.to_json()["dcg"]["ideal_dcg"] == 7.0


def test_ndcg_without_any_gain_is_zero_and_the_detail_has_no_ideal() -> None:
    metric = DiscountedCumulativeGain(normalize=True)
    quality = metric.evaluate("q", hits("i:a"), rated(("i:a", 0)))
    assert quality.metric_score == 0.0
    assert quality.metric_details.to_json() == {"dcg": {"dcg": 0.0, "unrated_docs": 0}}


def test_dcg_detail_has_no_ideal_when_not_normalized() -> None:
    quality = DiscountedCumulativeGain().evaluate("q", hits("i:a"), rated(("i:a", 1)))
    assert quality.metric_details.to_json() == {"dcg": {"dcg": 1.0, "unrated_docs": 0}}


def test_dcg_discount_is_the_jvm_logarithm_not_the_c_librarys() -> None:
    # rank 9169 alone rated 1; OpenSearch 3.6.0 answered 0.07597222019513691, while glibc's
    # log gives 0.0759722201951369 (one ulp less)
    keys = [f"i:d{n}" for n in range(9169)]
    metric = DiscountedCumulativeGain(k=10000)
    quality = metric.evaluate("q", hits(*keys), rated(("i:d9168", 1)))
    assert quality.metric_score == 0.07597222019513691
    assert 1 / (math.log(9170) / math.log(2)) == 0.0759722201951369


def test_dcg_of_a_negative_rating_is_a_negative_gain() -> None:
    quality = DiscountedCumulativeGain().evaluate("q", hits("i:a"), rated(("i:a", -2)))
    assert quality.metric_score == 0.25 - 1


# --- expected reciprocal rank ------------------------------------------------------------------


def test_err_sums_stopping_probabilities() -> None:
    # R1 = 7/8, R2 = 3/8: 7/8 + (1 - 7/8) * 3/8 / 2
    metric = ExpectedReciprocalRank(maximum_relevance=3)
    quality = metric.evaluate("q", hits("i:a", "i:b"), rated(("i:a", 3), ("i:b", 2)))
    assert quality.metric_score == 7 / 8 + (1 / 8) * (3 / 8) / 2


def test_err_skips_unrated_hits_but_they_keep_their_rank() -> None:
    metric = ExpectedReciprocalRank(maximum_relevance=1)
    quality = metric.evaluate("q", hits("i:u", "i:a"), rated(("i:a", 1)))
    assert quality.metric_score == 1 / 2 / 2
    assert quality.metric_details.to_json() == {"expected_reciprocal_rank": {"unrated_docs": 1}}


def test_err_unknown_doc_rating_rates_the_unrated_hits() -> None:
    metric = ExpectedReciprocalRank(maximum_relevance=1, unknown_doc_rating=1)
    quality = metric.evaluate("q", hits("i:u", "i:a"), rated(("i:a", 1)))
    assert quality.metric_score == 1 / 2 + (1 / 2) * (1 / 2) / 2
    assert quality.metric_details.to_json()["expected_reciprocal_rank"]["unrated_docs"] == 1


# --- hits, ratings, and the per-query JSON ----------------------------------------------------


def test_hits_are_joined_with_ratings_on_index_and_id() -> None:
    quality = Precision().evaluate("q", hits("a:1", "b:1"), rated(("a:1", 1), ("b:1", 0)))
    assert [h.rating for h in quality.hits] == [1, 0]
    assert quality.metric_score == 1 / 2


def test_a_cross_cluster_hit_is_joined_on_its_index_without_the_cluster_alias() -> None:
    quality = Precision().evaluate("q", [Hit("remote:a", "1", 1.0)], rated(("a:1", 1)))
    assert quality.hits[0].rating == 1
    assert quality.hits[0].to_json()["hit"]["_index"] == "remote:a"


def test_hits_past_k_are_not_evaluated() -> None:
    quality = Precision(k=2).evaluate("q", hits("i:a", "i:b", "i:c"), rated(("i:c", 1)))
    assert quality.metric_score == 0.0
    assert len(quality.hits) == 2


def test_the_order_given_counts_not_the_scores_so_ties_keep_their_order() -> None:
    tied = [Hit("i", "a", 1.0), Hit("i", "b", 1.0)]
    ratings = rated(("i:b", 1))
    assert MeanReciprocalRank().evaluate("q", tied, ratings).metric_score == 1 / 2
    assert MeanReciprocalRank().evaluate("q", tied[::-1], ratings).metric_score == 1.0


def test_no_hits_give_zero_for_every_metric() -> None:
    ratings = rated(("i:a", 3))
    metrics = [
        Precision(),
        Recall(),
        MeanReciprocalRank(),
        DiscountedCumulativeGain(normalize=True),
        ExpectedReciprocalRank(maximum_relevance=3),
    ]
    assert [m.evaluate("q", [], ratings).metric_score for m in metrics] == [0.0] * 5


def test_query_quality_json_is_the_engines_detail_object() -> None:
    ratings = rated(("ia:d1", 3), ("ia:d3", 1), ("ib:d9", 2))
    quality = Precision(k=3).evaluate("q1", hits("ia:d1", "ib:d1", "ia:d2", "ia:d3"), ratings)
    assert quality.to_json() == {
        "metric_score": 0.3333333333333333,
        "unrated_docs": [{"_index": "ib", "_id": "d1"}, {"_index": "ia", "_id": "d2"}],
        "hits": [
            {"hit": {"_index": "ia", "_id": "d1", "_score": 1000.0}, "rating": 3},
            {"hit": {"_index": "ib", "_id": "d1", "_score": 999.0}, "rating": None},
            {"hit": {"_index": "ia", "_id": "d2", "_score": 998.0}, "rating": None},
        ],
        "metric_details": {"precision": {"relevant_docs_retrieved": 1, "docs_retrieved": 3}},
    }


def test_a_hit_read_from_a_search_response_is_written_back_whole() -> None:
    raw = {"_index": "i", "_id": "a", "_score": None, "_source": {"t": 1}, "sort": [3]}
    assert Hit.from_json(raw).to_json() == raw


def test_a_hit_without_a_score_writes_null() -> None:
    assert Hit("i", "a", math.nan).to_json() == {"_index": "i", "_id": "a", "_score": None}
    assert Hit("i", "a", source={"t": 1}).to_json()["_source"] == {"t": 1}


# --- combine -----------------------------------------------------------------------------------


def quality(score: float) -> QueryQuality:
    return QueryQuality("q", score, (), PrecisionDetail(0, 0))


def test_combine_is_the_mean_of_the_given_scores() -> None:
    assert combine(Precision(), [quality(1.0), quality(0.5), quality(0.0)]) == 0.5


def test_combine_sums_with_compensation_like_double_stream_sum() -> None:
    # ten times 0.1: the plain sum is 0.9999999999999999, the compensated one 1.0
    assert sum([0.1] * 10) != 1.0
    assert combine(Precision(), [quality(0.1)] * 10) == 0.1


def test_combine_of_no_successful_request_is_nan_written_as_a_string() -> None:
    score = combine(Precision(), [])
    assert math.isnan(score)
    assert json_double(score) == "NaN"
    assert json_double(math.inf) == "Infinity"


def test_results_map_capacity_per_engine() -> None:
    assert [map_capacity(n) for n in (0, 1, 3, 12)] == [0, 1, 3, 12]
    assert [map_capacity(n, "elasticsearch") for n in (0, 1, 3, 12)] == [1, 2, 5, 17]


# --- reading the metric ------------------------------------------------------------------------


def test_parse_metric_defaults() -> None:
    assert parse_metric({"precision": {}}) == Precision(1, False, 10)
    assert parse_metric({"recall": {}}) == Recall(1, 10)
    assert parse_metric({"mean_reciprocal_rank": {}}) == MeanReciprocalRank(1, 10)
    assert parse_metric({"dcg": {}}) == DiscountedCumulativeGain(False, None, 10)
    assert parse_metric({"expected_reciprocal_rank": {"maximum_relevance": 3}}) == (
        ExpectedReciprocalRank(3, None, 10)
    )


@pytest.mark.parametrize(
    ("value", "k"),
    [("5", 5), (5.7, 5), ("5.5", 5), (" 7 ", 7), ("1e1", 10), ("+4", 4), ("4.", 4), ("0x1p3", 8)],
)
def test_parse_metric_coerces_numbers_as_the_engine_does(value: Any, k: int) -> None:
    assert parse_metric({"precision": {"k": value}}).forced_search_size == k


def test_parse_metric_reads_booleans_from_true_false_and_empty_strings() -> None:
    assert parse_metric({"precision": {"ignore_unlabeled": "true"}}) == Precision(1, True, 10)
    assert parse_metric({"dcg": {"normalize": ""}}) == DiscountedCumulativeGain()
    assert parse_error({"precision": {"ignore_unlabeled": "yes"}}) == [
        FAILED_METRIC,
        ("x_content_parse_exception", "[precision] failed to parse field [ignore_unlabeled]"),
        (
            "illegal_argument_exception",
            "Failed to parse value [yes] as only [true] or [false] are allowed.",
        ),
    ]


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        ("abc", ("number_format_exception", 'For input string: "abc"')),
        ("", ("number_format_exception", "empty String")),
        (
            "2147483648",
            ("illegal_argument_exception", "Value [2147483648] is out of range for an integer"),
        ),
        (
            10_000_000_000,
            (
                "input_coercion_exception",
                "Numeric value (10000000000) out of range of int (-2147483648 - 2147483647)",
            ),
        ),
    ],
)
def test_unreadable_numbers_fail_the_field(value: Any, cause: tuple[str, str]) -> None:
    assert parse_error({"precision": {"k": value}}) == [
        FAILED_METRIC,
        ("x_content_parse_exception", "[precision] failed to parse field [k]"),
        cause,
    ]


@pytest.mark.parametrize(
    ("value", "token"), [(True, "VALUE_BOOLEAN"), (None, "VALUE_NULL"), ([5], "START_ARRAY")]
)
def test_a_value_of_the_wrong_type_is_refused_by_token(value: Any, token: str) -> None:
    assert parse_error({"precision": {"k": value}}) == [
        FAILED_METRIC,
        ("x_content_parse_exception", f"[precision] k doesn't support values of type: {token}"),
    ]


def test_unknown_metric_name() -> None:
    assert parse_error({"foo": {}}) == [
        FAILED_METRIC,
        ("named_object_not_found_exception", "unknown field [foo]"),
    ]


@pytest.mark.parametrize(
    ("metric", "parser"),
    [
        ("precision", "precision"),
        ("recall", "recall"),
        ("mean_reciprocal_rank", "reciprocal_rank"),
        ("dcg", "dcg"),
        ("expected_reciprocal_rank", "dcg"),
    ],
)
def test_unknown_parameter_errors_name_the_engines_parser(metric: str, parser: str) -> None:
    assert parse_error({metric: {"foo": 1}}) == [
        FAILED_METRIC,
        ("x_content_parse_exception", f"[{parser}] unknown field [foo]"),
    ]


def test_elasticsearch_suggests_a_close_parameter_name() -> None:
    with pytest.raises(MetricError) as info:
        parse_metric({"precision": {"ignore_unlabelled": True}}, flavor="elasticsearch")
    assert info.value.caused_by is not None
    assert info.value.caused_by.reason == (
        "[precision] unknown field [ignore_unlabelled] did you mean [ignore_unlabeled]?"
    )
    assert parse_error({"precision": {"ignore_unlabelled": True}})[-1] == (
        "x_content_parse_exception",
        "[precision] unknown field [ignore_unlabelled]",
    )


def test_exactly_one_metric() -> None:
    assert parse_error({}) == [
        FAILED_METRIC,
        (
            "parsing_exception",
            "Failed to parse object: expecting token of type [FIELD_NAME] but found [END_OBJECT]",
        ),
    ]
    assert parse_error({"precision": {}, "recall": {}}) == [
        FAILED_METRIC,
        (
            "parsing_exception",
            "Failed to parse object: expecting token of type [END_OBJECT] but found [FIELD_NAME]",
        ),
    ]


def test_a_metric_that_is_not_an_object() -> None:
    assert parse_error("precision") == [
        (
            "x_content_parse_exception",
            "[rank_eval] metric doesn't support values of type: VALUE_STRING",
        )
    ]
    assert parse_error({"precision": 5}) == [
        FAILED_METRIC,
        ("x_content_parse_exception", "[precision] Expected START_OBJECT but was: VALUE_NUMBER"),
    ]


@pytest.mark.parametrize(
    ("metric", "parser"),
    [("precision", "precision"), ("recall", "recall"), ("mean_reciprocal_rank", "reciprocal_rank")],
)
def test_k_must_be_positive_for_precision_recall_and_reciprocal_rank(
    metric: str, parser: str
) -> None:
    assert parse_error({metric: {"k": 0}}) == [
        FAILED_METRIC,
        (
            "x_content_parse_exception",
            f"Failed to build [{parser}] after last required field arrived",
        ),
        ("illegal_argument_exception", "Window size k must be positive."),
    ]


def test_a_negative_threshold_is_refused_with_the_precision_message_for_every_metric() -> None:
    assert parse_error({"recall": {"relevant_rating_threshold": -1}})[-1] == (
        "illegal_argument_exception",
        "Relevant rating threshold for precision must be positive integer.",
    )


def test_a_build_error_names_the_last_field_when_every_parameter_is_given() -> None:
    raw = {"precision": {"k": 0, "relevant_rating_threshold": 1, "ignore_unlabeled": True}}
    assert parse_error(raw) == [
        FAILED_METRIC,
        ("x_content_parse_exception", "[precision] failed to parse field [ignore_unlabeled]"),
        (
            "x_content_parse_exception",
            "Failed to build [precision] after last required field arrived",
        ),
        ("illegal_argument_exception", "Window size k must be positive."),
    ]


def test_the_root_cause_is_the_deepest_parse_error() -> None:
    with pytest.raises(MetricError) as info:
        parse_metric({"precision": {"k": 0}})
    assert info.value.to_json()["root_cause"] == [
        {
            "type": "x_content_parse_exception",
            "reason": "Failed to build [precision] after last required field arrived",
        }
    ]


def test_expected_reciprocal_rank_requires_maximum_relevance() -> None:
    assert parse_error({"expected_reciprocal_rank": {"k": 3}}) == [
        FAILED_METRIC,
        ("illegal_argument_exception", "Required [maximum_relevance]"),
    ]


@pytest.mark.parametrize("name", ["dcg", "expected_reciprocal_rank"])
def test_a_negative_k_of_dcg_or_err_fails_the_search_size(name: str) -> None:
    metric = parse_metric({name: {"k": -2, "maximum_relevance": 1} if name != "dcg" else {"k": -2}})
    with pytest.raises(MetricError) as info:
        check_search_size(metric)
    assert error_chain(info.value) == [
        ("illegal_argument_exception", "[size] parameter cannot be negative, found [-2]")
    ]


def test_a_zero_k_of_dcg_evaluates_no_hits() -> None:
    quality = DiscountedCumulativeGain(k=0).evaluate("q", hits("i:a"), rated(("i:a", 3)))
    assert (quality.metric_score, quality.hits) == (0.0, ())


def test_parameters_are_written_back_as_the_engine_writes_them() -> None:
    assert Precision().to_json() == {
        "precision": {"relevant_rating_threshold": 1, "ignore_unlabeled": False, "k": 10}
    }
    assert DiscountedCumulativeGain().to_json() == {"dcg": {"normalize": False, "k": 10}}
    assert ExpectedReciprocalRank(2, 0).to_json() == {
        "expected_reciprocal_rank": {"maximum_relevance": 2, "unknown_doc_rating": 0, "k": 10}
    }


# --- ratings -----------------------------------------------------------------------------------


def test_a_document_rated_twice_is_refused() -> None:
    with pytest.raises(MetricError) as info:
        validate_ratings("q1", rated(("ia:d1", 3), ("ia:d1", 1)))
    assert error_chain(info.value) == [
        ("x_content_parse_exception", "[rank_eval] failed to parse field [requests]"),
        (
            "x_content_parse_exception",
            "Failed to build [request] after last required field arrived",
        ),
        (
            "illegal_argument_exception",
            'Found duplicate rated document key [{"_index":"ia","_id":"d1"}] '
            "in evaluation request [q1]",
        ),
    ]


def test_one_id_in_two_indices_is_two_documents() -> None:
    validate_ratings("q1", rated(("ia:d1", 3), ("ib:d1", 1)))


def test_a_rating_needs_an_index_and_an_id() -> None:
    with pytest.raises(MetricError, match="Index must be set for each rated document"):
        RatedDocument("", "d1", 1)
    with pytest.raises(MetricError) as info:
        parse_rated_document({"_index": "ia", "_id": "", "rating": 3})
    assert error_chain(info.value) == [
        ("x_content_parse_exception", "[rank_eval] failed to parse field [requests]"),
        ("x_content_parse_exception", "[request] failed to parse field [ratings]"),
        ("x_content_parse_exception", "[rated_document] failed to parse field [rating]"),
        (
            "x_content_parse_exception",
            "Failed to build [rated_document] after last required field arrived",
        ),
        ("illegal_argument_exception", "DocId must be set for each rated document"),
    ]


def test_a_rating_is_coerced_to_an_int_like_the_metric_parameters() -> None:
    assert parse_rated_document({"_index": "i", "_id": "a", "rating": "2"}).rating == 2
    assert parse_rated_document({"_index": "i", "_id": "a", "rating": 2.5}).rating == 2
    with pytest.raises(MetricError) as info:
        parse_rated_document({"_id": "a", "rating": 1})
    assert error_chain(info.value)[-1] == ("illegal_argument_exception", "Required [_index]")
