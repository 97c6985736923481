"""The analysis on hand-made logs: every number below is counted by hand from the searches and
clicks written out in this file."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from sidecar.experiments.analysis import (
    AnalysisError,
    ExperimentAnalysis,
    analyze,
    report_json,
    verdicts,
)
from sidecar.experiments.records import ASSIGNED_AT_RANDOM, INTERLEAVE, LoggedClick, LoggedSearch
from sidecar.experiments.statistics import (
    sample_ratio_check,
    sign_test,
    two_proportion_z_test,
    wilson_interval,
)

DAY = datetime(2026, 12, 1, tzinfo=UTC)
EXPERIMENT = "shoes"


def at(hours: float, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hours)


def search(
    query_id: str, user: str | None, variant: str, when: datetime, hits: str,
    revision: str = "r1", teams: str | None = None,
) -> LoggedSearch:  # fmt: skip
    return LoggedSearch(
        query_id=query_id,
        client_id=user,
        timestamp=when,
        experiment=EXPERIMENT,
        revision=revision,
        variant=variant,
        hit_ids=tuple(hits.split()),
        teams=tuple(teams.split()) if teams is not None else None,
        assignment=ASSIGNED_AT_RANDOM if user is None else "key",
    )


def click(query_id: str, hit: str, when: datetime, ordinal: int | None = None) -> LoggedClick:
    return LoggedClick(query_id, hit, when, position=ordinal)


# Revision r1: A has s1-s3 (user u1), B has s4, s5 (no user), s6 (u3, the next day) and s7.
SEARCHES = [
    search("s1", "u1", "A", at(10), "d1 d2 d3"),
    search("s2", "u1", "A", at(10 + 10 / 60), "d4 d5"),  # followed by s3 10 minutes later
    search("s3", "u1", "A", at(10 + 20 / 60), "d6"),  # u1's last search: abandoned
    search("s4", "u2", "B", at(11), "d1 d2"),
    search("s5", None, "B", at(11 + 5 / 60), "d3"),  # no user: abandoned without a click
    search("s6", "u3", "B", at(9, days=1), "d1 d2 d3"),
    search("s7", "u2", "B", at(11 + 50 / 60), "d1"),  # 50 minutes after s4, nothing after
    search("s8", "u1", "A", at(10, days=-1), "d1", revision="r0"),  # an older revision
    LoggedSearch("x1", "u9", at(12), "boots", "r1", "A", ("d1",)),  # another experiment
]
CLICKS = [
    click("s1", "d2", at(10.01)),
    click("s1", "d1", at(10.02)),
    click("s1", "d2", at(10.03)),  # d2 again: counted once
    click("s4", "d1", at(11.01)),
    click("s5", "dX", at(11.1)),  # a hit s5 did not show
    click("s6", "d3", at(9.01, days=1), ordinal=0),  # the collector's 0-based ordinal: unused
    click("s8", "d1", at(10.01, days=-1)),  # of revision r0
    click("nope", "d1", at(12)),  # no such search: an orphan
]


@pytest.fixture
def report() -> ExperimentAnalysis:
    return analyze(EXPERIMENT, SEARCHES, CLICKS, weights={"A": 1, "B": 1})


def test_per_variant_counts_and_metrics(report: ExperimentAnalysis) -> None:
    a, b = report.variant("A"), report.variant("B")
    assert (a.searches, a.users, a.unkeyed, a.clicked, a.clicks, a.abandoned) == (3, 1, 0, 1, 2, 1)
    assert (b.searches, b.users, b.unkeyed, b.clicked, b.clicks, b.abandoned) == (4, 2, 1, 2, 2, 2)
    assert a.ctr.mean == pytest.approx(1 / 3) and b.ctr.mean == pytest.approx(2 / 4)
    assert a.ctr == wilson_interval(1, 3)
    assert a.clicks_per_search.mean == pytest.approx(2 / 3)
    assert b.clicks_per_search.mean == pytest.approx(2 / 4)
    # First clicks in time: s1's is d2 at position 2; s4's d1 at 1; s6's d3 at 3.
    assert a.mrr.mean == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert b.mrr.mean == pytest.approx((1 + 0 + 1 / 3 + 0) / 4)
    assert a.abandonment.mean == pytest.approx(1 / 3) and b.abandonment.mean == pytest.approx(2 / 4)
    for v in (a, b):
        for interval in (v.ctr, v.clicks_per_search, v.mrr, v.abandonment):
            assert interval.low <= interval.mean <= interval.high


def test_clicks_are_sorted_into_this_revision_other_revisions_orphans_and_unshown(
    report: ExperimentAnalysis,
) -> None:
    r = report
    assert r.revision == "r1"
    assert r.clicks == 6  # s1 ×3, s4, s5, s6
    assert r.unshown_clicks == 1
    assert r.other_revision_clicks == 1
    assert r.orphan_clicks == 1
    revisions = [(x.revision, x.searches, x.variants) for x in r.revisions]
    assert revisions == [("r0", 1, ("A",)), ("r1", 7, ("A", "B"))]


def test_ab_tests_against_the_control(report: ExperimentAnalysis) -> None:
    (c,) = report.comparisons
    assert (c.control, c.variant) == ("A", "B")
    expected = two_proportion_z_test(1, 3, 2, 4)
    p_a, p_b, pooled = 1 / 3, 2 / 4, 3 / 7
    z = (p_b - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / 3 + 1 / 4))
    assert c.ctr == expected and c.ctr.z == pytest.approx(z)
    # Per user: A's u1 clicked 1 of 3; B's u2 1 of 2, the search without a user 0, u3 1 of 1.
    assert c.user_ctr_difference.mean == pytest.approx((1 / 2 + 0 + 1) / 3 - 1 / 3)
    assert math.isnan(c.user_ctr.p_value)  # one user in A: no variance to test with
    assert c.needed is not None and c.needed.more > 0


def test_sample_ratio_counts_users_and_searches_without_one(report: ExperimentAnalysis) -> None:
    srm = report.srm
    assert srm.observed == {"A": 1, "B": 3}  # u1 | u2, u3 and s5
    assert srm == sample_ratio_check({"A": 1, "B": 3}, {"A": 1, "B": 1})
    assert srm.chi2 == pytest.approx(1.0)  # (1−2)²/2 + (3−2)²/2
    assert not srm.mismatch


def test_daily_series_per_utc_day(report: ExperimentAnalysis) -> None:
    points = [(p.day, p.variant, p.searches, p.clicked) for p in report.daily_ctr]
    assert points == [
        (date(2026, 12, 1), "A", 3, 1),
        (date(2026, 12, 1), "B", 3, 1),
        (date(2026, 12, 2), "B", 1, 1),
    ]


def test_a_follow_up_search_keeps_a_search_from_being_abandoned() -> None:
    base = [search("q1", "u1", "A", at(10), "d1"), search("q2", "u2", "B", at(10), "d1")]
    later = [search("q3", "u1", "A", at(10.5), "d1")]  # 30 minutes later: still a follow-up
    much_later = [search("q4", "u2", "B", at(10.51), "d1")]  # just over 30 minutes
    r = analyze(EXPERIMENT, base + later + much_later, [])
    assert r.variant("A").abandoned == 1  # q1 followed, q3 not
    assert r.variant("B").abandoned == 2  # q2 not followed in time, q4 not at all
    shorter = analyze(EXPERIMENT, base + later + much_later, [], abandon_after=timedelta(minutes=5))
    assert shorter.variant("A").abandoned == 2


def test_revisions_are_never_mixed() -> None:
    old = analyze(EXPERIMENT, SEARCHES, CLICKS, revision="r0")
    assert [(v.name, v.searches, v.clicked) for v in old.variants] == [("A", 1, 1)]
    assert old.other_revision_clicks == 6 and old.orphan_clicks == 1
    assert old.comparisons == [] and old.control is None
    with pytest.raises(AnalysisError, match=r"no revision 'r9'.*r0, r1"):
        analyze(EXPERIMENT, SEARCHES, CLICKS, revision="r9")
    with pytest.raises(AnalysisError, match="no searches"):
        analyze("sandals", SEARCHES, CLICKS)
    with pytest.raises(AnalysisError, match="control 'C'"):
        analyze(EXPERIMENT, SEARCHES, CLICKS, control="C")


def test_weights_order_the_variants_and_a_configured_variant_without_searches_counts() -> None:
    r = analyze(EXPERIMENT, SEARCHES, CLICKS, weights={"B": 1, "A": 1, "C": 1})
    assert [v.name for v in r.variants] == ["B", "A", "C"]
    assert r.control == "B" and [c.variant for c in r.comparisons] == ["A"]
    assert r.srm is not None and r.srm.observed == {"B": 3, "A": 1, "C": 0}
    assert r.variant("C").searches == 0 and math.isnan(r.variant("C").ctr.mean)


INTERLEAVED = [
    search("i1", "u1", INTERLEAVE, at(10), "d1 d2 d3", teams="A B A"),
    search("i2", "u2", INTERLEAVE, at(10), "d1 d2", teams="B A"),
    search("i3", "u3", INTERLEAVE, at(11), "d1 d2", teams="A B"),
    search("i4", "u4", INTERLEAVE, at(9, days=1), "d1 d2 d3", teams="A B B"),
    search("i5", "u5", INTERLEAVE, at(10, days=1), "d1 d2", teams="A B"),
    search("i6", "u6", INTERLEAVE, at(11, days=1), "d1 d2", teams="A"),  # teams do not line up
]
INTERLEAVED_CLICKS = [
    click("i1", "d2", at(10.1)),  # B's hit: B wins
    click("i2", "d1", at(10.1)),  # one each: a tie
    click("i2", "d2", at(10.2)),
    # i3: no click, a tie
    click("i4", "d2", at(9.1, days=1)),  # two of B's: B wins
    click("i4", "d3", at(9.2, days=1)),
    click("i5", "d1", at(10.1, days=1)),  # A's: A wins
    click("i6", "d1", at(11.1, days=1)),
]


def test_interleaving_credits_each_impression_to_a_team() -> None:
    r = analyze(EXPERIMENT, INTERLEAVED, INTERLEAVED_CLICKS, control="A")
    inter = r.interleaving
    assert inter is not None and inter.teams == ("A", "B")
    assert (inter.impressions, inter.wins, inter.losses, inter.ties) == (5, 2, 1, 2)
    assert (inter.unclicked, inter.skipped) == (1, 1)
    assert inter.sign == sign_test(2, 1)
    assert inter.sign.p_value == pytest.approx(2 * (math.comb(3, 2) + 1) / 8)  # = 1
    assert inter.win_rate == wilson_interval(2, 3)
    assert inter.winner is None
    assert inter.lead.observed == {"A": 4, "B": 1}  # the team of each first hit
    assert inter.lead.chi2 == pytest.approx(2 * 1.5**2 / 2.5)
    days = [(d.day, d.wins, d.losses, d.ties) for d in r.daily_wins]
    assert days == [(date(2026, 12, 1), 1, 0, 2), (date(2026, 12, 2), 1, 1, 0)]
    assert r.srm is None and r.comparisons == []
    (v,) = r.variants
    assert (v.name, v.searches, v.clicked) == (INTERLEAVE, 6, 5)


def test_the_challenger_is_the_team_that_is_not_the_control() -> None:
    r = analyze(EXPERIMENT, INTERLEAVED, INTERLEAVED_CLICKS, control="B")
    assert r.interleaving is not None and r.interleaving.teams == ("B", "A")
    assert (r.interleaving.wins, r.interleaving.losses) == (1, 2)


def test_a_clear_interleaving_winner_is_named() -> None:
    searches = [
        search(f"q{i}", f"u{i}", INTERLEAVE, at(10 + i / 100), "d1 d2", teams="A B")
        for i in range(12)
    ]
    clicks = [click(f"q{i}", "d2", at(10.5)) for i in range(12)]  # always B's hit
    r = analyze(EXPERIMENT, searches, clicks, control="A")
    assert r.interleaving is not None
    assert r.interleaving.sign.p_value == pytest.approx(2 / 2**12)
    assert r.interleaving.winner == "B"
    assert any(line.startswith("B wins the interleaving against A") for line in verdicts(r))
    # Every first hit was A's: the interleaver itself looks broken.
    assert r.interleaving.lead.mismatch
    assert verdicts(r)[0].startswith("Interleaving imbalance")


def test_a_sample_ratio_mismatch_comes_first_in_the_verdicts() -> None:
    searches = [search(f"q{i}", f"u{i}", "A" if i % 10 else "B", at(10), "d1") for i in range(200)]
    r = analyze(EXPERIMENT, searches, [], weights={"A": 1, "B": 1})
    assert r.srm is not None and r.srm.mismatch
    assert verdicts(r)[0].startswith("Sample ratio mismatch")


def test_report_json_is_plain_json_with_the_numbers(report: ExperimentAnalysis) -> None:
    data = report_json(report)
    text = json.dumps(data, allow_nan=False)  # NaN became null
    back = json.loads(text)
    assert back["experiment"] == EXPERIMENT and back["revision"] == "r1"
    b = next(v for v in back["variants"] if v["name"] == "B")
    assert b["searches"] == 4 and b["ctr"]["mean"] == pytest.approx(0.5)
    assert back["comparisons"][0]["user_ctr"]["p_value"] is None
    assert back["comparisons"][0]["significant"] is False
    assert back["srm"]["mismatch"] is False and back["orphan_clicks"] == 1
    assert back["abandon_after_s"] == 1800
    assert back["daily_ctr"][0]["day"] == "2026-12-01"
    assert back["verdicts"] == verdicts(report)
