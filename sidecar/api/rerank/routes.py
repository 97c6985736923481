"""aiohttp routes of the rerank API: authenticate, parse, call the service, answer JSON."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import SecretStr, ValidationError

from sidecar.api.rerank.protocol import ErrorInfo, ErrorResponse, RerankRequest
from sidecar.api.rerank.serving import ApiError, RerankService
from sidecar.body import BodyTooLarge, read_body

log = logging.getLogger(__name__)

SERVICE = web.AppKey("rerank_service", RerankService)
API_KEYS = web.AppKey("rerank_api_keys", list)
MAX_BODY = web.AppKey("rerank_max_body_bytes", int)

PATHS = {"/rerank": "1", "/v1/rerank": "1", "/v2/rerank": "2"}


def add_rerank_routes(
    app: web.Application, service: RerankService, keys: Sequence[SecretStr], max_body_bytes: int
) -> None:
    app[SERVICE] = service
    app[API_KEYS] = list(keys)
    app[MAX_BODY] = max_body_bytes
    for path in PATHS:
        app.router.add_post(path, rerank)


def _error(error: ApiError) -> web.Response:
    body = ErrorResponse(
        error=ErrorInfo(
            message=error.message, type=error.kind, param=error.param, code=error.status
        )
    )
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return web.json_response(body.model_dump(), status=error.status, headers=headers)


def _authorized(request: web.Request) -> bool:
    keys: list[SecretStr] = request.app[API_KEYS]
    if not keys:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # Compare against every key in constant time; never log the token.
    return any(hmac.compare_digest(token.encode(), k.get_secret_value().encode()) for k in keys)


UNION_BRANCHES = {"str", "MediaDocument", "ContentDocument"}


def _is_branch(part: int | str) -> bool:
    """A union branch's tag in an error location (``str``, ``list[str]``, ``MediaDocument``):
    noise to a caller, who named fields, not types."""
    return isinstance(part, str) and (part in UNION_BRANCHES or "[" in part)


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_branch(part):
            path += f".{part}" if path else str(part)
    return path


def _most_specific(exc: ValidationError) -> tuple[str, str]:
    """(field path, reason) of the deepest error: for a union, the branch that got furthest."""

    def rank(error: Any) -> tuple[int, int]:
        depth = sum(1 for part in error["loc"] if not _is_branch(part))
        # On a tie, a field that is there but wrong says more than one that is missing.
        return depth, 0 if error["type"] == "missing" else 1

    best = max(exc.errors(), key=rank)
    return _path(best["loc"]), best["msg"]


async def rerank(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(
            ApiError(
                401,
                "a valid API key is required (Authorization: Bearer <key>)",
                kind="authentication_error",
            )
        )
    limit = request.app[MAX_BODY]
    try:
        _, plain = await read_body(request, limit)
        if plain is None:
            encoding = request.headers.get("Content-Encoding")
            return _error(ApiError(415, f"Content-Encoding {encoding!r} is not supported", "body"))
        body = json.loads(plain)
    except json.JSONDecodeError as exc:
        return _error(ApiError(400, f"the body is not valid JSON: {exc.msg}", "body"))
    except UnicodeDecodeError:
        return _error(ApiError(400, "the body is not UTF-8 JSON", "body"))
    except BodyTooLarge:
        return _error(ApiError(413, f"the body is larger than the {limit}-byte limit", "body"))
    if not isinstance(body, dict):
        return _error(ApiError(400, "the body must be a JSON object", "body"))
    try:
        parsed = RerankRequest.model_validate(body)
    except ValidationError as exc:
        param, reason = _most_specific(exc)
        return _error(ApiError(400, f"{param}: {reason}", param))
    unknown = parsed.unknown_fields()
    if unknown:
        log.info("rerank request with unknown fields ignored: %s", ", ".join(unknown))
    try:
        response = await request.app[SERVICE].rerank(
            parsed, PATHS[request.path], request.headers.get("X-Request-Id")
        )
    except ApiError as exc:
        return _error(exc)
    return web.json_response(response.model_dump(mode="json", exclude_none=True))
