"""Errors the sidecar itself answers on the search path, in the engines' own error envelope, so
clients raise the exception they would raise for the engine (400 → BadRequestError, …)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def engine_error_body(status: int, kind: str, reason: str) -> dict[str, Any]:
    """``{"error": {"root_cause": [...], "type", "reason"}, "status"}``, as the engines write it
    (also the shape of a failed ``_msearch`` item)."""
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def engine_error(
    status: int, kind: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = engine_error_body(status, kind, reason)
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
