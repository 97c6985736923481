"""``/_rerank/experiments``: list, read, create or replace, and delete experiments (admin token).

``PUT /_rerank/experiments/{name}`` takes an experiment (the settings' shape; ``name`` may be
left out) and answers with its revision; a new revision starts whenever the variants, weights
or interleaving change. Experiments of the settings are listed but cannot be changed here.
Every call needs ``Authorization: Bearer <one of admin.tokens>``; with no token configured the
API refuses every call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from sidecar.admin_auth import admin_error as _error
from sidecar.admin_auth import admin_refusal
from sidecar.experiments.model import Experiment, check_references
from sidecar.experiments.registry import ExperimentConflict
from sidecar.experiments.search_path import EXPERIMENTS
from sidecar.jsonio import dumps, loads
from sidecar.settings import Settings

ADMIN_SETTINGS = web.AppKey("admin_settings", Settings)


def authorized(request: web.Request) -> web.Response | None:
    """None when the caller holds an admin token; else the refusal."""
    return admin_refusal(request, request.app[ADMIN_SETTINGS].admin.tokens)


def _describe(experiment: Experiment, source: str) -> dict[str, Any]:
    return {
        **experiment.model_dump(mode="json", exclude_none=True),
        "revision": experiment.revision,
        "source": source,
        "active": experiment.active(datetime.now(UTC)),
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(data), content_type="application/json")


async def list_experiments(request: web.Request) -> web.Response:
    if (refused := authorized(request)) is not None:
        return refused
    registry = request.app[EXPERIMENTS].registry
    return _json({"experiments": [_describe(e, registry.source(e.name)) for e in registry.all()]})


async def get_experiment(request: web.Request) -> web.Response:
    if (refused := authorized(request)) is not None:
        return refused
    registry = request.app[EXPERIMENTS].registry
    name = request.match_info["name"]
    experiment = registry.get(name)
    if experiment is None:
        return _error(404, "resource_not_found_exception", f"no experiment named {name!r}")
    return _json(_describe(experiment, registry.source(name)))


async def put_experiment(request: web.Request) -> web.Response:
    if (refused := authorized(request)) is not None:
        return refused
    settings = request.app[ADMIN_SETTINGS]
    registry = request.app[EXPERIMENTS].registry
    name = request.match_info["name"]
    try:
        raw = loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "parse_exception", "the body is not JSON")
    if not isinstance(raw, dict):
        return _error(400, "parse_exception", "an experiment is a JSON object")
    if raw.setdefault("name", name) != name:
        return _error(400, "illegal_argument_exception", f"[name] {raw['name']!r} is not {name!r}")
    try:
        experiment = Experiment.model_validate(raw)
        check_references(experiment, list(settings.rerank.profiles), list(settings.models))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        return _error(400, "illegal_argument_exception", f"[{where}] {reason}" if where else reason)
    except ValueError as exc:
        return _error(400, "illegal_argument_exception", str(exc))
    previous = registry.get(name)
    try:
        await registry.put(experiment)
    except ExperimentConflict as exc:
        return _error(409, "illegal_argument_exception", str(exc))
    except RuntimeError as exc:
        return _error(503, "rerank_sidecar_redis_unavailable", str(exc))
    new_revision = previous is None or previous.revision != experiment.revision
    body = {**_describe(experiment, "api"), "new_revision": new_revision}
    return _json(body, status=201 if previous is None else 200)


async def delete_experiment(request: web.Request) -> web.Response:
    if (refused := authorized(request)) is not None:
        return refused
    registry = request.app[EXPERIMENTS].registry
    name = request.match_info["name"]
    try:
        removed = await registry.delete(name)
    except ExperimentConflict as exc:
        return _error(409, "illegal_argument_exception", str(exc))
    if not removed:
        return _error(404, "resource_not_found_exception", f"no experiment named {name!r}")
    return _json({"deleted": name})


def add_experiment_routes(app: web.Application, settings: Settings) -> None:
    app[ADMIN_SETTINGS] = settings
    app.router.add_get("/_rerank/experiments", list_experiments)
    app.router.add_get("/_rerank/experiments/{name}", get_experiment)
    app.router.add_put("/_rerank/experiments/{name}", put_experiment)
    app.router.add_delete("/_rerank/experiments/{name}", delete_experiment)
