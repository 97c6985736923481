"""The ``rerank-sidecar`` command line.

The sidecar's own commands never import torch; ``models`` and ``worker`` import the workers'
code inside the command, so only those commands pay for it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sidecar.evaluation.cli_options import ConfigOption, settings_or_exit
from sidecar.evaluation.eval_cli import eval_command
from sidecar.evaluation.judgments.cli import judgments_app
from sidecar.experiments.cli import experiments_app
from sidecar.jobs.cli import jobs_app, jobs_worker
from sidecar.settings import Settings

app = typer.Typer(
    help="A reranking sidecar for Elasticsearch and OpenSearch.", no_args_is_help=True
)
testbed_app = typer.Typer(
    help="Real servers on loopback for development and tests.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Offline random-weight Qwen3 reranker checkpoints.", no_args_is_help=True
)
app.add_typer(testbed_app, name="testbed")
app.add_typer(models_app, name="models")
app.add_typer(judgments_app, name="judgments")
app.add_typer(experiments_app, name="experiments")
app.add_typer(jobs_app, name="jobs")
app.command("eval")(eval_command)
app.command("jobs-worker")(jobs_worker)

console = Console()
errors = Console(stderr=True)


def _settings(config: Path | None) -> Settings:
    return settings_or_exit(config)


@testbed_app.command("up")
def cmd_testbed_up(
    engines: Annotated[
        str | None,
        typer.Option(
            help="Comma list: opensearch, opensearch3, elasticsearch, elasticsearch9, or 'all' "
            "(every engine this machine's Java can run)."
        ),
    ] = None,
    redis: Annotated[bool, typer.Option("--redis", help="Start redis-server.")] = False,
    worker: Annotated[
        bool, typer.Option("--worker", help="Start a Celery worker (and Redis).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Start servers and print how to reach them. With no selection, start everything:
    OpenSearch, Elasticsearch, Redis and a Celery worker."""
    from sidecar.testbed import TestbedError, runnable_engines, up

    settings = _settings(config)
    if engines is None and not redis and not worker:
        names, redis, worker = ["opensearch", "elasticsearch"], True, True
    elif engines == "all":
        names = runnable_engines(settings)
    else:
        names = [name.strip() for name in (engines or "").split(",") if name.strip()]
    try:
        with console.status("starting the test bed (the first run downloads the engines)..."):
            services = up(
                settings,
                names,
                redis,
                worker,
                on_started=lambda s: console.print(f"[green]up[/green] {s.name}  {s.url}"),
            )
    except TestbedError as exc:
        errors.print(f"[red]test bed failed:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title="rerank-sidecar test bed")
    for column in ("service", "url", "detail", "log"):
        table.add_column(column, overflow="fold")
    for s in services:
        table.add_row(s.name, s.url, s.detail, str(s.process.log_path))
    console.print(table)
    console.print("Stop everything with [bold]rerank-sidecar testbed down[/bold].")


@testbed_app.command("down")
def cmd_testbed_down(config: ConfigOption = None) -> None:
    """Stop the servers the last `testbed up` started."""
    from sidecar.testbed import down

    stopped = down(_settings(config))
    if not stopped:
        console.print("no test bed was up")
    for service in stopped:
        console.print(f"[yellow]stopped[/yellow] {service.name}")


@testbed_app.command("status")
def cmd_testbed_status(config: ConfigOption = None) -> None:
    """Show the servers of the last `testbed up` and whether they still run."""
    from sidecar.testbed.bed import load_state

    services = load_state(_settings(config))
    if not services:
        console.print("no test bed is up")
    for s in services:
        state = "[green]running[/green]" if s.process.is_running() else "[red]gone[/red]"
        console.print(f"{s.name}  {s.url}  {state}")


@models_app.command("build-tiny")
def models_build_tiny(
    kind: Annotated[str, typer.Option(help="qwen3-vl or qwen3")],
    out: Annotated[Path, typer.Option(help="Directory to write the checkpoint to.")],
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
) -> None:
    """Build a tiny random-weight Qwen3 reranker with the real tokenizer (offline, CPU)."""
    from workers.random_models import MODEL_KINDS, build_tiny_model

    if kind not in MODEL_KINDS:
        errors.print(f"[red]--kind must be one of {', '.join(MODEL_KINDS)}, not {kind!r}[/red]")
        raise typer.Exit(2)
    path = build_tiny_model(kind, out, seed=seed)
    console.print(f"built tiny {kind} model in {path}")


@models_app.command("build-random")
def models_build_random(
    arch: Annotated[str, typer.Option(help="e.g. qwen3-vl-reranker-2b, qwen3-reranker-0.6b")],
    out: Annotated[Path, typer.Option(help="Directory to write the checkpoint to.")],
    dtype: Annotated[str, typer.Option(help="bfloat16, float16 or float32")] = "bfloat16",
    seed: int = 0,
) -> None:
    """Build a real-size random-weight checkpoint from a shipped architecture config."""
    from workers.random_models import build_random_model

    try:
        path = build_random_model(arch, out, dtype=dtype, seed=seed)
    except ValueError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"built random-weight {arch} in {path}")


