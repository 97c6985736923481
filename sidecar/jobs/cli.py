"""``rerank-sidecar jobs ...``: bulk rescoring jobs through the sidecar's ``/_rerank/jobs``, and
``rerank-sidecar jobs-worker``, the runner that executes them.

Exit codes: 0 the job is done (or the call succeeded); 1 the job failed; 2 the sidecar refused
the request (the reason is printed); 3 the job was cancelled; 4 the sidecar could not be reached.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sidecar.evaluation.cli_options import ConfigOption, settings_or_exit, sidecar_url
from sidecar.settings import Settings

jobs_app = typer.Typer(help="Bulk rescoring jobs: a query set against an index.",
                       no_args_is_help=True)  # fmt: skip
console = Console()
errors = Console(stderr=True)

EXIT_CODES = {"done": 0, "failed": 1, "cancelled": 3}
FINAL = frozenset(EXIT_CODES)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="The sidecar. Default: server.host and server.port of the "
                 "settings.", envvar="RERANK_URL"),
]  # fmt: skip
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="An admin token (admin.tokens). Default: the first one of the "
                 "settings.", envvar="RERANK_ADMIN_TOKEN", show_default=False),
]  # fmt: skip


class Client:
    def __init__(self, settings: Settings, url: str | None, token: str | None) -> None:
        if token is None and settings.admin.tokens:
            token = settings.admin.tokens[0].get_secret_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url or sidecar_url(settings), headers=headers,
                                  timeout=httpx.Timeout(120.0, connect=5.0))  # fmt: skip

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON answer; exits 2 with the sidecar's reason on a refusal, 4 when it cannot be
        reached."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            errors.print(f"[red]cannot reach the sidecar:[/red] {escape(str(exc))}")
            raise typer.Exit(4) from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"reason": response.text[:500]}}
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            reason = error.get("reason") if isinstance(error, dict) else body
            errors.print(f"[red]refused ({response.status_code}):[/red] {escape(str(reason))}")
            raise typer.Exit(2)
        return body  # type: ignore[no-any-return]


def _client(config: Path | None, url: str | None, token: str | None) -> Client:
    return Client(settings_or_exit(config), url, token)


def read_spec(path: Path) -> dict[str, Any]:
    """A spec file: JSON, or YAML (``.yaml``/``.yml``)."""
    try:
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        errors.print(f"[red]cannot read the spec {path}:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        errors.print(f"[red]the spec {path} is not an object[/red]")
        raise typer.Exit(2)
    return data


def summary(job: dict[str, Any]) -> Table:
    totals, progress = job["totals"], job["progress"]
    table = Table(title=f"job {job['id']}: {job['state']}", show_header=False)
    rows = [
        ("queries", f"{totals['queries']} ({totals['done']} done, {totals['failed']} failed)"),
        ("pairs scored", f"{totals['pairs']} ({totals['cache_hits']} from the score cache)"),
        ("documents written", str(totals["documents"])),
        ("queries/s", _rate(progress["queries_per_s"])),
        ("pairs/s", _rate(progress["pairs_per_s"])),
    ]
    if job.get("reason"):
        rows.append(("reason", escape(job["reason"])))
    for error in job.get("errors", [])[:5]:
        rows.append((escape(f"error {error['query_id']}"), escape(error["reason"])))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _rate(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def wait_for(client: Client, job_id: str, interval_s: float = 0.5) -> dict[str, Any]:
    """Poll the job with a progress bar until it ends; the final state's JSON."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("queries  {task.fields[pairs]} pairs/s  ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(job_id, total=None, pairs="-", eta="-")
        while True:
            job = client.call("GET", f"/_rerank/jobs/{job_id}")
            totals, progress = job["totals"], job["progress"]
            eta = progress["eta_s"]
            bar.update(
                task,
                total=totals["queries"],
                completed=totals["done"] + totals["failed"],
                description=f"{job_id} {job['state']}",
                pairs=_rate(progress["pairs_per_s"]),
                eta=f"{eta:.0f}s" if eta is not None else "-",
            )
            if job["state"] in FINAL:
                return job
            time.sleep(interval_s)


