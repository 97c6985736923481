"""The statistics of an experiment report, as plain functions over counts and per-user values.

- A proportion (CTR, abandonment, an interleaving win share) gets a Wilson score interval.
- A/B on a proportion of searches: the pooled two-proportion z-test, two-sided.
- A mean over searches (clicks per search, MRR) gets a percentile bootstrap interval, as in the
  eval report, drawn so that it fits in memory at 100,000 searches (``mean_interval``).
- A/B on per-user values (a user's CTR): Welch's t-test, and a bootstrap interval of the
  difference of means that resamples users within each variant (users, not searches, are the
  independent units: one user's searches share their taste).
- Interleaving: the two-sided exact sign test (binomial, p = 0.5) on the impressions one team
  won, ties left out.
- Sample ratio mismatch: a chi-square goodness-of-fit of the units each variant got against the
  configured weights, flagged below p = 0.001. That threshold is the usual one for SRM checks
  (Fabijan et al. 2019, "Diagnosing sample ratio mismatch"): the check runs on every report,
  so it must rarely cry wolf, and a real assignment bug over thousands of users lands far below it.
- Sample size: how many more searches (or impressions) the observed effect needs to be found at
  80% power and a two-sided alpha of 0.05 (normal approximations; Fleiss for two proportions).

Every function answers NaN where the data cannot say anything (no searches), rather than raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sidecar.evaluation.statistics import CONFIDENCE, RESAMPLES, SEED, Interval

ALPHA = 0.05
POWER = 0.8
SRM_ALPHA = 0.001
BOOTSTRAP_CELLS = 4_000_000  # values drawn at once by a bootstrap (32 MB of float64)


@dataclass(frozen=True)
class ZTest:
    difference: float  # p_b − p_a
    z: float
    p_value: float


@dataclass(frozen=True)
class WelchTest:
    difference: float  # mean_b − mean_a
    t: float
    p_value: float


@dataclass(frozen=True)
class SignTest:
    wins: int
    losses: int
    p_value: float


@dataclass(frozen=True)
class RatioCheck:
    """Sample ratio mismatch: the units each variant got against the configured weights."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


@dataclass(frozen=True)
class SampleSize:
    required: int  # per variant (A/B) or impressions in all (interleaving)
    more: int  # still to collect, 0 when there are enough


