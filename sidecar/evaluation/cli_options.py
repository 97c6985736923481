"""Options the commands share (settings file, and for the evaluation commands: where the
cluster or the sidecar is, and as whom)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sidecar.evaluation.cluster import Cluster
from sidecar.settings import Settings, load_settings

errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file (RERANK_* env vars override it)."),
]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The sidecar (or, for judgments, a cluster node). Default: the sidecar of the "
        "settings (server.host and server.port).",
        envvar="RERANK_URL",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key sent as 'Authorization: ApiKey ...' (or set RERANK_API_KEY).",
        envvar="RERANK_API_KEY",
        show_default=False,
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="Basic auth 'name:password' (or set RERANK_USER).",
        envvar="RERANK_USER",
        show_default=False,
    ),
]


def refusal(message: object, code: int) -> typer.Exit:
    """Print ``message`` in red on stderr; the exit to raise with ``code``."""
    errors.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def settings_or_exit(config: Path | None) -> Settings:
    """The settings, or exit 2 with the reason."""
    try:
        return load_settings(config)
    except Exception as exc:  # pydantic's ValidationError and YAML errors both read well as text
        errors.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def sidecar_url(settings: Settings) -> str:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.server.port}"


def cluster(settings: Settings, url: str | None, api_key: str | None, user: str | None) -> Cluster:
    """A client of ``url`` (default: the configured sidecar) with the caller's credentials."""
    verify: bool | str = settings.upstream.verify_tls
    if verify and settings.upstream.ca_file:
        verify = settings.upstream.ca_file
    return Cluster(url or sidecar_url(settings), api_key=api_key, basic_auth=user, verify=verify)
