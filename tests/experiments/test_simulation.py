"""Simulated experiments (no servers): users with known click preferences, logged as the
sidecar logs them, analysed as the report analyses them. The analysis must find a real
difference, stay quiet about none, and catch a broken traffic split."""

from __future__ import annotations

from sidecar.experiments.analysis import analyze, verdicts
from sidecar.experiments.statistics import ALPHA
from tests.experiments.synthetic import BETTER, WORSE, ab_logs, interleaved_logs

RUNS = 50


def test_interleaving_declares_the_variant_whose_documents_users_click() -> None:
    searches, clicks = interleaved_logs(
        seed=1, users=100, searches_per_user=2, first=WORSE, second=BETTER
    )
    r = analyze("boots", searches, clicks, control="A")
    inter = r.interleaving
    assert inter is not None
    assert inter.winner == "B" and inter.wins > inter.losses
    assert inter.sign.p_value < ALPHA
    assert inter.win_rate.low > 0.5
    assert not inter.lead.mismatch  # the interleaver is fair
    assert any(line.startswith("B wins the interleaving") for line in verdicts(r))


def test_interleaving_a_ranking_with_itself_is_rarely_significant() -> None:
    significant = 0
    for seed in range(RUNS):
        searches, clicks = interleaved_logs(
            seed=100 + seed, users=100, searches_per_user=3, first=BETTER, second=BETTER
        )
        inter = analyze("boots", searches, clicks, control="A").interleaving
        assert inter is not None and inter.impressions == 300
        significant += inter.sign.p_value < ALPHA
    assert significant <= RUNS // 10  # p ≥ 0.05 in at least 90% of the runs


def test_ab_declares_the_variant_with_the_better_ranking() -> None:
    searches, clicks = ab_logs(
        seed=2, users=300, searches_per_user=3, rankings={"A": WORSE, "B": BETTER},
        split={"A": 1, "B": 1},
    )  # fmt: skip
    r = analyze("shoes", searches, clicks, weights={"A": 1, "B": 1})
    (c,) = r.comparisons
    assert (c.control, c.variant) == ("A", "B")
    assert c.ctr.difference > 0 and c.ctr.p_value < ALPHA
    assert c.user_ctr.p_value < ALPHA and c.user_ctr_difference.low > 0
    assert r.variant("B").mrr.low > r.variant("A").mrr.high
    assert r.srm is not None and not r.srm.mismatch
    assert any(line.startswith("B beats A") for line in verdicts(r))


def test_an_ab_test_of_identical_variants_is_rarely_significant() -> None:
    significant = 0
    for seed in range(RUNS):
        searches, clicks = ab_logs(
            seed=200 + seed, users=200, searches_per_user=3,
            rankings={"A": BETTER, "B": BETTER}, split={"A": 1, "B": 1},
        )  # fmt: skip
        (c,) = analyze("shoes", searches, clicks, weights={"A": 1, "B": 1}).comparisons
        significant += c.ctr.p_value < ALPHA
    assert significant <= RUNS // 10


def test_the_configured_split_passes_the_sample_ratio_check() -> None:
    split = {"off": 1.0, "small": 1.0, "large": 2.0}
    rankings = {"off": WORSE, "small": BETTER, "large": BETTER}
    searches, clicks = ab_logs(
        seed=3, users=3000, searches_per_user=1, rankings=rankings, split=split, unkeyed=200
    )
    r = analyze("shoes", searches, clicks, weights=split)
    assert r.srm is not None and not r.srm.mismatch
    assert sum(r.srm.observed.values()) == 3200  # users, and searches without one
    assert not verdicts(r)[0].startswith("Sample ratio mismatch")


def test_a_45_55_skew_fails_the_sample_ratio_check() -> None:
    searches, clicks = ab_logs(
        seed=4, users=3000, searches_per_user=1, rankings={"A": BETTER, "B": BETTER},
        split={"A": 0.45, "B": 0.55},
    )  # fmt: skip
    r = analyze("shoes", searches, clicks, weights={"A": 1, "B": 1})
    assert r.srm is not None and r.srm.mismatch
    assert verdicts(r)[0].startswith("Sample ratio mismatch")
    # Analysed with the weights it really ran with, the same logs pass.
    honest = analyze("shoes", searches, clicks, weights={"A": 0.45, "B": 0.55})
    assert honest.srm is not None and not honest.srm.mismatch
