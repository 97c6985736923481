"""``/_rerank/jobs``: submit, read, list, cancel and resume bulk rescoring jobs (admin token).

``POST /_rerank/jobs`` takes a spec as JSON, or as the first line of an ``application/x-ndjson``
body whose other lines are the queries (an uploaded JSONL file). Everything is checked before
anything is made: the spec, every query (a bad line is named by its number), the profile and
model, the credential and its scope, the source index and the results index's mapping. Only then
is the results index created (when missing), the job written to Redis in one transaction and its
first chunk sent; if sending fails, what was made is removed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from celery import Celery
from pydantic import ValidationError

from sidecar.admin_auth import admin_error, admin_refusal
from sidecar.jobs.engine import JobEngine
from sidecar.jobs.errors import JobConflict, JobError, JobForbidden, JobNotFound, from_validation
from sidecar.jobs.progress import describe
from sidecar.jobs.queries import check_unique, parse_jsonl, read_query_file
from sidecar.jobs.runner import chunk_publisher, send_chunk
from sidecar.jobs.spec import JobSpec, QueryItem, search_body
from sidecar.jobs.store import JobStore, new_job_id
from sidecar.jsonio import dumps
from sidecar.proxy.upstream import UpstreamOptions
from sidecar.scoring.redis_pool import redis_client
from sidecar.search.options import RerankInputError
from sidecar.search.plan import decide
from sidecar.settings import Settings

NDJSON = "application/x-ndjson"
MAX_PAGE = 1000


@dataclass
class JobsService:
    settings: Settings
    store: JobStore
    publisher: Celery

    def engine(self, credential: str | None) -> JobEngine:
        options = UpstreamOptions.of(self.settings.upstream, connections_per_node=4)
        named = self.settings.jobs.credentials.get(credential) if credential else None
        return JobEngine(self.settings.upstream.urls, options, named)

    async def close(self) -> None:
        await self.store.redis.aclose()
        self.publisher.close()


JOBS = web.AppKey("jobs_service", JobsService)


def build_jobs_service(settings: Settings) -> JobsService:
    d = settings.dispatch
    client = redis_client(
        settings.celery.broker_url, max_connections=8, timeout_s=d.redis_timeout_s
    )
    return JobsService(settings, JobStore(client), chunk_publisher(settings))


def add_job_routes(app: web.Application, service: JobsService) -> None:
    app[JOBS] = service
    app.router.add_post("/_rerank/jobs", submit)
    app.router.add_get("/_rerank/jobs", list_jobs)
    app.router.add_get("/_rerank/jobs/{id}", get_job)
    app.router.add_delete("/_rerank/jobs/{id}", cancel_job)
    app.router.add_post("/_rerank/jobs/{id}/_resume", resume_job)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(data), content_type="application/json")


def _refused(exc: JobError) -> web.Response:
    return admin_error(exc.status, exc.kind, str(exc))


def _authorized(request: web.Request) -> web.Response | None:
    return admin_refusal(request, request.app[JOBS].settings.admin.tokens)


async def _read_spec(request: web.Request) -> tuple[JobSpec, list[QueryItem] | None]:
    raw = await request.read()
    uploaded: list[QueryItem] | None = None
    if request.content_type == NDJSON:
        head, _, rest = raw.partition(b"\n")
        spec_raw = head
        uploaded = await asyncio.to_thread(parse_jsonl, rest.split(b"\n"), 2)
    else:
        spec_raw = raw
    try:
        value = orjson.loads(spec_raw)
    except orjson.JSONDecodeError as exc:
        raise JobError("", f"the spec is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JobError("", "the spec is a JSON object")
    try:
        spec = JobSpec.model_validate(value)
    except ValidationError as exc:
        raise from_validation(exc) from None
    if uploaded is not None and spec.queries is not None:
        raise JobError("queries", "queries are uploaded with the request: leave queries out")
    if uploaded is None and spec.queries is None:
        raise JobError("queries", "no queries: give queries, or upload them (x-ndjson)")
    return spec, uploaded


def _ubi_id(text: str) -> str:
    return "ubi-" + hashlib.sha256(text.encode()).hexdigest()[:16]


async def _queries(
    service: JobsService, spec: JobSpec, uploaded: list[QueryItem] | None, engine: JobEngine
) -> list[QueryItem]:
    source = spec.queries
    if uploaded is not None:
        items = uploaded
    elif source is not None and source.inline is not None:
        items = source.inline
        check_unique(items)
    elif source is not None and source.path is not None:
        items = await asyncio.to_thread(
            read_query_file, source.path, service.settings.jobs.query_roots
        )
    else:
        assert source is not None and source.ubi is not None
        top = await engine.ubi_top(source.ubi)
        items = [QueryItem(id=_ubi_id(text), text=text) for text, _ in top]
    if not items:
        raise JobError("queries", "the query set is empty")
    limit = service.settings.jobs.max_queries
    if len(items) > limit:
        raise JobError("queries", f"{len(items)} queries, over jobs.max_queries ({limit})")
    return items


def _check_rerank(settings: Settings, spec: JobSpec, first: QueryItem) -> None:
    """The rerank settings as the proxy's own path reads them (profile, model, window...)."""
    profile = spec.rerank.profile
    if profile is not None and profile not in settings.rerank.profiles:
        known = ", ".join(sorted(settings.rerank.profiles)) or "none"
        raise JobError("rerank.profile", f"no profile named {profile!r} (known: {known})")
    try:
        decision = decide(settings, spec.index, search_body(spec, first), {}, None)
    except RerankInputError as exc:
        raise JobError(exc.path.replace("ext.rerank", "rerank", 1), exc.reason) from None
    if decision.plan is None and decision.skip_reason != "no_query_text":
        raise JobError("search", f"the searches would not be reranked: {decision.skip_reason}")


