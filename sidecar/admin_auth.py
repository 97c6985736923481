"""The admin APIs' bearer tokens (``admin.tokens``) and their error answers.

Shared by ``/_rerank/experiments`` and ``/_rerank/jobs``. Tokens are compared in constant time
and never logged or echoed; with none configured every call is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web
from pydantic import SecretStr

from sidecar.jsonio import dumps


def admin_error(
    status: int, kind: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An error in the engines' format: ``{"error": {"type", "reason"}, "status"}``."""
    body = {"error": {"type": kind, "reason": reason}, "status": status}
    return web.Response(
        status=status, body=dumps(body), content_type="application/json", headers=headers
    )


def admin_refusal(request: web.Request, tokens: Sequence[SecretStr]) -> web.Response | None:
    """None when the caller holds one of ``tokens``; else the refusal (403 with none
    configured, 401 for a missing or wrong token)."""
    if not tokens:
        return admin_error(403, "security_exception", "the admin API is off: set admin.tokens")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    offered = given.strip().encode()
    # Every token is compared, in constant time: neither timing nor order says which matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(offered, token.get_secret_value().encode())
    if scheme.lower() != "bearer" or not matched:
        return admin_error(
            401,
            "security_exception",
            "missing or wrong admin token",
            headers={"WWW-Authenticate": 'Bearer realm="rerank-sidecar admin"'},
        )
    return None
