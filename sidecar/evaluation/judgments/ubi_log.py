"""The searches and clicks of the UBI indices, read for the click models."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sidecar.evaluation.cluster import Cluster
from sidecar.evaluation.judgments.coec import Click, Search
from sidecar.experiments.ubi_schema import EVENTS_INDEX, QUERIES_INDEX

CLICK_ACTIONS = ("click",)


def _time_range(since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    bounds = {k: v.isoformat() for k, v in (("gte", since), ("lt", until)) if v is not None}
    return [{"range": {"timestamp": bounds}}] if bounds else []


def _hit_ids(value: Any) -> list[str]:
    # The UBI plugin writes a list; some collectors write one comma-separated string.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value or []]


def read_searches(
    cluster: Cluster,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    application: str | None = None,
    index: str = QUERIES_INDEX,
) -> Iterator[Search]:
    filters = _time_range(since, until)
    if application:
        filters.append({"term": {"application": application}})
    fields = ["query_id", "user_query", "query_response_hit_ids"]
    for hit in cluster.scan(index, {"bool": {"filter": filters}}, source=fields):
        doc = hit["_source"]
        if doc.get("query_id") and isinstance(doc.get("user_query"), str):
            yield Search(
                str(doc["query_id"]), doc["user_query"], _hit_ids(doc.get("query_response_hit_ids"))
            )


def read_clicks(
    cluster: Cluster,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actions: Sequence[str] = CLICK_ACTIONS,
    index: str = EVENTS_INDEX,
) -> Iterator[Click]:
    filters = [*_time_range(since, until), {"terms": {"action_name": list(actions)}}]
    fields = ["query_id", "event_attributes.object.object_id"]
    for hit in cluster.scan(index, {"bool": {"filter": filters}}, source=fields):
        doc = hit["_source"]
        obj = ((doc.get("event_attributes") or {}).get("object")) or {}
        if doc.get("query_id") and obj.get("object_id") is not None:
            yield Click(str(doc["query_id"]), str(obj["object_id"]))