def _finish(job: dict[str, Any]) -> None:
    console.print(summary(job))
    raise typer.Exit(EXIT_CODES.get(job["state"], 1))


@jobs_app.command("submit")
def submit(
    spec: Annotated[Path, typer.Argument(help="The job spec, JSON or YAML.")],
    queries: Annotated[
        Path | None,
        typer.Option("--queries", help="A JSONL file of queries to upload with the spec."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Submit a job; prints its id (and with --wait, its progress and final summary)."""
    client = _client(config, url, token)
    body = read_spec(spec)
    if queries is not None:
        try:
            lines = queries.read_bytes()
        except OSError as exc:
            errors.print(f"[red]cannot read {queries}:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        payload = json.dumps(body).encode() + b"\n" + lines
        job = client.call("POST", "/_rerank/jobs", content=payload,
                          headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    else:
        job = client.call("POST", "/_rerank/jobs", json=body)
    console.print(
        f"job [bold]{job['id']}[/bold] {job['state']}: {job['totals']['queries']} queries"
    )
    if wait:
        _finish(wait_for(client, job["id"]))


@jobs_app.command("wait")
def wait_command(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Follow a job with a progress bar until it ends; exit 0 done, 1 failed, 3 cancelled."""
    _finish(wait_for(_client(config, url, token), job_id))


@jobs_app.command("status")
def status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the sidecar's JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """A job's state, totals, rates and last errors."""
    job = _client(config, url, token).call("GET", f"/_rerank/jobs/{job_id}")
    if as_json:
        console.print_json(data=job)
    else:
        console.print(summary(job))


@jobs_app.command("list")
def list_command(
    size: Annotated[int, typer.Option(help="Jobs per page.")] = 20,
    start: Annotated[int, typer.Option("--from", help="Skip this many (newest first).")] = 0,
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Jobs, newest first."""
    page = _client(config, url, token).call(
        "GET", "/_rerank/jobs", params={"from": start, "size": size}
    )
    table = Table(title=f"{page['total']} jobs")
    for column in ("id", "name", "state", "queries", "done", "failed", "created"):
        table.add_column(column)
    for job in page["jobs"]:
        t = job["totals"]
        table.add_row(job["id"], job.get("name") or "", job["state"], str(t["queries"]),
                      str(t["done"]), str(t["failed"]), job["created_at"])  # fmt: skip
    console.print(table)


@jobs_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop a job; returns once no write of it is in flight."""
    job = _client(config, url, token).call("DELETE", f"/_rerank/jobs/{job_id}")
    console.print(summary(job))


@jobs_app.command("resume")
def resume(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Go on with a cancelled or failed job where it stopped."""
    client = _client(config, url, token)
    job = client.call("POST", f"/_rerank/jobs/{job_id}/_resume")
    console.print(f"job [bold]{job_id}[/bold] {job['state']}")
    if wait:
        _finish(wait_for(client, job_id))


def jobs_worker(
    hostname: Annotated[str | None, typer.Option(help="Celery node name, e.g. jobs@%h")] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once by this process.")] = 4,
    loglevel: str = "INFO",
    config: ConfigOption = None,
) -> None:
    """Run the job runner: a torch-free Celery worker on rerank.jobs that runs the chunks of
    bulk jobs (searches through the proxy's path, scoring on the workers' bulk queues)."""
    from sidecar.jobs.runner import JOBS_QUEUE, runner_celery_app, start_runtime, stop_runtime
    from sidecar.tracing import setup_tracing

    settings = settings_or_exit(config)
    if not settings.upstream.urls:
        errors.print("[red]the job runner needs the cluster: set upstream.urls[/red]")
        raise typer.Exit(2)
    setup_tracing(settings.tracing, "rerank-jobs", celery=True)
    celery = runner_celery_app(settings)
    start_runtime(settings)
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency), "--loglevel",
            loglevel, "--without-gossip", "--without-mingle", "--queues", JOBS_QUEUE]  # fmt: skip
    if hostname:
        argv += ["--hostname", hostname]
    try:
        celery.worker_main(argv)
    finally:
        stop_runtime()
