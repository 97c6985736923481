"""``rerank-sidecar eval``: compare rerank profiles (and the engine's order) on judged queries.

The statistics and plotting libraries (the ``eval`` extra) load only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from sidecar.evaluation.cluster import Cluster
    from sidecar.evaluation.judgments.model import Judgment
    from sidecar.evaluation.metric_names import MetricName
    from sidecar.evaluation.report import EvalReport

console = Console()
JUDGMENTS_IN_INDEX = "index"


def _judgments(client: Cluster, source: str, index: str) -> tuple[list[Judgment], str]:
    from sidecar.evaluation.judgments import JudgmentFormatError, read_judgments
    from sidecar.evaluation.judgments.store import JUDGMENTS_INDEX
    from sidecar.evaluation.judgments.store import read_judgments as stored

    if source == JUDGMENTS_IN_INDEX:
        return stored(client, judged_index=index), JUDGMENTS_INDEX
    path = Path(source)
    if not path.is_file():
        raise refusal(f"--judgments: {source} is neither a file nor {JUDGMENTS_IN_INDEX!r}", 2)
    try:
        return read_judgments(path, index=index), path.name
    except JudgmentFormatError as exc:
        raise refusal(f"--judgments: {exc}", 2) from None


def _template(path: Path | None) -> dict[str, Any] | None:
    from sidecar.evaluation.runner import PLACEHOLDER, contains_placeholder

    if path is None:
        return None
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise refusal(f"--template: cannot read {path}: {exc}", 2) from None
    if not isinstance(template, dict) or not contains_placeholder(template):
        raise refusal(f"--template: {path} must be a search body with a {PLACEHOLDER!r} string", 2)
    return template


def _metrics(names: list[str]) -> list[MetricName]:
    from sidecar.evaluation.metric_names import parse_metric_name

    try:
        metrics = [parse_metric_name(n) for group in names for n in group.split(",") if n.strip()]
    except ValueError as exc:
        raise refusal(f"--metric: {exc}", 2) from None
    return list(dict.fromkeys(metrics))


def print_tables(report: EvalReport) -> None:
    for metric in report.metrics:
        table = Table(title=f"{metric.label}  ·  {len(report.queries)} queries, reference "
                      f"{report.reference.name}")  # fmt: skip
        for column in ("variant", "mean", "95% CI", "Δ", "Δ 95% CI", "p", "won/lost/tied"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        table.add_column("failed", justify="right")
        for variant in report.variants:
            s = report.summary(variant, metric)
            row = [variant.name, f"{s.interval.mean:.4f}",
                   f"[{s.interval.low:.4f}, {s.interval.high:.4f}]"]  # fmt: skip
            c = s.comparison
            if c is None:
                row += ["", "", "", ""]
            else:
                style = "green" if c.delta.low > 0 else "red" if c.delta.high < 0 else "white"
                row += [
                    f"[{style}]{c.delta.mean:+.4f}[/{style}]",
                    f"[{c.delta.low:+.4f}, {c.delta.high:+.4f}]",
                    "< 0.001" if c.p_value < 0.001 else f"{c.p_value:.3f}",
                    f"{c.wins}/{c.losses}/{c.ties}",
                ]
            table.add_row(*row, str(s.failed))
        console.print(table)


def eval_command(
    index: Annotated[str, typer.Option(help="The index (or alias, pattern) to search.")],
    judgments: Annotated[
        str,
        typer.Option(
            help="A judgments file (csv, jsonl, RRE, Quepid), or 'index': the judgments of "
            "--index in the rerank-judgments index."
        ),
    ],
    profile: Annotated[
        list[str] | None, typer.Option(help="A rerank profile to evaluate; repeat to compare.")
    ] = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also the engine's own order (the reference).")
    ] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="ndcg@k, dcg@k, precision@k, recall@k, mrr@k or err@k; repeat."),
    ] = None,
    field: Annotated[
        list[str] | None, typer.Option(help="Fields the query text is matched on (multi_match).")
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(help="A search body (JSON) whose '{{query}}' strings take the query text."),
    ] = None,
    relevant_rating: Annotated[
        int, typer.Option(min=0, help="Lowest relevant rating (precision, recall, mrr).")
    ] = 1,
    out: Annotated[Path, typer.Option(help="Directory for report.html and report.json.")] = Path(
        "rerank-eval-report"
    ),
    label: Annotated[str | None, typer.Option(help="A name for this run in reports.")] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Record the run in rerank-eval-runs.")
    ] = True,
    display_field: Annotated[str, typer.Option(help="Field shown as a hit's title.")] = "title",
    image_field: Annotated[
        str | None, typer.Option(help="Field holding a hit's image (a URL or a local path).")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Rated requests searched at once (max_concurrent_searches).")
    ] = 10,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    user: UserOption = None,
    config: ConfigOption = None,
) -> None:
    """Evaluate rerank profiles, and the engine's order, on judged queries through the sidecar.

    Runs _rank_eval for every variant and metric, prints each metric's table (mean, 95%
    bootstrap interval, paired difference to the reference with a paired t-test, won/lost/tied
    queries), writes an HTML report and a JSON file, and records the run in rerank-eval-runs.
    Exit codes: 0 done, 1 the cluster or sidecar failed, 2 bad input."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from sidecar.evaluation.cluster import ClusterError
        from sidecar.evaluation.report import build_report, report_json, run_documents
        from sidecar.evaluation.report_html import render_html
        from sidecar.evaluation.runner import (
            BASELINE,
            Variant,
            eval_queries,
            fetch_display,
            run_eval,
        )
        from sidecar.evaluation.runs_store import RUNS_INDEX, write_run
    except ImportError as exc:
        raise refusal(
            f"eval needs the eval extra: pip install 'rerank-sidecar[eval]' ({exc})", 2
        ) from None

    settings = settings_or_exit(config)
    metrics = _metrics(metric or ["ndcg@10"])
    search_template = _template(template)
    variants = ([BASELINE] if baseline else []) + [
        Variant(p, p) for p in dict.fromkeys(profile or [])
    ]
    if len(variants) < 2:
        raise refusal(
            "compare at least two variants: --baseline and --profile, or two --profile", 2
        )
    if BASELINE.name in (profile or []):
        raise refusal(f"--profile {BASELINE.name!r} would be confused with --baseline", 2)

    with cluster(settings, url, api_key, user) as client:
        try:
            loaded, source = _judgments(client, judgments, index)
        except ClusterError as exc:
            raise refusal(f"reading the judgments failed: {exc}", 1) from None
        queries = eval_queries(loaded)
        if not queries:
            raise refusal(f"--judgments: no judgments for {index!r} in {judgments}", 2)
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        steps = len(variants) * len(metrics)
        with progress:
            task = progress.add_task(f"evaluating {len(queries)} queries", total=steps + 1)

            def done(variant: Variant, metric: Any) -> None:
                progress.update(task, advance=1, description=f"{variant.name} · {metric.label}")

            try:
                runs = run_eval(
                    client, index, queries, variants, metrics,
                    fields=field or (), template=search_template,
                    relevant_rating=relevant_rating, max_concurrent_searches=concurrency,
                    on_done=done,
                )  # fmt: skip
                report = build_report(
                    index=index, judgments=source, variants=variants, reference=variants[0],
                    metrics=metrics, queries=queries, runs=runs, label=label,
                )  # fmt: skip
                keys = [
                    (h.index, h.doc_id)
                    for run in runs
                    if run.metric == metrics[0]
                    for result in run.results.values()
                    for h in result.hits[:5]
                ]
                progress.update(task, description="fetching the hits shown in the report")
                display = fetch_display(client, keys, display_field, image_field)
                progress.update(task, advance=1)
            except ClusterError as exc:
                raise refusal(f"the evaluation failed: {exc}", 1) from None

        print_tables(report)
        out.mkdir(parents=True, exist_ok=True)
        page = render_html(report, display, display_field=display_field, image_field=image_field)
        write_atomically(out / "report.html", page)
        write_atomically(
            out / "report.json", json.dumps(report_json(report), indent=2, ensure_ascii=False)
        )
        console.print(f"report: [bold]{out / 'report.html'}[/bold]  (and report.json)")
        if store:
            try:
                written = write_run(client, run_documents(report))
            except ClusterError as exc:
                raise refusal(f"recording the run in {RUNS_INDEX} failed: {exc}", 1) from None
            console.print(f"recorded run {report.run_id} in {RUNS_INDEX} ({written} documents)")
