"""``POST /ubi_events``: click and impression events as the UBI JavaScript collector sends them.

The body is an array of events (one object alone is taken as an array of one). Each event is
checked on its own: a malformed one is refused with its position and the reason, the valid
ones are stored all the same (``ubi_events``, through the buffered writer). An event whose
``query_id`` the sidecar never logged is stored and counted as an orphan. The answer::

    {"accepted": 2, "orphans": 1, "rejected": [{"position": 1, "reason": "..."}], "dropped": 0}

``dropped`` counts accepted events the writer's buffer had no room for (counted in the metrics
too). The endpoint takes no credentials, as the collector sends none: it only ever appends to
``ubi_events``, and events are bounded in number, size and shape.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.experiments.search_path import EXPERIMENTS
from sidecar.jsonio import dumps, loads
from sidecar.proxy.errors import engine_error

MAX_EVENT_BYTES = 16 * 1024
MAX_KEYS = 32
STRING_LIMITS = {
    "action_name": 100,
    "query_id": 100,
    "client_id": 100,
    "message_type": 100,
    "message": 1024,
    "application": 256,
    "session_id": 100,
    "user_id": 100,
}


class EventError(ValueError):
    pass


def _timestamp(value: Any) -> str:
    if value is None:
        return datetime.now(UTC).isoformat()
    if isinstance(value, bool):
        raise EventError("timestamp must be an ISO 8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise EventError("timestamp must be a finite, positive number of milliseconds")
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"timestamp {value[:40]!r} is not ISO 8601") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
    raise EventError("timestamp must be an ISO 8601 string or epoch milliseconds")


def _integer(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(f"{where} must be an integer")
    if int(value) != value or not -(2**31) <= value < 2**31:
        raise EventError(f"{where} must be an integer")
    return int(value)


def check_event(raw: Any, application: str) -> dict[str, Any]:
    """The event as it is stored; raises EventError with the reason."""
    if not isinstance(raw, dict):
        raise EventError(f"an event is a JSON object, not {type(raw).__name__}")
    if len(raw) > MAX_KEYS:
        raise EventError(f"an event has at most {MAX_KEYS} keys")
    if len(dumps(raw)) > MAX_EVENT_BYTES:
        raise EventError(f"an event is at most {MAX_EVENT_BYTES} bytes")
    event = dict(raw)
    for key, limit in STRING_LIMITS.items():
        value = event.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise EventError(f"{key} must be a string")
        if len(value) > limit:
            raise EventError(f"{key} is longer than {limit} characters")
    if not event.get("action_name"):
        raise EventError("action_name is required")
    event["timestamp"] = _timestamp(event.get("timestamp"))
    event.setdefault("application", application)
    attributes = event.get("event_attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise EventError("event_attributes must be an object")
        position = attributes.get("position")
        if position is not None:
            if not isinstance(position, dict):
                raise EventError("event_attributes.position must be an object")
            for name in ("ordinal", "x", "y", "page_depth", "scroll_depth"):
                _integer(position.get(name), f"event_attributes.position.{name}")
        obj = attributes.get("object")
        if obj is not None:
            if not isinstance(obj, dict):
                raise EventError("event_attributes.object must be an object")
            object_id = obj.get("object_id")
            if isinstance(object_id, int | float) and not isinstance(object_id, bool):
                obj = {**obj, "object_id": str(object_id)}
                event["event_attributes"] = {**attributes, "object": obj}
            elif object_id is not None and not isinstance(object_id, str):
                raise EventError("event_attributes.object.object_id must be a string")
    return event


async def ubi_events(request: web.Request) -> web.Response:
    experiments = request.app[EXPERIMENTS]
    writer = experiments.writer
    from sidecar.proxy.search import SEARCH

    settings = request.app[SEARCH].settings
    metrics = request.app[SEARCH].metrics
    try:
        body = loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return engine_error(400, "parse_exception", "the body is not JSON: send an array of events")
    events = body if isinstance(body, list) else [body]
    if len(events) > settings.ubi.max_events:
        return engine_error(
            400,
            "illegal_argument_exception",
            f"{len(events)} events in one request; at most {settings.ubi.max_events}",
        )
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for position, raw in enumerate(events):
        try:
            accepted.append(check_event(raw, settings.ubi.application))
        except EventError as exc:
            rejected.append({"position": position, "reason": str(exc)})
    metrics.ubi_events.labels("rejected").inc(len(rejected))
    query_ids = list({e["query_id"] for e in accepted if isinstance(e.get("query_id"), str)})
    known = await writer.known_query_ids(query_ids) if writer is not None else None
    orphans = 0
    dropped = 0
    for event in accepted:
        query_id = event.get("query_id")
        if known is not None and isinstance(query_id, str) and query_id not in known:
            orphans += 1
        if writer is None or not writer.write(settings.ubi.events_index, event):
            dropped += 1
    metrics.ubi_events.labels("accepted").inc(len(accepted))
    metrics.ubi_events.labels("orphan").inc(orphans)
    if known is None and query_ids:
        metrics.ubi_events.labels("unverified").inc(len(accepted))
    answer = {
        "accepted": len(accepted),
        "orphans": orphans,
        "rejected": rejected,
        "dropped": dropped,
    }
    return web.json_response(answer, dumps=lambda v: dumps(v).decode())
