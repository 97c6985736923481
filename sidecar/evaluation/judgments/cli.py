"""``rerank-sidecar judgments``: import, export and click-model judgments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

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
from sidecar.evaluation.cluster import ClusterError
from sidecar.evaluation.judgments import formats, store, ubi_log
from sidecar.evaluation.judgments.coec import coec, grade, to_judgments

judgments_app = typer.Typer(
    help="Relevance judgments in the cluster's rerank-judgments index.", no_args_is_help=True
)
console = Console()

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="csv, jsonl, rre or quepid. Default: from the file name (.csv, .jsonl, .json; a "
        ".csv whose header is query,docid,rating is Quepid's).",
    ),
]


def _format(value: str | None) -> formats.Format | None:
    if value is not None and value not in formats.FORMATS:
        raise refusal(f"--format must be one of {', '.join(formats.FORMATS)}, not {value!r}", 2)
    return value  # type: ignore[return-value]


@judgments_app.command("import")
def cmd_import(
    path: Annotated[Path, typer.Argument(help="The judgments file.")],
    format: FormatOption = None,
    index: Annotated[
        str | None, typer.Option(help="The judged index, for files that name none (Quepid).")
    ] = None,
    rater: Annotated[str | None, typer.Option(help="Rater of judgments that name none.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    user: UserOption = None,
    config: ConfigOption = None,
) -> None:
    """Read a judgments file into rerank-judgments (checked whole first; a re-import replaces)."""
    settings = settings_or_exit(config)
    try:
        judgments = formats.read_judgments(path, _format(format), index=index, rater=rater)
    except formats.JudgmentFormatError as exc:
        raise refusal(exc, 2) from None
    if not judgments:
        raise refusal(ValueError(f"{path}: no judgments in it"), 2)
    try:
        with cluster(settings, url, api_key, user) as client:
            written = store.write_judgments(client, judgments)
    except ClusterError as exc:
        raise refusal(exc, 1) from None
    queries = len({j.query_id for j in judgments})
    console.print(f"imported {written} judgments of {queries} queries into {store.JUDGMENTS_INDEX}")


@judgments_app.command("export")
def cmd_export(
    path: Annotated[Path, typer.Argument(help="The file to write.")],
    format: FormatOption = None,
    index: Annotated[str | None, typer.Option(help="Only judgments of this index.")] = None,
    rater: Annotated[str | None, typer.Option(help="Only this rater's judgments.")] = None,
    source: Annotated[str | None, typer.Option(help="Only judgments of this source.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    user: UserOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the stored judgments to a file."""
    settings = settings_or_exit(config)
    fmt = _format(format)
    try:
        with cluster(settings, url, api_key, user) as client:
            judgments = store.read_judgments(client, judged_index=index, rater=rater, source=source)
        formats.write_judgments(judgments, path, fmt)
    except (ClusterError, formats.JudgmentFormatError, OSError) as exc:
        raise refusal(exc, 1) from None
    console.print(f"exported {len(judgments)} judgments to {path}")


@judgments_app.command("from-clicks")
def cmd_from_clicks(
    index: Annotated[str, typer.Option(help="The index the clicked documents belong to.")],
    since: Annotated[
        datetime | None, typer.Option(help="Only searches and clicks from then on.")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Only those before then.")] = None,
    application: Annotated[
        str | None, typer.Option(help="Only searches of this UBI application.")
    ] = None,
    min_impressions: Annotated[
        int, typer.Option(min=1, help="Leave out pairs shown fewer times than this.")
    ] = 10,
    max_position: Annotated[
        int | None, typer.Option(min=1, help="Ignore impressions below this rank.")
    ] = None,
    thresholds: Annotated[
        str, typer.Option(help="COEC values that reach each next grade, increasing.")
    ] = "0.5,1,2",
    out: Annotated[
        Path | None, typer.Option(help="Write them to this file instead of the index.")
    ] = None,
    format: FormatOption = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    user: UserOption = None,
    config: ConfigOption = None,
) -> None:
    """Implicit judgments from UBI click logs with the COEC click model.

    COEC: a document's clicks over the clicks expected at the positions it was shown in
    (ubi_queries and ubi_events)."""
    settings = settings_or_exit(config)
    try:
        grades = [float(t) for t in thresholds.split(",") if t.strip()]
        grade(0.0, grades)
    except ValueError as exc:
        raise refusal(ValueError(f"--thresholds: {exc}"), 2) from None
    fmt = _format(format)
    try:
        with cluster(settings, url, api_key, user) as client:
            model = coec(
                ubi_log.read_searches(client, since=since, until=until, application=application),
                ubi_log.read_clicks(client, since=since, until=until),
                min_impressions=min_impressions,
                max_position=max_position,
            )
            judgments = to_judgments(model, index, grades)
            if out is None:
                store.write_judgments(client, judgments)
        if out is not None:
            formats.write_judgments(judgments, out, fmt)
    except (ClusterError, formats.JudgmentFormatError, OSError, ValueError) as exc:
        raise refusal(exc, 1) from None
    table = Table(title="position prior (clicks / impressions)")
    table.add_column("position", justify="right")
    table.add_column("CTR", justify="right")
    for position, ctr in list(model.ctr_at_position.items())[:10]:
        table.add_row(str(position), f"{ctr:.3f}")
    console.print(table)
    where = str(out) if out is not None else store.JUDGMENTS_INDEX
    console.print(
        f"{len(judgments)} judgments of {len({j.query_id for j in judgments})} queries to {where};"
        f" {model.below_cut} pairs under {min_impressions} impressions left out,"
        f" {model.unmatched_clicks} clicks on documents their search did not show ignored"
    )
