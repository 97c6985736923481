"""Synthetic experiment logs loaded into a real engine's UBI indices, created with the UBI
plugin's mappings (``ubi_schema``), for the log reader and the report command."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta

from sidecar.experiments.records import LoggedClick, LoggedSearch
from sidecar.experiments.ubi_schema import (
    EVENTS_INDEX,
    QUERIES_INDEX,
    events_mapping,
    queries_mapping,
)
from tests.conftest import EngineHandle
from tests.experiments.synthetic import (
    BETTER,
    START,
    WORSE,
    ab_logs,
    event_doc,
    interleaved_logs,
    query_doc,
)


@dataclass(frozen=True)
class LoadedLogs:
    searches: list[LoggedSearch]  # every experiment's
    clicks: list[LoggedClick]  # every click event

    def of(self, experiment: str) -> tuple[list[LoggedSearch], list[LoggedClick]]:
        searches = sorted(
            (s for s in self.searches if s.experiment == experiment),
            key=lambda s: (s.timestamp, s.query_id),
        )
        ids = {s.query_id for s in searches}
        clicks = sorted(
            (c for c in self.clicks if c.query_id in ids),
            key=lambda c: (c.timestamp, c.query_id, c.object_id),
        )
        return searches, clicks


def synthetic_logs() -> LoadedLogs:
    """ "shoes": an A/B test whose revision r0 ran a day before r1 (B ranks better); "boots": an
    interleaving of WORSE (A) and BETTER (B)."""
    rankings = {"A": WORSE, "B": BETTER}
    old = ab_logs(
        seed=6, users=12, searches_per_user=2, rankings=rankings, split={"A": 1, "B": 1},
        revision="r0", days=1, start=START - timedelta(days=1),
    )  # fmt: skip
    new = ab_logs(
        seed=5, users=80, searches_per_user=3, rankings=rankings, split={"A": 1, "B": 1},
        unkeyed=10,
    )  # fmt: skip
    boots = interleaved_logs(seed=7, users=60, searches_per_user=2, first=WORSE, second=BETTER)
    # Clicks at a whole millisecond: epoch-millis timestamps below must read back equal.
    clicks = [
        replace(c, timestamp=c.timestamp - timedelta(microseconds=c.timestamp.microsecond % 1000))
        for c in old[1] + new[1] + boots[1]
    ]
    return LoadedLogs(old[0] + new[0] + boots[0], clicks)


def load(engine: EngineHandle, logs: LoadedLogs) -> None:
    """Recreate the UBI indices with the plugin's mappings and bulk-load ``logs``, plus what the
    reader must leave out: a search of no experiment, a search without a variant, an impression
    event and a click on no search."""
    flavor = "opensearch" if engine.name.startswith("opensearch") else "elasticsearch"
    client = engine.client
    for index, mapping in ((QUERIES_INDEX, queries_mapping), (EVENTS_INDEX, events_mapping)):
        client.indices.delete(index=index, ignore_unavailable=True)
        client.indices.create(
            index=index, body={"settings": {"number_of_replicas": 0}, "mappings": mapping(flavor)}
        )
    queries = [query_doc(s) for s in logs.searches]
    queries.append({"query_id": "plain", "timestamp": START.isoformat(), "user_query": "x"})
    broken = query_doc(logs.searches[0]) | {"query_id": "no-variant"}
    broken["query_attributes"] = {"experiment": "shoes", "revision": "r1"}
    queries.append(broken)
    events = [event_doc(c) for c in logs.clicks]
    for i, doc in enumerate(events[::2]):  # half the events with epoch-millis timestamps
        moment = logs.clicks[2 * i].timestamp
        doc["timestamp"] = round(moment.timestamp() * 1000)
    events.append(event_doc(logs.clicks[0], action="impression"))
    events.append(event_doc(replace(logs.clicks[0], query_id="unknown")))
    for index, docs in ((QUERIES_INDEX, queries), (EVENTS_INDEX, events)):
        lines = "".join(
            json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(doc) + "\n" for doc in docs
        )
        answer = client.bulk(body=lines, refresh=True)
        assert not answer["errors"], [i for i in answer["items"] if "error" in i["index"]][:2]