@app.command()
def worker(
    models: Annotated[
        list[str] | None,
        typer.Option(help="Registry names to load and serve, repeated or comma-separated."),
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name, e.g. gpu0@%h")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once per process.")] = None,
    loglevel: str = "INFO",
    config: ConfigOption = None,
) -> None:
    """Run a Celery scoring worker: load each model once, then serve its queues."""
    from workers.celery_app import DEFAULT_QUEUE, create_celery_app
    from workers.contract import queue_name

    settings = _settings(config)
    names = [name.strip() for group in models or [] for name in group.split(",") if name.strip()]
    unknown = [name for name in names if name not in settings.models]
    if unknown:
        errors.print(
            f"[red]unknown model(s) {', '.join(unknown)}[/red]; "
            f"the registry has {', '.join(settings.models)}"
        )
        raise typer.Exit(2)
    w = settings.worker
    from sidecar.tracing import setup_tracing

    setup_tracing(settings.tracing, "rerank-worker", celery=True)
    celery = create_celery_app(
        settings.celery.broker_url,
        settings.celery.result_backend,
        soft_time_limit_s=w.task_soft_time_limit_s,
        time_limit_s=w.task_time_limit_s,
        visibility_timeout_s=w.visibility_timeout_s,
        redelivery_check_s=w.redelivery_check_s,
    )
    runtime = None
    if names:
        from workers.media import MediaLimits
        from workers.runtime import start_runtime

        runtime = start_runtime(
            settings.models,
            names,
            token_budget=w.token_budget,
            max_batch=w.max_batch,
            media_roots=w.media_roots,
            media_allow_networks=w.media_allow_networks,
            media_timeout_s=w.media_timeout_s,
            media_cache_dir=settings.cache_dir / "media",
            metrics_port=w.metrics_port,
            media_limits=MediaLimits(
                max_video_duration_s=w.media_max_video_duration_s,
                max_video_frames=w.media_max_video_frames,
                max_video_frame_pixels=w.media_max_video_frame_pixels,
                max_video_decoded_bytes=w.media_max_video_decoded_bytes,
                max_job_media_bytes=w.media_max_job_bytes,
            ),
            media_cache_max_bytes=w.media_cache_max_bytes,
            broker_url=settings.celery.broker_url,
            max_deliveries=w.max_deliveries,
            task_time_limit_s=w.task_time_limit_s,
        )
    # Interactive queues first: the broker is polled in this order (queue_order_strategy).
    queues = [queue_name(n, "interactive") for n in names] + [queue_name(n, "bulk") for n in names]
    argv = [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency or w.concurrency),
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--queues",
        ",".join([*queues, DEFAULT_QUEUE]),
    ]
    if hostname:
        argv += ["--hostname", hostname]
    _escape_celery_logs()
    try:
        celery.worker_main(argv)
    finally:
        if runtime is not None:
            runtime.close()  # the heartbeat's members go, the fetcher and batchers stop