def _check_credential(settings: Settings, spec: JobSpec) -> None:
    name = spec.credentials
    if name is None:
        return
    credential = settings.jobs.credentials.get(name)
    if credential is None:
        known = ", ".join(sorted(settings.jobs.credentials)) or "none"
        raise JobError("credentials", f"no credential named {name!r} (known: {known})")
    if not credential.has_secret:
        env = f"RERANK_JOBS__CREDENTIALS__{name.upper()}__API_KEY"
        raise JobError("credentials", f"the credential {name!r} has no api_key or basic_auth "
                       f"in this sidecar's settings (e.g. {env})")  # fmt: skip
    names = [part.strip() for part in spec.index.split(",") if part.strip()]
    if spec.output.index is not None:
        names.append(spec.output.index)
    for index in names:
        if not any(fnmatch.fnmatchcase(index, pattern) for pattern in credential.indices):
            raise JobForbidden(
                "credentials", f"the credential {name!r} may not be used for {index!r}"
            )


async def submit(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    service = request.app[JOBS]
    settings = service.settings
    try:
        spec, uploaded = await _read_spec(request)
        _check_credential(settings, spec)
        engine = service.engine(spec.credentials)
        try:
            items = await _queries(service, spec, uploaded, engine)
            _check_rerank(settings, spec, items[0])
            await engine.check_source(spec.index)
            target = spec.output.index
            exists = await engine.check_target(target) if target is not None else True
            job_id = new_job_id()
            if not exists and target is not None:
                await engine.create_target(target)
            try:
                await service.store.create(job_id, spec, items, settings.jobs.chunk_size)
                await asyncio.to_thread(send_chunk, service.publisher, job_id, 0)
            except Exception as exc:
                await _undo(service, engine, job_id, None if exists else target)
                return admin_error(
                    503, "rerank_sidecar_unavailable",
                    f"the job could not be queued: {type(exc).__name__}",
                )  # fmt: skip
        finally:
            await engine.close()
    except JobError as exc:
        return _refused(exc)
    view = await service.store.get(job_id)
    assert view is not None
    return _json(describe(view, time.time()), status=202)


async def _undo(
    service: JobsService, engine: JobEngine, job_id: str, created_index: str | None
) -> None:
    from sidecar.jobs.store import job_key

    try:
        keys = [job_key(job_id), *(job_key(job_id, p) for p in ("queries", "done", "errors"))]
        await service.store.redis.delete(*keys)
        await service.store.forget(job_id)
    except Exception:  # Redis is what failed: nothing was kept in it either
        pass
    if created_index is not None:
        with contextlib.suppress(Exception):
            await engine.call("DELETE", f"/{created_index}")


async def _job_or_404(service: JobsService, job_id: str) -> Any:
    view = await service.store.get(job_id)
    if view is None:
        raise JobNotFound("id", f"no job {job_id!r}")
    return view


async def get_job(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    try:
        view = await _job_or_404(request.app[JOBS], request.match_info["id"])
    except JobError as exc:
        return _refused(exc)
    return _json(describe(view, time.time()))


def _page_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit() or int(raw) > maximum:
        raise JobError(name, f"must be an integer from 0 to {maximum}, not {raw!r}")
    return int(raw)


async def list_jobs(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    service = request.app[JOBS]
    try:
        start = _page_param(request, "from", 0, 10_000_000)
        size = _page_param(request, "size", 20, MAX_PAGE)
    except JobError as exc:
        return _refused(exc)
    ids, total = await service.store.list_ids(start, size)
    jobs = []
    now = time.time()
    for job_id in ids:
        view = await service.store.get(job_id)
        if view is None:
            await service.store.forget(job_id)  # expired
            continue
        shown = describe(view, now)
        shown.pop("spec")
        shown.pop("errors")
        jobs.append(shown)
    return _json({"total": total, "from": start, "size": size, "jobs": jobs})


def _refused_transition(
    job_id: str, was: str, allowed: tuple[str, ...], verb: str
) -> web.Response | None:
    """The refusal of a cancel or resume the store did not make: 404 without the job, 409
    from a state it cannot leave that way (``was``: the state before the store's script)."""
    if not was:
        return _refused(JobNotFound("id", f"no job {job_id!r}"))
    if was not in allowed:
        return _refused(JobConflict(
            "id", f"job {job_id} is {was}: only a {' or '.join(allowed)} job {verb}"))  # fmt: skip
    return None


async def cancel_job(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    service = request.app[JOBS]
    job_id = request.match_info["id"]
    was = await service.store.cancel(job_id)
    if (refused := _refused_transition(job_id, was, ("queued", "running"), "stops")) is not None:
        return refused
    # Writes already started may still land: answer once none is in flight (each is bounded
    # by jobs.write_timeout_s), so nothing is written after this answer.
    deadline = time.monotonic() + service.settings.jobs.write_timeout_s + 5
    # Polled: the writes are in a runner process, nothing here could set an Event.
    while await service.store.writes_in_flight(job_id) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    view = await service.store.get(job_id)
    return _json(describe(view, time.time()) if view else {"id": job_id, "state": "cancelled"})


async def resume_job(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    service = request.app[JOBS]
    job_id = request.match_info["id"]
    was = await service.store.resume(job_id)
    if (
        refused := _refused_transition(job_id, was, ("cancelled", "failed"), "resumes")
    ) is not None:
        return refused
    view = await service.store.get(job_id)
    assert view is not None
    try:
        await asyncio.to_thread(send_chunk, service.publisher, job_id, view.cursor)
    except Exception as exc:
        await service.store.finish(job_id, "failed", "resume could not be queued", 86400)
        return admin_error(503, "rerank_sidecar_unavailable",
                           f"the job could not be queued: {type(exc).__name__}")  # fmt: skip
    return _json(describe(view, time.time()), status=202)
