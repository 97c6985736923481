"""What an experiment's logs say: per variant the searches, users and click metrics with 95%
intervals, the A/B tests against the control, the interleaving's wins and losses, the sample
ratio check, daily series for the plots, and how many more searches a verdict needs.

One revision at a time: the searches of other revisions are left out (and listed), and so are
their clicks; ``revision=None`` takes the newest (the one whose first search is latest).

Definitions, per search (a ``ubi_queries`` document) and its clicks (``ubi_events`` with its
``query_id``):

- A click counts when it names a hit the search showed; its position is that hit's place in
  ``hit_ids`` (1-based), never the collector's ordinal. A hit clicked twice counts once.
- CTR: the share of searches with at least one counted click (Wilson interval).
- Clicks per search: counted clicks (distinct hits) per search (bootstrap interval).
- MRR of the first click: 1 / position of the search's first click in time, 0 without a click
  (bootstrap interval).
- Abandonment: the share of searches with no counted click and no further search by the same
  user (``client_id``) of this experiment within ``abandon_after`` (30 minutes, the usual session
  timeout). A search without a user cannot be followed: it is abandoned when it has no click.
  The last searches of the logs may still be followed after the read; read a closed period.
- Users: distinct ``client_id``. The unit of the per-user tests and of the sample ratio check is
  the user; a search without a user (assigned per request) is a unit of its own.
- The per-variant intervals treat searches as independent; the per-user tests (Welch's t and the
  user-level bootstrap of the per-user CTR) are the ones that account for users who search often.
- Interleaving: per impression the team with more clicked hits wins (``credit``); ties (equal
  counts, none at all included) are left out of the sign test. ``lead`` checks the interleaver:
  each team should place the first hit of half the impressions.
- Orphans: clicks whose query id is no search of this experiment (any revision).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sidecar.evaluation.statistics import Interval
from sidecar.experiments.interleaving import credit
from sidecar.experiments.records import INTERLEAVE, LoggedClick, LoggedSearch
from sidecar.experiments.statistics import (
    ALPHA,
    RatioCheck,
    SampleSize,
    SignTest,
    WelchTest,
    ZTest,
    bootstrap_difference,
    impressions_needed,
    mean_interval,
    sample_ratio_check,
    searches_needed,
    sign_test,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
)

ABANDON_AFTER = timedelta(minutes=30)
NO_TEAM = "(none)"


class AnalysisError(ValueError):
    """The logs cannot be analysed as asked (no searches, an unknown revision...)."""


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    searches: int
    first: datetime
    last: datetime
    variants: tuple[str, ...]


@dataclass(frozen=True)
class VariantStats:
    name: str
    searches: int
    users: int  # distinct client_id
    unkeyed: int  # searches without a user, assigned per request
    clicked: int  # searches with a counted click
    clicks: int  # counted clicks (distinct hits)
    abandoned: int
    ctr: Interval
    clicks_per_search: Interval
    mrr: Interval
    abandonment: Interval


@dataclass(frozen=True)
class Comparison:
    """A variant against the control: CTR over searches, and per-user CTR."""

    control: str
    variant: str
    ctr: ZTest
    user_ctr: WelchTest
    user_ctr_difference: Interval  # user-level bootstrap of mean(variant) − mean(control)
    needed: SampleSize | None

    @property
    def significant(self) -> bool:
        """The z-test on CTR found a difference (the per-user tests may still disagree)."""
        return self.ctr.p_value < ALPHA


@dataclass(frozen=True)
class Interleaving:
    teams: tuple[str, str]  # (the control, the challenger)
    impressions: int
    wins: int  # impressions the challenger (teams[1]) won
    losses: int  # impressions the control (teams[0]) won
    ties: int  # equal clicks, no click at all included
    unclicked: int  # of the ties, those without a click
    sign: SignTest
    win_rate: Interval  # the challenger's share of the decided impressions
    lead: RatioCheck  # the team that placed the first hit, against 50/50
    needed: SampleSize | None
    skipped: int  # searches whose teams do not line up with their hits

    @property
    def winner(self) -> str | None:
        if self.sign.p_value >= ALPHA or self.wins == self.losses:
            return None
        return self.teams[1] if self.wins > self.losses else self.teams[0]


@dataclass(frozen=True)
class DailyCtr:
    day: date
    variant: str
    searches: int
    clicked: int
    ctr: Interval


@dataclass(frozen=True)
class DailyWins:
    day: date
    wins: int
    losses: int
    ties: int
    win_rate: Interval


@dataclass(frozen=True)
class ExperimentAnalysis:
    experiment: str
    revision: str
    revisions: list[RevisionInfo]
    first: datetime
    last: datetime
    control: str | None  # of the A/B variants; None without two of them
    weights: dict[str, float] | None
    abandon_after: timedelta
    variants: list[VariantStats]
    comparisons: list[Comparison]
    srm: RatioCheck | None  # None without weights or without two A/B variants
    interleaving: Interleaving | None
    daily_ctr: list[DailyCtr]
    daily_wins: list[DailyWins]
    clicks: int  # clicks of this revision's searches
    orphan_clicks: int
    unshown_clicks: int  # clicks on a hit the search did not show
    other_revision_clicks: int

    def variant(self, name: str) -> VariantStats:
        return next(v for v in self.variants if v.name == name)


@dataclass(frozen=True)
class _Outcome:
    search: LoggedSearch
    positions: tuple[int, ...]  # 0-based shown positions clicked, first click first
    abandoned: bool

    @property
    def clicked(self) -> bool:
        return bool(self.positions)

    @property
    def reciprocal_rank(self) -> float:
        return 1 / (self.positions[0] + 1) if self.positions else 0.0

    @property
    def unit(self) -> str:
        s = self.search
        return f"user:{s.client_id}" if s.client_id is not None else f"search:{s.query_id}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _revisions(searches: Sequence[LoggedSearch]) -> list[RevisionInfo]:
    grouped: dict[str, list[LoggedSearch]] = defaultdict(list)
    for s in searches:
        grouped[s.revision].append(s)
    infos = [
        RevisionInfo(
            revision,
            len(group),
            min(_utc(s.timestamp) for s in group),
            max(_utc(s.timestamp) for s in group),
            tuple(sorted({s.variant for s in group})),
        )
        for revision, group in grouped.items()
    ]
    return sorted(infos, key=lambda r: (r.first, r.revision))


def _followed(searches: Sequence[LoggedSearch]) -> dict[str, list[datetime]]:
    times: dict[str, list[datetime]] = defaultdict(list)
    for s in searches:
        if s.client_id is not None:
            times[s.client_id].append(_utc(s.timestamp))
    for moments in times.values():
        moments.sort()
    return times


def _outcomes(
    searches: Sequence[LoggedSearch],
    clicks_by_query: Mapping[str, list[LoggedClick]],
    follow_ups: Mapping[str, list[datetime]],
    abandon_after: timedelta,
) -> tuple[list[_Outcome], int]:
    outcomes, unshown = [], 0
    for s in searches:
        place: dict[str, int] = {}
        for i, hit in enumerate(s.hit_ids):
            place.setdefault(hit, i)
        positions: list[int] = []
        for click in sorted(
            clicks_by_query.get(s.query_id, ()),
            key=lambda c: (_utc(c.timestamp), place.get(c.object_id, -1)),
        ):
            position = place.get(click.object_id)
            if position is None:
                unshown += 1
            elif position not in positions:
                positions.append(position)
        abandoned = False
        if not positions:
            moment = _utc(s.timestamp)
            later = follow_ups.get(s.client_id, []) if s.client_id is not None else []
            after = bisect.bisect_right(later, moment)
            abandoned = after == len(later) or later[after] - moment > abandon_after
        outcomes.append(_Outcome(s, tuple(positions), abandoned))
    return outcomes, unshown


def _variant_stats(name: str, outcomes: Sequence[_Outcome]) -> VariantStats:
    n = len(outcomes)
    clicked = sum(o.clicked for o in outcomes)
    abandoned = sum(o.abandoned for o in outcomes)
    return VariantStats(
        name=name,
        searches=n,
        users=len({o.search.client_id for o in outcomes if o.search.client_id is not None}),
        unkeyed=sum(o.search.client_id is None for o in outcomes),
        clicked=clicked,
        clicks=sum(len(o.positions) for o in outcomes),
        abandoned=abandoned,
        ctr=wilson_interval(clicked, n),
        clicks_per_search=mean_interval([float(len(o.positions)) for o in outcomes]),
        mrr=mean_interval([o.reciprocal_rank for o in outcomes]),
        abandonment=wilson_interval(abandoned, n),
    )


def _per_user_ctr(outcomes: Sequence[_Outcome]) -> list[float]:
    searches: Counter[str] = Counter()
    clicked: Counter[str] = Counter()
    for o in outcomes:
        searches[o.unit] += 1
        clicked[o.unit] += o.clicked
    return [clicked[u] / searches[u] for u in searches]


def _compare(
    control: str, variant: str, by_variant: Mapping[str, Sequence[_Outcome]]
) -> Comparison:
    a, b = by_variant[control], by_variant[variant]
    clicked_a, clicked_b = sum(o.clicked for o in a), sum(o.clicked for o in b)
    users_a, users_b = _per_user_ctr(a), _per_user_ctr(b)
    needed = (
        searches_needed(clicked_a / len(a), clicked_b / len(b), len(a), len(b)) if a and b else None
    )
    return Comparison(
        control,
        variant,
        two_proportion_z_test(clicked_a, len(a), clicked_b, len(b)),
        welch_t_test(users_a, users_b),
        bootstrap_difference(users_a, users_b),
        needed,
    )


def _team_order(outcomes: Sequence[_Outcome], preferred: Sequence[str]) -> tuple[str, str]:
    names = {t for o in outcomes for t in (o.search.teams or ())}
    if len(names) > 2:
        raise AnalysisError(
            f"one revision interleaves two variants, these logs name {sorted(names)}"
        )
    ordered = [n for n in preferred if n in names] + sorted(names - set(preferred))
    ordered += [NO_TEAM] * (2 - len(ordered))
    return ordered[0], ordered[1]


def _interleaving(
    outcomes: Sequence[_Outcome], preferred: Sequence[str]
) -> tuple[Interleaving, list[DailyWins]]:
    teams = _team_order(outcomes, preferred)
    wins = losses = ties = unclicked = skipped = 0
    leads: Counter[str] = Counter()
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for o in outcomes:
        shown = o.search.teams
        if shown is None or len(shown) != len(o.search.hit_ids):
            skipped += 1
            continue
        if shown:
            leads[shown[0]] += 1
        winner = credit(shown, o.positions)
        day = per_day[_utc(o.search.timestamp).date()]
        if winner == teams[1]:
            wins, day[0] = wins + 1, day[0] + 1
        elif winner == teams[0]:
            losses, day[1] = losses + 1, day[1] + 1
        else:
            ties, day[2] = ties + 1, day[2] + 1
            unclicked += not o.positions
    daily = [
        DailyWins(d, w, lo, t, wilson_interval(w, w + lo))
        for d, (w, lo, t) in sorted(per_day.items())
    ]
    summary = Interleaving(
        teams=teams,
        impressions=wins + losses + ties,
        wins=wins,
        losses=losses,
        ties=ties,
        unclicked=unclicked,
        sign=sign_test(wins, losses),
        win_rate=wilson_interval(wins, wins + losses),
        lead=sample_ratio_check(leads, {teams[0]: 1.0, teams[1]: 1.0}),
        needed=impressions_needed(wins, losses, ties),
        skipped=skipped,
    )
    return summary, daily


def _daily_ctr(by_variant: Mapping[str, Sequence[_Outcome]]) -> list[DailyCtr]:
    out = []
    for name, outcomes in by_variant.items():
        per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
        for o in outcomes:
            counts = per_day[_utc(o.search.timestamp).date()]
            counts[0] += 1
            counts[1] += o.clicked
        out += [
            DailyCtr(d, name, n, c, wilson_interval(c, n)) for d, (n, c) in sorted(per_day.items())
        ]
    return out


def analyze(
    experiment: str,
    searches: Iterable[LoggedSearch],
    clicks: Iterable[LoggedClick],
    *,
    revision: str | None = None,
    weights: Mapping[str, float] | None = None,
    control: str | None = None,
    abandon_after: timedelta = ABANDON_AFTER,
) -> ExperimentAnalysis:
    """The analysis of one revision of ``experiment`` (default: the newest) from its logged
    searches and clicks; searches of other experiments are ignored. ``weights`` (variant →
    weight) drives the sample ratio check and the variants' order; ``control`` is what the
    others are compared with (default: the first weighted variant, else the first by name)."""
    everything = [s for s in searches if s.experiment == experiment]
    if not everything:
        raise AnalysisError(f"no searches of experiment {experiment!r}")
    revisions = _revisions(everything)
    if revision is None:
        revision = max(revisions, key=lambda r: (r.first, r.revision)).revision
    elif revision not in {r.revision for r in revisions}:
        raise AnalysisError(
            f"experiment {experiment!r} has no revision {revision!r} "
            f"(it has {', '.join(r.revision for r in revisions)})"
        )
    mine = sorted(
        (s for s in everything if s.revision == revision), key=lambda s: _utc(s.timestamp)
    )
    mine_ids = {s.query_id for s in mine}
    all_ids = {s.query_id for s in everything}
    clicks_by_query: dict[str, list[LoggedClick]] = defaultdict(list)
    orphans = others = 0
    for click in clicks:
        if click.query_id in mine_ids:
            clicks_by_query[click.query_id].append(click)
        elif click.query_id in all_ids:
            others += 1
        else:
            orphans += 1
    outcomes, unshown = _outcomes(mine, clicks_by_query, _followed(everything), abandon_after)

    weighted = list(weights or {})
    names = list(dict.fromkeys(s.variant for s in mine))
    ab_names = [n for n in weighted if n != INTERLEAVE] + sorted(
        n for n in names if n not in weighted and n != INTERLEAVE
    )
    by_variant: dict[str, list[_Outcome]] = {n: [] for n in ab_names}
    if INTERLEAVE in names:
        by_variant[INTERLEAVE] = []
    for o in outcomes:
        by_variant[o.search.variant].append(o)
    ab_seen = [n for n in ab_names if by_variant[n]]
    team_names = sorted({t for s in mine for t in (s.teams or ())})
    if control is not None and control not in ab_names + team_names:
        raise AnalysisError(
            f"control {control!r} is no variant of this revision ({ab_names + team_names})"
        )
    chosen = control if control in ab_names else (ab_seen[0] if ab_seen else None)
    comparisons = [
        _compare(chosen, n, by_variant) for n in ab_seen if chosen is not None and n != chosen
    ]
    srm = None
    if weights and len(ab_names) >= 2:
        units = {n: len({o.unit for o in by_variant[n]}) for n in ab_names}
        srm = sample_ratio_check(units, weights)
    interleaving: Interleaving | None = None
    daily_wins: list[DailyWins] = []
    if by_variant.get(INTERLEAVE):
        preferred = [n for n in (control, *weighted) if n]
        interleaving, daily_wins = _interleaving(by_variant[INTERLEAVE], preferred)
    return ExperimentAnalysis(
        experiment=experiment,
        revision=revision,
        revisions=revisions,
        first=_utc(mine[0].timestamp),
        last=_utc(mine[-1].timestamp),
        control=chosen if len(ab_seen) >= 2 or control in ab_names else None,
        weights=dict(weights) if weights else None,
        abandon_after=abandon_after,
        variants=[_variant_stats(n, os) for n, os in by_variant.items()],
        comparisons=comparisons,
        srm=srm,
        interleaving=interleaving,
        daily_ctr=_daily_ctr(by_variant),
        daily_wins=daily_wins,
        clicks=sum(len(c) for c in clicks_by_query.values()),
        orphan_clicks=orphans,
        unshown_clicks=unshown,
        other_revision_clicks=others,
    )


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _needed(needed: SampleSize | None, unit: str) -> str:
    if needed is None:
        return f"no difference was observed, so no number of {unit} would show one."
    if needed.more == 0:
        return f"there are already enough {unit} to find a difference this size at 80% power."
    return (
        f"about {needed.more:,} more {unit} would find a difference this size at 80% power "
        f"(alpha 0.05)."
    )


def alarms(analysis: ExperimentAnalysis) -> list[str]:
    """What makes the results untrustworthy, in plain words."""
    out = []
    srm = analysis.srm
    if srm is not None and srm.mismatch:
        out.append(
            "Sample ratio mismatch: the variants got "
            + ", ".join(f"{n} {c:,}" for n, c in srm.observed.items())
            + " users where the weights expect "
            + ", ".join(f"{n} {e:,.0f}" for n, e in srm.expected.items())
            + f" (chi-square {_p(srm.p_value)}). The split is broken, so the comparisons "
            "below cannot be trusted."
        )
    inter = analysis.interleaving
    if inter is not None and inter.lead.mismatch:
        out.append(
            "Interleaving imbalance: one team placed the first hit far more often than the "
            f"other ({_p(inter.lead.p_value)}); the interleaver or its logging is broken."
        )
    return out


def findings(analysis: ExperimentAnalysis) -> list[str]:
    """Which variant won and how sure we are, in plain words."""
    out = []
    inter = analysis.interleaving
    for c in analysis.comparisons:
        a, b = analysis.variant(c.control), analysis.variant(c.variant)
        rates = f"CTR {b.ctr.mean:.1%} against {a.ctr.mean:.1%}"
        if c.significant:
            word = "beats" if c.ctr.difference > 0 else "loses to"
            line = f"{c.variant} {word} {c.control}: {rates} (z-test {_p(c.ctr.p_value)})"
            if c.user_ctr.p_value >= ALPHA:  # NaN (too few users) is no contradiction
                line += (
                    f", but not per user (Welch {_p(c.user_ctr.p_value)}): a few users who "
                    "search a lot may drive it; wait for more users"
                )
            out.append(line + ".")
        else:
            out.append(
                f"No significant difference between {c.variant} and {c.control}: {rates} "
                f"(z-test {_p(c.ctr.p_value)}); " + _needed(c.needed, "searches per variant")
            )
    if inter is not None:
        challenger, control = inter.teams[1], inter.teams[0]
        record = f"{inter.wins:,} won, {inter.losses:,} lost, {inter.ties:,} tied"
        if inter.winner is not None:
            loser = control if inter.winner == challenger else challenger
            out.append(
                f"{inter.winner} wins the interleaving against {loser}: {challenger} {record} "
                f"(sign test {_p(inter.sign.p_value)})."
            )
        else:
            out.append(
                f"No significant winner in the interleaving of {challenger} and {control}: "
                f"{challenger} {record} (sign test {_p(inter.sign.p_value)}); "
                + _needed(inter.needed, "impressions")
            )
    if not analysis.comparisons and inter is None:
        out.append("Only one variant has searches: nothing to compare yet.")
    return out


def verdicts(analysis: ExperimentAnalysis) -> list[str]:
    """The warnings, then the findings."""
    return alarms(analysis) + findings(analysis)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def report_json(analysis: ExperimentAnalysis) -> dict[str, Any]:
    """The analysis as JSON-able data: non-finite numbers become null, times ISO 8601."""
    data: dict[str, Any] = _jsonable(dataclasses.asdict(analysis))
    data["abandon_after_s"] = data.pop("abandon_after")
    data["verdicts"] = verdicts(analysis)
    for comparison, out in zip(analysis.comparisons, data["comparisons"], strict=True):
        out["significant"] = comparison.significant
    if analysis.srm is not None:
        data["srm"]["mismatch"] = analysis.srm.mismatch
    if analysis.interleaving is not None:
        data["interleaving"]["winner"] = analysis.interleaving.winner
        data["interleaving"]["lead"]["mismatch"] = analysis.interleaving.lead.mismatch
    return data
