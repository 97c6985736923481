"""Judgments: every file format round-trips, bad files name the line, and COEC judgments from
a hand-made click log equal a hand computation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.evaluation.judgments import (
    Click,
    Judgment,
    JudgmentFormatError,
    Search,
    coec,
    grade,
    parse_judgments,
    read_judgments,
    write_judgments,
)
from sidecar.evaluation.judgments.coec import to_judgments
from sidecar.evaluation.judgments.formats import detect_format

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JUDGMENTS = [
    Judgment(
        query_id="q1", query="red shoes", index="products", doc_id="7", rating=3,
        rater="ana", source="csv", timestamp=WHEN,
    ),
    Judgment(
        query_id="q1", query="red shoes", index="products", doc_id="a,b \"quoted\"", rating=0,
        rater="ana", source="csv", timestamp=WHEN,
    ),
    Judgment(
        query_id="q2", query="chaussures d'hiver ❄", index="products", doc_id="12", rating=2,
        rater="ana", source="csv", timestamp=WHEN, score=1.25,
    ),
]  # fmt: skip


def carried(judgments: list[Judgment], fields: tuple[str, ...]) -> list[tuple[object, ...]]:
    return [tuple(getattr(j, f) for f in fields) for j in judgments]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_round_trip_every_field(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"j.{fmt}"
    write_judgments(JUDGMENTS, path)
    assert detect_format(path) == fmt
    assert read_judgments(path) == JUDGMENTS


def test_rre_round_trips_queries_documents_and_ratings(tmp_path: Path) -> None:
    path = tmp_path / "ratings.json"
    write_judgments(JUDGMENTS, path)
    raw = json.loads(path.read_text())
    assert raw["index"] == "products"
    group = raw["topics"][0]["query_groups"][0]
    assert group["name"] == "q1"
    assert group["queries"][0]["placeholders"] == {"$query": "red shoes"}
    assert group["relevant_documents"]["7"] == {"gain": 3}
    back = read_judgments(path, rater="ana")
    fields = ("query_id", "query", "index", "doc_id", "rating", "rater")
    assert carried(back, fields) == carried(JUDGMENTS, fields)
    assert {j.source for j in back} == {"rre"}


def test_rre_files_written_by_rre_are_read() -> None:
    text = json.dumps(
        {
            "index": "music",
            "id_field": "id",
            "topics": [
                {
                    "description": "Fender basses",
                    "query_groups": [
                        {
                            "name": "Brand search",
                            "queries": [
                                {"template": "only_q.json", "placeholders": {"$query": "fender"}},
                                {"template": "only_q.json", "placeholders": {"$query": "Fender "}},
                            ],
                            "relevant_documents": {"1": {"gain": 3}, "2": {"rating": 1}},
                        }
                    ],
                }
            ],
        }
    )
    judgments = parse_judgments(text, "rre")
    assert carried(judgments, ("query_id", "query", "doc_id", "rating", "index")) == [
        ("Brand search#0", "fender", "1", 3, "music"),
        ("Brand search#0", "fender", "2", 1, "music"),
        ("Brand search#1", "Fender", "1", 3, "music"),
        ("Brand search#1", "Fender", "2", 1, "music"),
    ]


def test_quepid_round_trips_with_the_index_given(tmp_path: Path) -> None:
    path = tmp_path / "quepid.csv"
    write_judgments(JUDGMENTS, path, "quepid")
    assert path.read_text().splitlines()[0] == "query,docid,rating"
    assert detect_format(path) == "quepid"
    back = read_judgments(path, index="products")
    assert carried(back, ("query", "doc_id", "rating", "index")) == carried(
        JUDGMENTS, ("query", "doc_id", "rating", "index")
    )
    assert back[2].query_id == "chaussures d'hiver ❄"  # the normalized text
    with pytest.raises(JudgmentFormatError, match="give the index"):
        read_judgments(path)


def test_quepid_exports_are_read_with_integral_float_ratings() -> None:
    text = "query,docid,rating\nRed  Shoes,7,3.0\nred shoes,8,0\n"
    judgments = parse_judgments(text, "quepid", index="p")
    assert [j.rating for j in judgments] == [3, 0]
    assert {j.query_id for j in judgments} == {"red shoes"}  # one query, two spellings


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("csv", "query,doc_id,rating,index\nred,1,3,p\nred,2,x,p\n", r"<judgments>:3: rating"),
        ("csv", "query,doc_id,rating,colour\n", "unknown column"),
        ("csv", "query,rating,index\nred,1,p\n", "no 'doc_id' column"),
        ("csv", "query,doc_id,rating\nred,1,2\n", r":2: index: Field required"),
        ("csv", "query,doc_id,rating,index\nred,1,2.5,p\n", "rating must be an integer"),
        ("csv", "query,doc_id,rating,index\nred,1,-1,p\n", "greater than or equal to 0"),
        ("csv", "query,doc_id,rating,index\nred,1,1,p,extra\n", ":2: more values"),
        ("jsonl", '{"query":"a","doc_id":"1","rating":1,"index":"p"}\n{oops\n', ":2: not JSON"),
        ("jsonl", '[1]\n', ":1: each line must be a JSON object"),
        ("jsonl", '{"query":"a","doc_id":"1","rating":1,"index":"p","x":1}\n', "x: Extra inputs"),
        ("jsonl", '{"query":"","doc_id":"1","rating":1,"index":"p"}\n', "query: Field required"),
        ("rre", '{"topics": 3}', "topics list"),
        ("rre", '{"topics": [{"query_groups": [{"queries": [{}]}]}]}', "no index"),
        ("rre", '{"index":"i","topics":[{"query_groups":[{"queries":[{"placeholders":{}}]}]}]}',
         "queries.0: a query needs placeholders"),
        ("quepid", "query,doc,rating\n", "header must be"),
        ("quepid", "query,docid,rating\nred,1\n", ":2: expected 3 values"),
        ("csv", "query,doc_id,rating,index\nred,1,1,p\nRed,1,2,p\n", "rated twice"),
    ],
)  # fmt: skip
def test_bad_files_say_where_and_why(fmt: str, text: str, message: str) -> None:
    with pytest.raises(JudgmentFormatError, match=message):
        parse_judgments(text, fmt, index="p" if fmt == "quepid" else None)  # type: ignore[arg-type]


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "two-indices.json"
    mixed = [*JUDGMENTS, JUDGMENTS[0].model_copy(update={"index": "other"})]
    with pytest.raises(JudgmentFormatError, match="one index"):
        write_judgments(mixed, path)
    assert list(tmp_path.iterdir()) == []


def test_store_ids_are_deterministic_and_unambiguous() -> None:
    one = Judgment(query_id="a:b", query="x", index="i", doc_id="c", rating=1)
    two = Judgment(query_id="a", query="x", index="i", doc_id="b:c", rating=1)
    assert one.store_id != two.store_id
    assert one.store_id == one.model_copy(update={"rating": 3}).store_id
    long = Judgment(query_id="q" * 600, query="x", index="i", doc_id="d", rating=1)
    assert long.store_id.startswith("sha256:") and len(long.store_id) < 512


# A click log small enough to compute by hand. Positions are 1-based places in the shown list.
SEARCHES = [
    Search("s1", "shoes", ["a", "b", "c"]),
    Search("s2", "Shoes", ["a", "b", "c"]),
    Search("s3", "shoes ", ["b", "a", "c"]),
    Search("s4", "shoes", ["a", "c", "b"]),
    Search("s5", "hat", ["x", "y"]),
    Search("s6", "hat", ["x", "y"]),
]
CLICKS = [
    Click("s1", "a"),
    Click("s1", "z"),  # not shown by s1: ignored, counted
    Click("s2", "b"),
    Click("s3", "b"),
    Click("s5", "y"),
    Click("s6", "x"),
    Click("s6", "x"),  # the same search clicking twice counts once
    Click("gone", "a"),  # a search that is not in the log
]


def test_coec_equals_the_hand_computation() -> None:
    model = coec(SEARCHES, CLICKS, min_impressions=1)
    # ctr(1): clicked at 1 in s1, s3, s6 of 6 impressions; ctr(2): s2, s5 of 6; ctr(3): 0 of 4.
    assert model.ctr_at_position == {1: 3 / 6, 2: 2 / 6, 3: 0.0}
    scores = {(s.query, s.doc_id): s for s in model.scores}
    a = scores[("shoes", "a")]  # shown at 1, 1, 2, 1; clicked once
    assert (a.impressions, a.clicks) == (4, 1)
    assert a.expected_clicks == pytest.approx(0.5 + 0.5 + 1 / 3 + 0.5)
    assert a.coec == pytest.approx(1 / (1.5 + 1 / 3))
    b = scores[("shoes", "b")]  # shown at 2, 2, 1, 3; clicked twice
    assert b.coec == pytest.approx(2 / (1 / 3 + 1 / 3 + 0.5 + 0.0))
    assert scores[("shoes", "c")].coec == 0.0
    assert scores[("hat", "x")].coec == pytest.approx(1 / (0.5 + 0.5))
    assert scores[("hat", "y")].coec == pytest.approx(1 / (2 / 6 + 2 / 6))
    assert model.unmatched_clicks == 2
    assert model.queries["shoes"] == "shoes"


def test_the_minimum_impressions_cut_and_the_grades() -> None:
    model = coec(SEARCHES, CLICKS, min_impressions=3)
    assert {(s.query, s.doc_id) for s in model.scores} == {
        ("shoes", "a"), ("shoes", "b"), ("shoes", "c")
    }  # fmt: skip
    assert model.below_cut == 2
    judgments = {j.doc_id: j for j in to_judgments(model, "products")}
    # COEC a 0.545 -> 1, b 1.714 -> 2, c 0 -> 0 with thresholds 0.5, 1, 2.
    assert {d: j.rating for d, j in judgments.items()} == {"a": 1, "b": 2, "c": 0}
    assert judgments["b"].score == pytest.approx(2 / (2 / 3 + 0.5))
    assert {j.rater for j in judgments.values()} == {"coec"}
    assert [grade(v) for v in (0.0, 0.49, 0.5, 1.0, 1.99, 2.0, 9.0)] == [0, 0, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="increasing"):
        grade(1.0, [2.0, 1.0])


def test_max_position_ignores_what_was_never_seen() -> None:
    model = coec(SEARCHES, CLICKS, min_impressions=1, max_position=1)
    assert model.ctr_at_position == {1: 0.5}
    assert {s.doc_id for s in model.scores} == {"a", "b", "x"}
