"""The statistics of an eval run, as plain functions over per-query scores.

- A variant's mean gets a 95% percentile bootstrap interval (queries resampled with
  replacement; a fixed seed, so a report is reproducible).
- A variant is compared with the reference on the queries both evaluated: the mean paired
  difference, its bootstrap interval, a two-sided paired t-test (Sakai 2014: as reliable as
  the randomization tests for IR metrics at these sample sizes, and what readers know), and
  wins, losses and ties per query.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 20080101
TIE = 1e-9  # differences this small are float noise, not a win


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedComparison:
    queries: int
    delta: Interval
    p_value: float
    wins: int
    losses: int
    ties: int


def bootstrap_mean(
    values: Sequence[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES
) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval. One value (or all equal)
    has a zero-width interval; none has NaN everywhere."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high))


def paired_t_test(differences: Sequence[float]) -> float:
    """Two-sided p-value that the mean paired difference is zero. All-zero differences: 1;
    constant non-zero ones: 0 (no variance left to explain them by chance)."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return 1.0 if d.size == 0 or abs(d[0]) <= TIE else math.nan
    if np.all(np.abs(d) <= TIE):
        return 1.0
    if np.all(d == d[0]):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_1samp(d, 0.0)
    return float(result.pvalue)


def compare(reference: Mapping[str, float], variant: Mapping[str, float]) -> PairedComparison:
    """``variant`` against ``reference`` on the query ids both have."""
    shared = [q for q in reference if q in variant]
    differences = [variant[q] - reference[q] for q in shared]
    return PairedComparison(
        queries=len(shared),
        delta=bootstrap_mean(differences),
        p_value=paired_t_test(differences),
        wins=sum(d > TIE for d in differences),
        losses=sum(d < -TIE for d in differences),
        ties=sum(abs(d) <= TIE for d in differences),
    )
