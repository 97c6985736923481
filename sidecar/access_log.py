"""Structured access logs: one JSON object per request on the ``rerank_sidecar.access`` logger.

Never logged: headers other than the few named here (no Authorization, cookies or API keys),
bodies, and the values of query parameters whose names suggest a secret.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|signature|credential", re.I)
REDACTED = "[redacted]"

# The keys of an access-log record, with the mapping types a log shipper's index should give
# them: the dashboards' ``rerank-access-*`` data view is built from this (deploy/saved_objects.py),
# and a test checks that ``JsonAccessLogger.log`` writes exactly these keys.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "remote": "keyword",
    "method": "keyword",
    "target": "keyword",
    "status": "long",
    "bytes": "long",
    "ms": "double",
    "rerank": "keyword",  # X-Rerank-Status: "applied", "skipped; reason=…", "degraded; reason=…"
    "opaque_id": "keyword",
    "user_agent": "keyword",
}


def redacted_target(request: web.BaseRequest) -> str:
    """The path and query string, secret-looking parameter values replaced."""
    if not request.query_string:
        return request.path
    pairs = parse_qsl(request.query_string, keep_blank_values=True)
    shown = [(k, REDACTED if SECRET_PARAM.search(k) else v) for k, v in pairs]
    return f"{request.path}?{urlencode(shown)}"


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        record = {
            "remote": request.remote,
            "method": request.method,
            "target": redacted_target(request),
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time * 1000, 2),
            "rerank": response.headers.get("X-Rerank-Status"),
            "opaque_id": request.headers.get("X-Opaque-Id"),
            "user_agent": request.headers.get("User-Agent"),
        }
        self.logger.info(json.dumps({k: v for k, v in record.items() if v is not None}))
