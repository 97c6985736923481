"""One experiment's searches and clicks, read back from the UBI indices of a cluster.

Searches: ``ubi_queries`` documents whose ``query_attributes.experiment`` is the experiment (a
term query on the dotted path, which OpenSearch's ``flat_object`` and Elasticsearch's
``flattened`` both answer), optionally of one revision and in a time range (``since``
included, ``until`` excluded).

Clicks: ``ubi_events`` with ``action_name`` ``click`` whose ``query_id`` is one of those
searches, asked for by id, at most ``CHUNK`` ids per terms query. We ask by id rather than
scanning the events of the time range and joining in memory because the events index holds
every application's events (impressions, hovers, other experiments), so a time scan would read
far more than it keeps, and because a click belongs to its search however late it comes: the
clicks have no time bound. So no orphan comes back from here; the sidecar counts events for
unknown query ids when they arrive at ``/ubi_events``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.evaluation.cluster import Cluster
from sidecar.experiments.records import ASSIGNED_BY_KEY, CLICK, LoggedClick, LoggedSearch
from sidecar.experiments.ubi_schema import EVENTS_INDEX, QUERIES_INDEX

CHUNK = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_FIELDS = [
    "query_id", "client_id", "timestamp", "user_query", "query_response_hit_ids",
    "query_attributes",
]  # fmt: skip
CLICK_FIELDS = [
    "query_id", "client_id", "timestamp", "event_attributes.object.object_id",
    "event_attributes.position.ordinal",
]  # fmt: skip


@dataclass(frozen=True)
class ExperimentLogs:
    searches: list[LoggedSearch]  # by time
    clicks: list[LoggedClick]  # by time
    unreadable: int  # search documents without a query id, a time or a variant


def parse_time(value: Any) -> datetime | None:
    """A UBI timestamp as an aware UTC datetime: ISO 8601 (naive means UTC) or epoch millis."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return EPOCH + timedelta(milliseconds=value)  # exact, unlike fromtimestamp's float
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lstrip("-").isdigit():
            return EPOCH + timedelta(milliseconds=int(text))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _strings(value: Any) -> tuple[str, ...]:
    # The sidecar and the UBI plugin write a list; some collectors one comma-separated string.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time_range(since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    bounds = {k: v.isoformat() for k, v in (("gte", since), ("lt", until)) if v is not None}
    return [{"range": {"timestamp": bounds}}] if bounds else []


def search_of(doc: dict[str, Any]) -> LoggedSearch | None:
    """A ``ubi_queries`` document as a logged search; None when it lacks what analysis needs."""
    attributes = doc.get("query_attributes")
    if not isinstance(attributes, dict):
        return None
    moment = parse_time(doc.get("timestamp"))
    query_id, variant = doc.get("query_id"), attributes.get("variant")
    if moment is None or not query_id or not isinstance(variant, str) or not variant:
        return None
    teams = attributes.get("teams")
    client_id = doc.get("client_id")
    return LoggedSearch(
        query_id=str(query_id),
        client_id=str(client_id) if client_id not in (None, "") else None,
        timestamp=moment,
        experiment=str(attributes.get("experiment", "")),
        revision=str(attributes.get("revision", "")),
        variant=variant,
        hit_ids=_strings(doc.get("query_response_hit_ids")),
        teams=_strings(teams) if teams is not None else None,
        assignment=str(attributes.get("assignment") or ASSIGNED_BY_KEY),
        user_query=str(doc.get("user_query") or ""),
    )


def click_of(doc: dict[str, Any], searched_at: datetime) -> LoggedClick | None:
    """A ``ubi_events`` click as a logged click (its search's time when it has none)."""
    attributes = _mapping(doc.get("event_attributes"))
    obj, position = _mapping(attributes.get("object")), _mapping(attributes.get("position"))
    if not doc.get("query_id") or obj.get("object_id") in (None, ""):
        return None
    ordinal = position.get("ordinal")
    client_id = doc.get("client_id")
    return LoggedClick(
        query_id=str(doc["query_id"]),
        object_id=str(obj["object_id"]),
        timestamp=parse_time(doc.get("timestamp")) or searched_at,
        client_id=str(client_id) if client_id not in (None, "") else None,
        position=ordinal if isinstance(ordinal, int) and not isinstance(ordinal, bool) else None,
    )


def _chunks(ids: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def read_logs(
    cluster: Cluster,
    experiment: str,
    *,
    revision: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    queries_index: str = QUERIES_INDEX,
    events_index: str = EVENTS_INDEX,
    chunk: int = CHUNK,
) -> ExperimentLogs:
    """The searches of ``experiment`` (of ``revision``, from ``since`` until before ``until``)
    and every click on them. Missing indices read as empty."""
    filters: list[dict[str, Any]] = [{"term": {"query_attributes.experiment": experiment}}]
    if revision is not None:
        filters.append({"term": {"query_attributes.revision": revision}})
    filters += _time_range(since, until)
    searches: dict[str, LoggedSearch] = {}
    unreadable = 0
    for hit in cluster.scan(queries_index, {"bool": {"filter": filters}}, source=SEARCH_FIELDS):
        search = search_of(hit.get("_source") or {})
        if search is None or search.experiment != experiment:
            unreadable += 1
        else:
            searches.setdefault(search.query_id, search)
    clicks: list[LoggedClick] = []
    for ids in _chunks(sorted(searches), chunk):
        query = {
            "bool": {"filter": [{"term": {"action_name": CLICK}}, {"terms": {"query_id": ids}}]}
        }
        for hit in cluster.scan(events_index, query, source=CLICK_FIELDS):
            doc = hit.get("_source") or {}
            search = searches.get(str(doc.get("query_id")))
            if search is not None and (click := click_of(doc, search.timestamp)) is not None:
                clicks.append(click)
    return ExperimentLogs(
        sorted(searches.values(), key=lambda s: (s.timestamp, s.query_id)),
        sorted(clicks, key=lambda c: (c.timestamp, c.query_id, c.object_id)),
        unreadable,
    )
