"""Judgments through the real engines: ``rerank-sidecar judgments import`` and ``export`` of
every format into and out of ``rerank-judgments``, and COEC judgments read from real
``ubi_queries`` / ``ubi_events`` indices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidecar.cli import app
from sidecar.evaluation.cluster import Cluster
from sidecar.evaluation.judgments import coec, read_judgments, write_judgments
from sidecar.evaluation.judgments.store import JUDGMENTS_INDEX
from sidecar.experiments.ubi_schema import (
    EVENTS_INDEX,
    QUERIES_INDEX,
    events_mapping,
    queries_mapping,
)
from tests.conftest import EngineHandle
from tests.sidecar.test_judgments import CLICKS, JUDGMENTS, SEARCHES

runner = CliRunner()


@pytest.fixture(params=["opensearch", "elasticsearch"])
def engine(request: pytest.FixtureRequest) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    for index in (JUDGMENTS_INDEX, QUERIES_INDEX, EVENTS_INDEX):
        handle.client.indices.delete(index=index, ignore_unavailable=True)
    return handle


def cli(engine: EngineHandle, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", engine.url])
    return result.exit_code, result.output


def stored_count(engine: EngineHandle) -> int:
    engine.client.indices.refresh(index=JUDGMENTS_INDEX)
    return int(engine.client.count(index=JUDGMENTS_INDEX)["count"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "rre", "quepid"])
def test_import_then_export_round_trips_each_format(
    engine: EngineHandle, fmt: str, tmp_path: Path
) -> None:
    source = tmp_path / f"in.{fmt}"
    write_judgments(JUDGMENTS, source, fmt)  # type: ignore[arg-type]
    extra = ["--index", "products", "--rater", "ana"] if fmt in ("quepid", "rre") else []
    code, output = cli(engine, "judgments", "import", str(source), "--format", fmt, *extra)
    assert code == 0, output
    assert "imported 3 judgments of 2 queries" in output
    code, output = cli(engine, "judgments", "import", str(source), "--format", fmt, *extra)
    assert code == 0 and stored_count(engine) == 3  # a second import replaces

    back = tmp_path / f"out.{fmt}"
    code, output = cli(engine, "judgments", "export", str(back), "--format", fmt)
    assert code == 0, output
    exported = read_judgments(back, fmt, index="products", rater="ana")  # type: ignore[arg-type]
    original = read_judgments(source, fmt, index="products", rater="ana")  # type: ignore[arg-type]
    fields = ["query_id", "query", "index", "doc_id", "rating", "rater", "score"]
    if fmt in ("csv", "jsonl"):
        fields += ["source", "timestamp"]

    def view(judgments: list) -> list:  # type: ignore[type-arg]
        return sorted(tuple(getattr(j, f) for f in fields) for j in judgments)

    assert view(exported) == view(original)


def test_a_bad_file_writes_nothing_and_says_where(engine: EngineHandle, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("query,doc_id,rating,index\nred,1,3,p\nred,2,three,p\n")
    code, output = cli(engine, "judgments", "import", str(bad))
    assert code == 2
    assert "bad.csv:3: rating" in output
    assert not engine.client.indices.exists(index=JUDGMENTS_INDEX)


def test_an_index_the_sidecar_did_not_make_is_refused(engine: EngineHandle, tmp_path: Path) -> None:
    engine.client.indices.create(
        index=JUDGMENTS_INDEX,
        body={
            "settings": {"number_of_replicas": 0},
            "mappings": {
                "properties": {"query_id": {"type": "keyword"}, "rating": {"type": "keyword"}}
            },
        },
    )
    good = tmp_path / "good.jsonl"
    write_judgments(JUDGMENTS, good)
    code, output = cli(engine, "judgments", "import", str(good))
    assert code == 1
    assert (
        "maps 'doc_id' as 'nothing', not 'keyword': it was not created by rerank-sidecar"
        in " ".join(output.split())
    )
    assert stored_count(engine) == 0


def test_coec_judgments_from_the_ubi_indices_equal_the_model_on_the_same_log(
    engine: EngineHandle, tmp_path: Path
) -> None:
    flavor = "opensearch" if engine.name.startswith("opensearch") else "elasticsearch"
    client = engine.client
    single = {"number_of_replicas": 0}  # one node: replicas would leave the cluster yellow
    client.indices.create(
        index=QUERIES_INDEX, body={"settings": single, "mappings": queries_mapping(flavor)}
    )
    client.indices.create(
        index=EVENTS_INDEX, body={"settings": single, "mappings": events_mapping(flavor)}
    )
    lines = []
    for s in SEARCHES:
        doc = {
            "query_id": s.query_id,
            "user_query": s.user_query,
            "query_response_hit_ids": list(s.hit_ids),
            "timestamp": "2026-11-30T12:00:00Z",
            "query_attributes": {"experiment": "none"},
        }
        lines += [{"index": {"_index": QUERIES_INDEX}}, doc]
    for position, c in enumerate(CLICKS):
        event = {
            "action_name": "click",
            "query_id": c.query_id,
            "client_id": "u1",
            "timestamp": "2026-11-30T12:00:01Z",
            "event_attributes": {
                "object": {"object_id": c.object_id},
                "position": {"ordinal": position},
            },
        }
        lines += [{"index": {"_index": EVENTS_INDEX}}, event]
    lines += [  # not a click: never counted
        {"index": {"_index": EVENTS_INDEX}},
        {
            "action_name": "hover",
            "query_id": "s4",
            "event_attributes": {"object": {"object_id": "c"}},
        },
    ]
    answer = client.bulk(body="".join(json.dumps(line) + "\n" for line in lines), refresh=True)
    assert not answer["errors"]

    out = tmp_path / "clicks.jsonl"
    code, output = cli(
        engine, "judgments", "from-clicks", "--index", "products", "--min-impressions", "1",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, output
    expected = {
        (s.query, s.doc_id): s.coec for s in coec(SEARCHES, CLICKS, min_impressions=1).scores
    }
    got = {(j.query_id, j.doc_id): j.score for j in read_judgments(out)}
    assert got == pytest.approx(expected)
    assert "2 clicks on documents their search did not show ignored" in " ".join(output.split())

    code, output = cli(
        engine, "judgments", "from-clicks", "--index", "products", "--min-impressions", "3"
    )
    assert code == 0, output
    with Cluster(engine.url) as cluster:
        from sidecar.evaluation.judgments.store import read_judgments as stored

        ratings = {(j.query_id, j.doc_id): j.rating for j in stored(cluster, rater="coec")}
    assert ratings == {("shoes", "a"): 1, ("shoes", "b"): 2, ("shoes", "c"): 0}