def _escape_celery_logs() -> None:
    """Celery sets up the worker's log handlers itself: give them the escaping formatter (a
    reason from a worker can hold text from a document)."""
    from celery.signals import after_setup_logger, after_setup_task_logger

    from sidecar.logs import use_escaping_formatter

    def escape(logger: Any = None, format: str = "", **_: Any) -> None:
        if logger is not None:
            use_escaping_formatter(logger, format or "%(message)s")

    after_setup_logger.connect(escape, weak=False)
    after_setup_task_logger.connect(escape, weak=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (server.port).")] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(help="Cluster node URL (upstream.urls), repeated for several nodes."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Sidecar processes sharing the port (SO_REUSEPORT), under one supervisor.",
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Run the sidecar: a transparent proxy to the cluster that reranks the searches its rules
    or ext.rerank ask for, and the rerank API. Access logs are JSON lines on stderr. SIGTERM
    stops accepting, lets requests in flight finish (server.shutdown_timeout_s) and exits."""
    if workers == 1:
        run_sidecar(config, host, port, upstream, reuse_port=False)
        return
    import functools
    import logging

    from sidecar.logs import configure_logging
    from sidecar.serve_processes import serve_processes

    configure_logging(logging.INFO)
    settings = _settings(config)  # refuse bad settings once, before any process starts
    child = functools.partial(run_sidecar, config, host, port, upstream, True)
    grace_s = settings.server.shutdown_timeout_s + 10  # the children's grace, then cleanup
    raise typer.Exit(serve_processes(workers, child, grace_s))


def run_sidecar(
    config: Path | None,
    host: str | None,
    port: int | None,
    upstream: list[str] | None,
    reuse_port: bool,
) -> None:
    """One sidecar process until SIGTERM/SIGINT (aiohttp's graceful shutdown)."""
    import logging

    from aiohttp import web

    from sidecar.access_log import JsonAccessLogger
    from sidecar.app import RUNNER_OPTIONS, create_app
    from sidecar.event_loop import new_event_loop
    from sidecar.logs import configure_logging

    configure_logging(logging.INFO)
    settings = _settings(config)
    if upstream:
        settings = settings.model_copy(
            update={"upstream": settings.upstream.model_copy(update={"urls": upstream})}
        )
    application = create_app(settings)
    web.run_app(
        application,
        host=host or settings.server.host,
        port=port if port is not None else settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout_s,
        reuse_port=reuse_port or None,
        **application[RUNNER_OPTIONS],
        access_log_class=JsonAccessLogger,
        access_log=logging.getLogger("rerank_sidecar.access"),
        access_log_format="",
        loop=new_event_loop(),
        handle_signals=True,
    )


@app.command()
def demo(
    model: Annotated[
        str | None,
        typer.Option(help="Hub id or local path of a real reranker; unset: the tiny test model."),
    ] = None,
    kind: Annotated[str, typer.Option(help="qwen3-vl or qwen3, for --model.")] = "qwen3-vl",
    device: Annotated[str, typer.Option(help="Device of --model: auto, cpu, cuda.")] = "auto",
    config: ConfigOption = None,
) -> None:
    """The whole product on this machine: OpenSearch, Redis, a scoring worker, a job runner and
    the sidecar; a sample multimodal catalog; baseline and reranked orders side by side; an eval
    run and a bulk rescoring job. The servers keep
    running afterwards; `rerank-sidecar testbed down` stops them."""
    try:
        from sidecar.demo.stack import (
            QUERIES,
            RESULTS_INDEX,
            compare,
            config_path,
            load_catalog,
            run_eval,
            run_job,
            start_stack,
            store_judgments,
            tiny_model,
        )
    except ImportError as exc:
        errors.print(
            f"[red]the demo needs the demo extra:[/red] pip install 'rerank-sidecar[demo]' ({exc})"
        )
        raise typer.Exit(2) from None
    from sidecar.testbed import TestbedError, down
    from workers.contract import ModelSpec

    settings = _settings(config)
    if kind not in ("qwen3-vl", "qwen3"):
        errors.print(f"[red]--kind must be qwen3-vl or qwen3, not {kind!r}[/red]")
        raise typer.Exit(2)
    try:
        with console.status("building the tiny model (first run only)..."):
            path = model or str(tiny_model(settings))
        spec = ModelSpec(path=path, kind=kind, device=device if model else "cpu")  # type: ignore[arg-type]
        with console.status(
            "starting OpenSearch, Redis, a worker, a job runner and the sidecar..."
        ):
            url = start_stack(
                settings, spec, lambda s: console.print(f"[green]up[/green] {s.name}  {s.url}")
            )
        count = load_catalog(url, settings)
        console.print(f"indexed {count} sample products (text and images) through the sidecar")
        for query in QUERIES:
            result = compare(url, query)
            table = Table(title=f"{query!r}  ·  X-Rerank-Status: {result.status}")
            table.add_column("#", justify="right")
            table.add_column("engine's order (X-Rerank: off)")
            table.add_column("reranked")
            table.add_column("rerank score", justify="right")
            for rank, (before, (after, score)) in enumerate(
                zip(result.baseline, result.reranked, strict=False), start=1
            ):
                table.add_row(str(rank), before, after, f"{score:.4f}")
            console.print(table)
        judged = store_judgments(url)
        console.print(
            f"\nstored {judged} demo judgments in rerank-judgments; evaluating the reranked "
            "order against the engine's (rerank-sidecar eval):"
        )
        report = run_eval(url, settings)
        console.print(
            f"\na bulk job (rerank-sidecar jobs submit --wait): the sample queries rescored "
            f"into {RESULTS_INDEX}, their scores into the cache:"
        )
        job = run_job(url, settings)
    except (TestbedError, OSError, RuntimeError) as exc:
        errors.print(f"[red]demo failed:[/red] {exc}")
        down(settings)
        raise typer.Exit(1) from None
    if model is None:
        console.print(
            "[dim]The tiny model has random weights: its order shows the plumbing, not relevance."
            " Pass --model Qwen/Qwen3-VL-Reranker-2B (or a local path) for real rankings.[/dim]"
        )
    console.print(f"\nThe eval report: [bold]file://{report}[/bold]")
    console.print(f"\nThe sidecar is running at [bold]{url}[/bold]: point a client at it, e.g.")
    console.print(
        f"  curl -s '{url}/demo-catalog/_search' -H 'Content-Type: application/json' "
        """-d '{"query": {"match": {"title": "red shoes"}}}' -i"""
    )
    console.print(
        f"Run the job again, or your own: [bold]rerank-sidecar jobs submit {job} --wait "
        f"--url {url} --config {config_path(settings)}[/bold] (then jobs list, status, cancel)."
    )
    console.print("Stop everything with [bold]make down[/bold] (rerank-sidecar testbed down).")


@app.command()
def version() -> None:
    """Print the version."""
    from sidecar import __version__

    console.print(__version__)


def main() -> None:
    app(prog_name="rerank-sidecar", args=sys.argv[1:])
