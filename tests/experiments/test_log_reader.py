"""The log reader against real OpenSearch and Elasticsearch: UBI indices created with the
plugin's mappings (``query_attributes`` a flat_object on one, flattened on the other), loaded
with synthetic logs, read back equal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from sidecar.evaluation.cluster import Cluster
from sidecar.experiments.log_reader import read_logs
from sidecar.experiments.records import INTERLEAVE
from tests.conftest import EngineHandle
from tests.experiments.engine_logs import load, synthetic_logs
from tests.experiments.synthetic import START

LOGS = synthetic_logs()


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    engine: EngineHandle = request.getfixturevalue(request.param)
    load(engine, LOGS)
    with Cluster(engine.url) as client:
        yield client


def test_an_experiment_reads_back_as_it_was_logged(cluster: Cluster) -> None:
    searches, clicks = LOGS.of("shoes")
    logs = read_logs(cluster, "shoes")
    assert {s.revision for s in logs.searches} == {"r0", "r1"}
    assert logs.searches == searches  # the other experiment and the plain search left out
    assert logs.clicks == clicks  # no impression, no click on another experiment's search
    assert logs.unreadable == 1  # the search without a variant
    assert any(s.client_id is None for s in logs.searches)


def test_interleaved_searches_keep_their_teams(cluster: Cluster) -> None:
    searches, clicks = LOGS.of("boots")
    logs = read_logs(cluster, "boots")
    assert logs.searches == searches and logs.clicks == clicks
    assert all(s.variant == INTERLEAVE and s.teams for s in logs.searches)
    assert logs.unreadable == 0


def test_a_revision_and_a_time_range_narrow_the_searches(cluster: Cluster) -> None:
    searches, _ = LOGS.of("shoes")
    old = read_logs(cluster, "shoes", revision="r0")
    assert old.searches == [s for s in searches if s.revision == "r0"]
    assert {c.query_id for c in old.clicks} <= {s.query_id for s in old.searches}
    since, until = START + timedelta(hours=12), START + timedelta(days=1, hours=12)
    window = read_logs(cluster, "shoes", since=since, until=until)
    assert window.searches == [s for s in searches if since <= s.timestamp < until]
    assert 0 < len(window.searches) < len(searches)


def test_clicks_are_asked_for_in_chunks_of_query_ids(cluster: Cluster) -> None:
    whole = read_logs(cluster, "shoes")
    assert read_logs(cluster, "shoes", chunk=7) == whole


def test_missing_indices_read_as_nothing(cluster: Cluster) -> None:
    logs = read_logs(cluster, "shoes", queries_index="no-such-queries", events_index="no-events")
    assert logs.searches == [] and logs.clicks == []
    assert read_logs(cluster, "sandals").searches == []
