"""The report's plots, drawn with matplotlib (Agg, no display) into PNG data URIs so the HTML
file is one self-contained page."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sidecar.evaluation.report import EvalReport

PALETTE = ["#8a94a6", "#2f6fde", "#e0782c", "#2b9c6a", "#b0408f", "#c9a227"]


def colors(report: EvalReport) -> dict[str, str]:
    """One color per variant, the reference grey."""
    out = {report.reference.name: PALETTE[0]}
    for i, variant in enumerate(report.challengers, start=1):
        out[variant.name] = PALETTE[i % len(PALETTE)]
    return out


def png_data_uri(figure: Figure) -> str:
    """The figure as an inline PNG for the HTML reports (the figure is closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def metric_bars(report: EvalReport) -> str:
    """Per metric, each variant's mean with its 95% interval."""
    palette = colors(report)
    count = len(report.metrics)
    figure, axes = plt.subplots(1, count, figsize=(max(4.2 * count, 5), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], report.metrics, strict=True):
        names, means, lows, highs = [], [], [], []
        for variant in report.variants:
            interval = report.summary(variant, metric).interval
            names.append(variant.name)
            mean = interval.mean if math.isfinite(interval.mean) else 0.0
            means.append(mean)
            lows.append(max(mean - interval.low, 0) if math.isfinite(interval.low) else 0)
            highs.append(max(interval.high - mean, 0) if math.isfinite(interval.high) else 0)
        bars = ax.bar(
            names,
            means,
            yerr=[lows, highs],
            capsize=6,
            color=[palette[n] for n in names],
            edgecolor="white",
        )
        for bar, mean in zip(bars, means, strict=True):
            # Inside the bar, clear of the interval's whiskers.
            inside = mean > 0.12
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                mean / 2 if inside else mean + 0.02,
                f"{mean:.3f}",
                ha="center",
                va="center" if inside else "bottom",
                fontsize=9,
                fontweight="bold",
                color="white" if inside else "#1d2433",
            )
        ax.set_title(metric.label, fontsize=11, fontweight="bold")
        ax.set_ylim(0, max(1.0, max(h + m for h, m in zip(highs, means, strict=True)) * 1.15))
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="x", rotation=15)
    figure.suptitle("Mean per query, with 95% bootstrap intervals", fontsize=11)
    return png_data_uri(figure)


def per_query_scatter(report: EvalReport) -> str:
    """Per metric, each query's score under a challenger against the reference's: above the
    diagonal the challenger did better on that query."""
    palette = colors(report)
    count = len(report.metrics)
    figure, axes = plt.subplots(1, count, figsize=(max(4.0 * count, 4.5), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], report.metrics, strict=True):
        reference = report.run(report.reference, metric).scores
        top = 1.0
        for variant in report.challengers:
            mine = report.run(variant, metric).scores
            shared = [q for q in reference if q in mine]
            xs = [reference[q] for q in shared]
            ys = [mine[q] for q in shared]
            top = max([top, *xs, *ys])
            ax.scatter(
                xs, ys, s=28, alpha=0.75, color=palette[variant.name], label=variant.name,
                edgecolors="white", linewidths=0.5,
            )  # fmt: skip
        ax.plot([0, top], [0, top], color="#999999", linewidth=1, linestyle="--")
        ax.set_xlim(-0.03 * top, top * 1.05)
        ax.set_ylim(-0.03 * top, top * 1.05)
        ax.set_xlabel(f"{report.reference.name}", fontsize=9)
        ax.set_ylabel("challenger", fontsize=9)
        ax.set_title(metric.label, fontsize=11, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.3)
        if report.challengers:
            ax.legend(fontsize=8, loc="lower right")
    figure.suptitle("Per query: challenger against reference", fontsize=11)
    return png_data_uri(figure)
