"""The experiment statistics against the textbook formulas, worked out here with the standard
library, and on their edges (no data, no variance)."""

from __future__ import annotations

import math
from statistics import NormalDist, mean, variance

import numpy as np
import pytest
from scipy import stats

from sidecar.experiments.statistics import (
    SRM_ALPHA,
    bootstrap_difference,
    impressions_needed,
    mean_interval,
    sample_ratio_check,
    searches_needed,
    sign_test,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
)

Z95 = NormalDist().inv_cdf(0.975)
Z80 = NormalDist().inv_cdf(0.8)


def two_sided_normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_z_test_is_the_pooled_formula() -> None:
    x_a, n_a, x_b, n_b = 30, 200, 50, 210
    p_a, p_b = x_a / n_a, x_b / n_b
    pooled = (x_a + x_b) / (n_a + n_b)
    z = (p_b - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    result = two_proportion_z_test(x_a, n_a, x_b, n_b)
    assert result.difference == pytest.approx(p_b - p_a)
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(two_sided_normal_p(z))
    swapped = two_proportion_z_test(x_b, n_b, x_a, n_a)
    assert swapped.z == pytest.approx(-z) and swapped.p_value == pytest.approx(result.p_value)


def test_z_test_edges() -> None:
    assert two_proportion_z_test(0, 50, 0, 60).p_value == 1.0  # nothing clicked anywhere
    assert two_proportion_z_test(50, 50, 60, 60).z == 0.0  # everything clicked
    assert math.isnan(two_proportion_z_test(0, 0, 3, 10).p_value)  # one side has no search


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (10, 10), (57, 400), (1, 1)])
def test_wilson_interval_is_the_score_interval(successes: int, n: int) -> None:
    p = successes / n
    center = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    interval = wilson_interval(successes, n)
    assert interval.mean == pytest.approx(p)
    assert interval.low == pytest.approx(max(0.0, center - half))
    assert interval.high == pytest.approx(min(1.0, center + half))
    assert interval.low <= p <= interval.high


def test_wilson_interval_at_the_ends_has_its_closed_form() -> None:
    # 0 of n: [0, z²/(n+z²)]; n of n: [n/(n+z²), 1].
    assert wilson_interval(0, 10).high == pytest.approx(Z95**2 / (10 + Z95**2))
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).low == pytest.approx(10 / (10 + Z95**2))
    assert math.isnan(wilson_interval(0, 0).mean)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_welch_t_is_the_unequal_variance_formula() -> None:
    a = [0.1, 0.4, 0.35, 0.2, 0.0, 0.5, 0.3]
    b = [0.6, 0.2, 0.55, 0.7, 0.4, 0.9, 0.45, 0.5, 0.65]
    se2_a, se2_b = variance(a) / len(a), variance(b) / len(b)
    t = (mean(b) - mean(a)) / math.sqrt(se2_a + se2_b)
    df = (se2_a + se2_b) ** 2 / (se2_a**2 / (len(a) - 1) + se2_b**2 / (len(b) - 1))
    result = welch_t_test(a, b)
    assert result.difference == pytest.approx(mean(b) - mean(a))
    assert result.t == pytest.approx(t)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), df))


def test_welch_edges() -> None:
    assert welch_t_test([0.5, 0.5], [0.5, 0.5, 0.5]).p_value == 1.0  # no variance, same mean
    constant = welch_t_test([0.0, 0.0], [1.0, 1.0])
    assert constant.p_value == 0.0 and constant.t == math.inf
    one = welch_t_test([0.2], [0.1, 0.3])
    assert math.isnan(one.p_value) and one.difference == pytest.approx(0.0)
    assert math.isnan(welch_t_test([], []).difference)


def test_bootstrap_difference_covers_the_difference_like_the_normal_interval() -> None:
    rng = np.random.default_rng(3)
    a = rng.binomial(1, 0.30, size=3000).astype(float)
    b = rng.binomial(1, 0.35, size=3000).astype(float)
    interval = bootstrap_difference(list(a), list(b))
    difference = b.mean() - a.mean()
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert interval.mean == pytest.approx(difference)
    assert interval.low == pytest.approx(difference - Z95 * se, abs=0.15 * Z95 * se)
    assert interval.high == pytest.approx(difference + Z95 * se, abs=0.15 * Z95 * se)
    assert bootstrap_difference(list(a), list(b)) == interval  # a fixed seed


def test_bootstrap_with_many_distinct_values_draws_in_blocks() -> None:
    rng = np.random.default_rng(4)
    a = list(rng.normal(0.0, 1.0, size=500))  # every value distinct: indices are drawn
    b = list(rng.normal(0.3, 1.0, size=400))
    interval = bootstrap_difference(a, b)
    se = math.sqrt(variance(a) / 500 + variance(b) / 400)
    assert interval.high - interval.low == pytest.approx(2 * Z95 * se, rel=0.1)


def test_bootstrap_edges() -> None:
    constant = bootstrap_difference([0.2, 0.2], [0.5, 0.5, 0.5])
    assert (constant.low, constant.mean, constant.high) == pytest.approx((0.3, 0.3, 0.3))
    assert math.isnan(bootstrap_difference([], [1.0]).mean)
    assert math.isnan(mean_interval([]).mean)
    assert mean_interval([2.0, 2.0]) == mean_interval([2.0])