def wilson_interval(successes: int, n: int, *, confidence: float = CONFIDENCE) -> Interval:
    """The share ``successes / n`` with its Wilson score interval; NaN when ``n`` is 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    share = successes / n
    center = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # At the ends the bound is exactly 0 or 1; the formula lands a rounding error inside.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return Interval(share, low, high)


def two_proportion_z_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> ZTest:
    """Pooled two-proportion z-test of ``b`` against ``a``, two-sided. Both shares 0 (or both
    1): no evidence either way, z 0 and p 1; an empty side: NaN."""
    if n_a == 0 or n_b == 0:
        return ZTest(math.nan, math.nan, math.nan)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return ZTest(p_b - p_a, 0.0, 1.0)
    z = (p_b - p_a) / se
    return ZTest(p_b - p_a, z, float(2 * stats.norm.sf(abs(z))))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchTest:
    """Welch's t-test of the mean of ``b`` against that of ``a``, two-sided. Fewer than two
    values on a side: NaN. No variance on either side: p 1 when the means are equal, else 0
    (nothing left to explain the gap by chance)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        difference = float(y.mean() - x.mean()) if x.size and y.size else math.nan
        return WelchTest(difference, math.nan, math.nan)
    difference = float(y.mean() - x.mean())
    if np.all(x == x[0]) and np.all(y == y[0]):
        if difference == 0:
            return WelchTest(0.0, 0.0, 1.0)
        return WelchTest(difference, math.copysign(math.inf, difference), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(y, x, equal_var=False)
    return WelchTest(difference, float(result.statistic), float(result.pvalue))


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``resamples`` bootstrap samples of ``values``. Few distinct values (clicks
    per search, reciprocal ranks): draw how often each is picked (a multinomial, the same
    distribution in resamples × distinct cells); otherwise draw indices, a block of resamples
    at a time, so 100,000 users never need a 10,000 × 100,000 matrix at once."""
    n = values.size
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size * 4 <= n:
        picks = rng.multinomial(n, counts / n, size=resamples)
        means: np.ndarray = picks @ distinct / n
        return means
    means = np.empty(resamples)
    block = max(1, BOOTSTRAP_CELLS // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """The mean of ``values`` with its percentile bootstrap interval: the eval report's
    ``bootstrap_mean``, drawn so that it fits in memory for an experiment's 100,000 searches
    (see ``_resampled_means``). No value: NaN; one value, or all equal: a zero-width interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if np.all(data == data[0]):
        return Interval(mean, mean, mean)
    low, high = _percentiles(
        _resampled_means(data, resamples, np.random.default_rng(seed)), confidence
    )
    return Interval(mean, low, high)


def bootstrap_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``mean(b) − mean(a)`` with its percentile bootstrap interval, each side resampled with
    replacement on its own (a user-level bootstrap when the values are per user). A fixed seed
    keeps a report reproducible; an empty side gives NaN."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    difference = float(y.mean() - x.mean())
    rng = np.random.default_rng(seed)
    means_x = _resampled_means(x, resamples, rng)
    means_y = _resampled_means(y, resamples, rng)
    low, high = _percentiles(means_y - means_x, confidence)
    return Interval(difference, low, high)


def sign_test(wins: int, losses: int) -> SignTest:
    """Two-sided exact binomial test of ``wins`` against ``losses`` at p = 0.5 (the ties are
    left out by the caller). No decided impression: p 1."""
    if wins < 0 or losses < 0:
        raise ValueError(f"negative counts: {wins} wins, {losses} losses")
    if wins + losses == 0:
        return SignTest(0, 0, 1.0)
    result = stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided")
    return SignTest(wins, losses, float(result.pvalue))


def sample_ratio_check(observed: Mapping[str, int], weights: Mapping[str, float]) -> RatioCheck:
    """Chi-square goodness-of-fit of ``observed`` units per variant against ``weights``. A
    variant missing from ``weights`` should have got nothing (weight 0); units where a weight
    of 0 expects none are an outright mismatch (p 0). No units, or one variant: p 1."""
    names = list(dict.fromkeys([*weights, *observed]))
    total_weight = sum(max(weights.get(n, 0.0), 0.0) for n in names)
    if not total_weight > 0:
        raise ValueError(f"the weights must sum to more than 0, not {dict(weights)}")
    counts = {n: int(observed.get(n, 0)) for n in names}
    total = sum(counts.values())
    expected = {n: total * max(weights.get(n, 0.0), 0.0) / total_weight for n in names}
    if total == 0 or len(names) < 2:
        return RatioCheck(counts, expected, 0.0, 1.0)
    if any(expected[n] == 0 and counts[n] > 0 for n in names):
        return RatioCheck(counts, expected, math.inf, 0.0)
    kept = [n for n in names if expected[n] > 0]
    if len(kept) < 2:
        return RatioCheck(counts, expected, 0.0, 1.0)
    result = stats.chisquare([counts[n] for n in kept], [expected[n] for n in kept])
    return RatioCheck(counts, expected, float(result.statistic), float(result.pvalue))


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def searches_needed(
    p_a: float,
    p_b: float,
    n_a: int,
    n_b: int,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
) -> SampleSize | None:
    """Searches per variant a two-proportion z-test needs to find ``p_b − p_a`` at ``power``,
    and how many more the two variants still need together (each short of it by
    ``required − n``). None when the effect is zero (or unknown): no sample finds it."""
    if not (math.isfinite(p_a) and math.isfinite(p_b)) or p_a == p_b:
        return None
    z_alpha, z_power = _z(alpha, power)
    pooled = (p_a + p_b) / 2
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b)
    )
    required = math.ceil((spread / (p_b - p_a)) ** 2)
    return SampleSize(required, max(0, required - n_a) + max(0, required - n_b))


def impressions_needed(
    wins: int,
    losses: int,
    ties: int,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
) -> SampleSize | None:
    """Impressions a sign test needs to find the observed win share ``wins / (wins + losses)``
    against 0.5 at ``power``: the decided impressions a one-sample binomial test needs, scaled
    up by the share of impressions that ends in a tie. None when the share is 0.5 or no
    impression was decided."""
    decided = wins + losses
    if decided == 0 or 2 * wins == decided:
        return None
    share = wins / decided
    z_alpha, z_power = _z(alpha, power)
    spread = z_alpha * 0.5 + z_power * math.sqrt(share * (1 - share))
    decided_needed = (spread / (share - 0.5)) ** 2
    required = math.ceil(decided_needed * (decided + ties) / decided)
    return SampleSize(required, max(0, required - decided - ties))
