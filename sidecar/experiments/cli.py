"""``rerank-sidecar experiments report NAME``: what an experiment's UBI logs say.

The statistics and plotting libraries (the ``eval`` extra) load only when the command runs.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sidecar.evaluation.cli_options import (
    ApiKeyOption,
    ConfigOption,
    UrlOption,
    UserOption,
    cluster,
    refusal,
    settings_or_exit,
)
from sidecar.files import write_atomically
from sidecar.settings import Settings

if TYPE_CHECKING:
    from sidecar.evaluation.statistics import Interval
    from sidecar.experiments.analysis import ExperimentAnalysis

experiments_app = typer.Typer(
    help="A/B tests and interleavings of rerank variants.", no_args_is_help=True
)
console = Console()


@experiments_app.callback()
def experiments_group() -> None:
    """A/B tests and interleavings of rerank variants: reports from the UBI logs."""


DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def weights_for(settings: Settings, name: str) -> dict[str, float] | None:
    """The traffic split of experiment ``name`` as the settings configure it; None when they do
    not configure it, or it interleaves (an interleaving has no split)."""
    experiment = next((e for e in settings.experiments if e.name == name), None)
    if experiment is None or experiment.interleave is not None:
        return None
    return experiment.weights()


def parse_moment(value: str, now: datetime) -> datetime:
    """``2026-12-01``, ``2026-12-01T10:00`` (UTC unless an offset is given) or a time ago:
    ``30m``, ``12h``, ``7d``, ``2w``."""
    text = value.strip()
    if match := DURATION.match(text):
        return now - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO date or time nor a duration like 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_weights(value: str) -> dict[str, float]:
    """``a=1,b=2`` as ``{"a": 1.0, "b": 2.0}``; the weights must sum to more than 0."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in value.split(",")):
        name, equals, number = part.partition("=")
        try:
            weight = float(number)
        except ValueError:
            weight = math.nan
        if not equals or not name.strip() or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{part!r} is not name=weight with a weight of 0 or more")
        if name.strip() in weights:
            raise ValueError(f"{name.strip()!r} is given twice")
        weights[name.strip()] = weight
    if not sum(weights.values()) > 0:
        raise ValueError("the weights must sum to more than 0")
    return weights


def _ci(interval: Interval, percent: bool = False) -> str:
    if not math.isfinite(interval.mean):
        return "n/a"
    if percent:
        return f"{interval.mean:.1%} [{interval.low:.1%}, {interval.high:.1%}]"
    return f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else "< 0.001" if value < 0.001 else f"{value:.3f}"