def test_mean_interval_is_the_normal_interval_on_a_large_sample() -> None:
    rng = np.random.default_rng(5)
    values = list(rng.poisson(0.7, size=20_000).astype(float))  # clicks per search: few values
    interval = mean_interval(values)
    se = math.sqrt(variance(values) / len(values))
    assert interval.mean == pytest.approx(mean(values))
    assert interval.low == pytest.approx(mean(values) - Z95 * se, abs=0.1 * Z95 * se)
    assert interval.high == pytest.approx(mean(values) + Z95 * se, abs=0.1 * Z95 * se)


def test_sign_test_is_the_exact_binomial_tail() -> None:
    # 9 wins of 10 decided: p = 2 · P(X ≥ 9) = 2 · (C(10,9) + C(10,10)) / 2^10.
    assert sign_test(9, 1).p_value == pytest.approx(2 * (10 + 1) / 1024)
    assert sign_test(1, 9).p_value == pytest.approx(sign_test(9, 1).p_value)
    tail = sum(math.comb(30, k) for k in range(20, 31)) / 2**30
    assert sign_test(20, 10).p_value == pytest.approx(2 * tail)
    assert sign_test(5, 5).p_value == 1.0
    assert sign_test(0, 0).p_value == 1.0  # only ties: nothing decided
    with pytest.raises(ValueError, match="negative"):
        sign_test(-1, 2)


def test_sample_ratio_check_is_pearsons_chi_square() -> None:
    # Three equal weights, 3000 users, 900 / 1000 / 1100: chi² = 10 + 0 + 10 = 20 on 2 degrees
    # of freedom, whose survival function is exp(−x/2).
    check = sample_ratio_check({"a": 900, "b": 1000, "c": 1100}, {"a": 1, "b": 1, "c": 1})
    assert check.chi2 == pytest.approx(20.0)
    assert check.p_value == pytest.approx(math.exp(-10))
    assert check.mismatch and check.p_value < SRM_ALPHA
    weighted = sample_ratio_check({"a": 200, "b": 100}, {"a": 2.0, "b": 1.0})
    assert weighted.chi2 == pytest.approx(0.0) and not weighted.mismatch
    assert weighted.expected == {"a": pytest.approx(200.0), "b": pytest.approx(100.0)}
    # One degree of freedom: sf(x) = erfc(sqrt(x / 2)).
    near = sample_ratio_check({"a": 520, "b": 480}, {"a": 1, "b": 1})
    assert near.chi2 == pytest.approx(1.6)
    assert near.p_value == pytest.approx(math.erfc(math.sqrt(0.8))) and not near.mismatch


def test_sample_ratio_check_edges() -> None:
    assert sample_ratio_check({}, {"a": 1, "b": 1}).p_value == 1.0
    missing = sample_ratio_check({"a": 10}, {"a": 1, "b": 1})  # b got nothing
    assert missing.observed == {"a": 10, "b": 0} and missing.chi2 == pytest.approx(10.0)
    stray = sample_ratio_check({"a": 10, "c": 1}, {"a": 1, "b": 1})  # c is not configured
    assert stray.mismatch and stray.p_value == 0.0
    with pytest.raises(ValueError, match="sum to more than 0"):
        sample_ratio_check({"a": 1}, {"a": 0})


def test_searches_needed_is_fleiss_formula() -> None:
    p_a, p_b = 0.10, 0.12
    pooled = (p_a + p_b) / 2
    spread = Z95 * math.sqrt(2 * pooled * (1 - pooled))
    spread += Z80 * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    n = (spread / (p_b - p_a)) ** 2
    needed = searches_needed(p_a, p_b, 1000, 3000)
    assert needed is not None
    assert needed.required == math.ceil(n)
    assert abs(needed.required - 3841) <= 1  # the calculators' answer for 10% → 12%
    assert needed.more == (needed.required - 1000) + (needed.required - 3000)
    assert searches_needed(p_a, p_b, 5000, 5000) == type(needed)(needed.required, 0)
    assert searches_needed(0.1, 0.1, 100, 100) is None
    assert searches_needed(math.nan, 0.1, 0, 100) is None


def test_searches_needed_gives_about_80_percent_power() -> None:
    p_a, p_b = 0.20, 0.25
    needed = searches_needed(p_a, p_b, 0, 0)
    assert needed is not None
    n = needed.required
    rng = np.random.default_rng(11)
    x_a, x_b = rng.binomial(n, p_a, size=4000), rng.binomial(n, p_b, size=4000)
    pooled = (x_a + x_b) / (2 * n)
    z = (x_b - x_a) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = np.mean(np.abs(z) > Z95)
    assert power == pytest.approx(0.8, abs=0.03)


def test_impressions_needed_is_the_one_sample_formula_scaled_by_ties() -> None:
    share = 0.6
    decided = ((Z95 * 0.5 + Z80 * math.sqrt(share * (1 - share))) / (share - 0.5)) ** 2
    no_ties = impressions_needed(60, 40, 0)
    assert no_ties is not None and no_ties.required == math.ceil(decided)
    assert no_ties.more == no_ties.required - 100
    half_tied = impressions_needed(60, 40, 100)  # half of the impressions decide nothing
    assert half_tied is not None and half_tied.required == math.ceil(decided * 2)
    assert impressions_needed(50, 50, 10) is None
    assert impressions_needed(0, 0, 10) is None


def test_impressions_needed_gives_about_80_percent_power_with_the_sign_test() -> None:
    needed = impressions_needed(62, 38, 0)
    assert needed is not None
    n = needed.required
    wins = np.random.default_rng(12).binomial(n, 0.62, size=4000)
    p = np.minimum(
        1.0, 2 * np.minimum(stats.binom.cdf(wins, n, 0.5), stats.binom.sf(wins - 1, n, 0.5))
    )
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.04)
