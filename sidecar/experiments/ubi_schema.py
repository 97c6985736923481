"""The User Behavior Insights indices, mapped as OpenSearch's UBI plugin maps them.

The plugin's ``queries-mapping.json`` and ``events-mapping.json`` (UBI specification 1.x), with
two differences that keep both engines on one schema: ``query_attributes`` is a
``flat_object`` on OpenSearch and ``flattened`` (its Elasticsearch twin) on Elasticsearch, and
``ubi_queries`` also maps ``application``, which the specification's query schema has and the
plugin's mapping leaves unindexed.
"""

from __future__ import annotations

from typing import Any

from sidecar.evaluation.models import Flavor

QUERIES_INDEX = "ubi_queries"
EVENTS_INDEX = "ubi_events"


def _keyword(ignore_above: int | None = None) -> dict[str, Any]:
    return {"type": "keyword", **({"ignore_above": ignore_above} if ignore_above else {})}


def _text_with_keyword() -> dict[str, Any]:
    return {"type": "text", "fields": {"keyword": _keyword(256)}}


def queries_mapping(flavor: Flavor) -> dict[str, Any]:
    return {
        "dynamic": False,
        "properties": {
            "timestamp": {"type": "date"},
            "query_id": _keyword(100),
            "query": {"type": "text"},
            "query_response_id": _keyword(100),
            "query_response_hit_ids": _keyword(),
            "user_query": _text_with_keyword(),
            "query_attributes": {"type": "flat_object" if flavor == "opensearch" else "flattened"},
            "client_id": _keyword(100),
            "application": _keyword(256),
            "indexes": _keyword(),
        },
    }


def events_mapping(flavor: Flavor) -> dict[str, Any]:
    del flavor  # the same on both engines
    integer = {"type": "integer"}
    return {
        "properties": {
            "application": _keyword(256),
            "action_name": _keyword(100),
            "client_id": _keyword(100),
            "query_id": _keyword(100),
            "message": _keyword(1024),
            "message_type": _keyword(100),
            "timestamp": {
                "type": "date",
                "format": "strict_date_optional_time||epoch_millis",
                "ignore_malformed": True,
            },
            "event_attributes": {
                "dynamic": True,
                "properties": {
                    "position": {
                        "properties": {
                            "ordinal": integer,
                            "x": integer,
                            "y": integer,
                            "page_depth": integer,
                            "scroll_depth": integer,
                            "trail": _text_with_keyword(),
                        }
                    },
                    "object": {
                        "properties": {
                            "internal_id": _keyword(),
                            "object_id": _keyword(256),
                            "object_id_field": _keyword(100),
                            "name": _keyword(256),
                            "description": _text_with_keyword(),
                            "object_detail": {"type": "object"},
                        }
                    },
                },
            },
        }
    }
