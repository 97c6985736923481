"""Errors the sidecar itself answers on the search path, in the engines' own error envelope, so
clients raise the exception they would raise for the engine (400 → BadRequestError, …)."""

from __future__ import annotations

import json

from aiohttp import web


def engine_error(
    status: int, kind: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    cause = {"type": kind, "reason": reason}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
