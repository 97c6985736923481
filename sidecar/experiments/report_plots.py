"""The experiment report's plots, drawn with matplotlib (Agg, no display) into PNG data URIs so
the HTML file is one self-contained page; the look of the eval report's plots."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from sidecar.evaluation.report_plots import PALETTE, png_data_uri
from sidecar.evaluation.statistics import Interval
from sidecar.experiments.analysis import ExperimentAnalysis, VariantStats

MAX_DAY_LABELS = 10


def colors(analysis: ExperimentAnalysis) -> dict[str, str]:
    """One color per variant, the control grey; the interleaving's teams (control first) come
    before the interleaved searches themselves."""
    lead = [analysis.control] if analysis.control else []
    teams = list(analysis.interleaving.teams) if analysis.interleaving is not None else []
    names = dict.fromkeys([*lead, *teams, *(v.name for v in analysis.variants)])
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _errors(intervals: list[Interval]) -> tuple[list[float], list[list[float]]]:
    means, below, above = [], [], []
    for i in intervals:
        mean = i.mean if math.isfinite(i.mean) else 0.0
        means.append(mean)
        below.append(max(mean - i.low, 0.0) if math.isfinite(i.low) else 0.0)
        above.append(max(i.high - mean, 0.0) if math.isfinite(i.high) else 0.0)
    return means, [below, above]


def _days(ax: Axes, days: Sequence[date]) -> None:
    """Days as x positions (days since the first), labelled with at most MAX_DAY_LABELS dates."""
    if days:
        first, last = min(days), max(days)
        step = max(1, math.ceil(((last - first).days + 1) / MAX_DAY_LABELS))
        ticks = list(range(0, (last - first).days + 1, step))
        ax.set_xticks(ticks, [(first + timedelta(days=t)).strftime("%b %d") for t in ticks])
        ax.set_xlim(-0.5, (last - first).days + 0.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.3)


def _x(day: date, days: Sequence[date]) -> int:
    return (day - min(days)).days


def daily_ctr(analysis: ExperimentAnalysis) -> str:
    """Per UTC day, each variant's CTR with its 95% Wilson interval."""
    palette = colors(analysis)
    days = [point.day for point in analysis.daily_ctr]
    series: dict[str, list[tuple[int, Interval]]] = defaultdict(list)
    for point in analysis.daily_ctr:
        series[point.variant].append((_x(point.day, days), point.ctr))
    figure, ax = plt.subplots(figsize=(9.5, 3.8))
    for name, points in series.items():
        xs = [x for x, _ in points]
        means, errors = _errors([i for _, i in points])
        ax.errorbar(
            xs, means, yerr=errors, color=palette[name], label=name, marker="o", markersize=5,
            linewidth=1.8, capsize=4, elinewidth=1.2,
        )  # fmt: skip
    ax.set_ylim(0, 1)
    ax.set_ylabel("CTR", fontsize=9)
    _days(ax, days)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Daily CTR per variant, with 95% Wilson intervals", fontsize=11)
    return png_data_uri(figure)


def daily_win_rate(analysis: ExperimentAnalysis) -> str:
    """Per UTC day, the challenger's share of the decided impressions with its 95% interval."""
    inter = analysis.interleaving
    assert inter is not None
    palette = colors(analysis)
    days = [point.day for point in analysis.daily_wins]
    decided = [p for p in analysis.daily_wins if math.isfinite(p.win_rate.mean)]  # not all ties
    xs = [_x(point.day, days) for point in decided]
    means, errors = _errors([point.win_rate for point in decided])
    figure, ax = plt.subplots(figsize=(9.5, 3.4))
    ax.axhline(0.5, color="#999999", linewidth=1, linestyle="--")
    ax.errorbar(
        xs, means, yerr=errors, color=palette[inter.teams[1]], marker="o", markersize=5,
        linewidth=1.8, capsize=4, label=f"{inter.teams[1]} wins / decided",
    )  # fmt: skip
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{inter.teams[1]} win rate", fontsize=9)
    _days(ax, days)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        f"Interleaving: daily win rate of {inter.teams[1]} against {inter.teams[0]} "
        "(ties left out), 95% Wilson intervals",
        fontsize=11,
    )
    return png_data_uri(figure)


def variant_bars(analysis: ExperimentAnalysis) -> str:
    """Per metric (CTR, clicks per search, MRR, abandonment), each variant with its interval."""
    palette = colors(analysis)
    metrics: list[tuple[str, Callable[[VariantStats], Interval]]] = [
        ("CTR", lambda v: v.ctr),
        ("clicks per search", lambda v: v.clicks_per_search),
        ("MRR of the first click", lambda v: v.mrr),
        ("abandonment", lambda v: v.abandonment),
    ]
    variants = [v for v in analysis.variants if v.searches]
    figure, axes = plt.subplots(1, len(metrics), figsize=(13, 3.6), squeeze=False)
    for ax, (label, pick) in zip(axes[0], metrics, strict=True):
        names = [v.name for v in variants]
        means, errors = _errors([pick(v) for v in variants])
        ax.bar(
            names, means, yerr=errors, capsize=6, color=[palette[n] for n in names],
            edgecolor="white",
        )  # fmt: skip
        top = max([1.0, *(m + e for m, e in zip(means, errors[1], strict=True))])
        ax.set_ylim(0, top * 1.1)
        ax.set_title(label, fontsize=11, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="x", rotation=15)
    figure.suptitle("Per variant, with 95% intervals", fontsize=11, y=1.04)
    return png_data_uri(figure)