def print_tables(analysis: ExperimentAnalysis) -> None:
    from sidecar.experiments.analysis import verdicts

    srm = analysis.srm
    if srm is not None and srm.mismatch:
        console.print(
            "[bold white on red] SAMPLE RATIO MISMATCH [/bold white on red] "
            f"[bold red]the split is not the configured one (p {_p(srm.p_value)}): "
            "do not trust these results[/bold red]"
        )
    table = Table(
        title=f"{analysis.experiment} · revision {analysis.revision} · "
        f"{analysis.first:%Y-%m-%d %H:%M} to {analysis.last:%Y-%m-%d %H:%M} UTC"
    )
    for column in ("variant", "searches", "users", "CTR", "clicks/search", "MRR", "abandonment"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in analysis.variants:
        name = f"{v.name} (control)" if v.name == analysis.control else v.name
        table.add_row(
            name, f"{v.searches:,}", f"{v.users:,}", _ci(v.ctr, True), _ci(v.clicks_per_search),
            _ci(v.mrr), _ci(v.abandonment, True),
        )  # fmt: skip
    console.print(table)
    if analysis.comparisons:
        tests = Table(title=f"A/B against {analysis.control}")
        for column in ("variant", "Δ CTR", "p (z)", "Δ per-user CTR", "p (Welch)", "needed"):
            tests.add_column(column, justify="left" if column == "variant" else "right")
        for c in analysis.comparisons:
            style = "white" if not c.significant else "green" if c.ctr.difference > 0 else "red"
            d = c.user_ctr_difference
            tests.add_row(
                c.variant,
                f"[{style}]{c.ctr.difference:+.2%}[/{style}]",
                _p(c.ctr.p_value),
                f"{d.mean:+.2%} [{d.low:+.2%}, {d.high:+.2%}]" if math.isfinite(d.mean) else "n/a",
                _p(c.user_ctr.p_value),
                f"{c.needed.more:,} more" if c.needed is not None else "n/a",
            )
        console.print(tests)
    inter = analysis.interleaving
    if inter is not None:
        control, challenger = inter.teams
        table = Table(title=f"Interleaving {challenger} vs {control}")
        for column in ("impressions", f"{challenger} won", f"{control} won", "tied",
                       f"{challenger} win rate", "p (sign)", "winner"):  # fmt: skip
            table.add_column(column, justify="right")
        table.add_row(
            f"{inter.impressions:,}", f"{inter.wins:,}", f"{inter.losses:,}", f"{inter.ties:,}",
            _ci(inter.win_rate, True), _p(inter.sign.p_value), inter.winner or "none",
        )  # fmt: skip
        console.print(table)
    for line in verdicts(analysis):
        console.print(f"• {line}")
    others = [r.revision for r in analysis.revisions if r.revision != analysis.revision]
    if others:
        console.print(
            f"[dim]other revisions (not mixed in; --revision picks one): {', '.join(others)}[/dim]"
        )


@experiments_app.command("report")
def report_command(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    since: Annotated[
        str | None,
        typer.Option(help="Searches from this time: 2026-12-01, 2026-12-01T10:00 (UTC) or 7d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Searches before this time (same forms as --since).")
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="The revision to analyse (default: the newest).")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            help="The configured split, name=weight,... for the sample ratio check (default: "
            "the experiment's weights in the settings)."
        ),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(help="The variant the others are compared with (default: the first)."),
    ] = None,
    abandon_after: Annotated[
        float,
        typer.Option(min=0, help="Minutes without a click or a new search that abandon a search."),
    ] = 30.0,
    out: Annotated[Path, typer.Option(help="Directory for report.html and report.json.")] = Path(
        "rerank-experiment-report"
    ),
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    user: UserOption = None,
    config: ConfigOption = None,
) -> None:
    """Report on an experiment from the ubi_queries and ubi_events indices.

    Prints per variant the searches, users, CTR, clicks per search, MRR of the first click and
    abandonment with 95% intervals; the A/B tests against the control (z-test on CTR, Welch's t
    and a user-level bootstrap on per-user CTR) or the interleaving's wins, losses and ties with
    a sign test; the sample ratio check; and the searches still needed at 80% power. Writes
    report.html and report.json. Exit codes: 0 done, 1 the cluster failed, 2 bad input."""
    try:
        from sidecar.evaluation.cluster import ClusterError
        from sidecar.experiments.analysis import AnalysisError, analyze, report_json
        from sidecar.experiments.log_reader import read_logs
        from sidecar.experiments.report_html import render_html
    except ImportError as exc:
        raise refusal(
            f"experiments report needs the eval extra: pip install 'rerank-sidecar[eval]' ({exc})",
            2,
        ) from None

    settings = settings_or_exit(config)
    now = datetime.now(UTC)
    try:
        start = parse_moment(since, now) if since else None
        end = parse_moment(until, now) if until else None
    except ValueError as exc:
        raise refusal(f"--since/--until: {exc}", 2) from None
    try:
        split = parse_weights(weights) if weights else weights_for(settings, name)
    except ValueError as exc:
        raise refusal(f"--weights: {exc}", 2) from None
    with cluster(settings, url, api_key, user) as client:
        try:
            logs = read_logs(
                client, name, since=start, until=end,
                queries_index=settings.ubi.queries_index, events_index=settings.ubi.events_index,
            )  # fmt: skip
        except ClusterError as exc:
            raise refusal(f"reading the UBI logs failed: {exc}", 1) from None
    try:
        analysis = analyze(
            name, logs.searches, logs.clicks, revision=revision, weights=split, control=control,
            abandon_after=timedelta(minutes=abandon_after),
        )  # fmt: skip
    except AnalysisError as exc:
        raise refusal(str(exc), 2) from None
    print_tables(analysis)
    if logs.unreadable:
        console.print(
            f"[yellow]{logs.unreadable} unreadable ubi_queries documents skipped[/yellow]"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "report.html", render_html(analysis))
    data = report_json(analysis)
    data["unreadable_searches"] = logs.unreadable
    write_atomically(out / "report.json", json.dumps(data, indent=2, ensure_ascii=False))
    console.print(f"report: [bold]{out / 'report.html'}[/bold]  (and report.json)")
