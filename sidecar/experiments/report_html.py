"""The experiment report as one self-contained HTML page, in the eval report's look: the
warnings and the verdict first, then the per-variant table, the tests, the plots, the revisions
and the definitions."""

from __future__ import annotations

from sidecar.evaluation.html_format import escape as _e
from sidecar.evaluation.html_format import number as _num
from sidecar.evaluation.html_format import p_value as _p
from sidecar.evaluation.report_html import CSS as EVAL_CSS
from sidecar.evaluation.statistics import Interval
from sidecar.experiments.analysis import ExperimentAnalysis, findings
from sidecar.experiments.report_plots import colors, daily_ctr, daily_win_rate, variant_bars
from sidecar.experiments.statistics import SRM_ALPHA

CSS = (
    EVAL_CSS
    + """
.alarm { background:#c2412d; color:#fff; border-radius:12px; padding:16px 20px; margin:18px 0;
         font-size:17px; font-weight:650; box-shadow:0 0 0 4px #f6d4cc; }
.alarm small { display:block; font-weight:400; font-size:14px; margin-top:4px; }
.verdicts { margin:18px 0 0; padding:0; list-style:none; }
.verdicts li { background:var(--card); border:1px solid var(--line); border-radius:12px;
               padding:12px 16px; margin-bottom:10px; }
"""
)


def _ci(interval: Interval, signed: bool = False) -> str:
    return (
        f"{_num(interval.mean, signed=signed)} <span class='meta'>"
        f"[{_num(interval.low, signed=signed)}, {_num(interval.high, signed=signed)}]</span>"
    )


def _alarms(analysis: ExperimentAnalysis) -> str:
    out = []
    srm = analysis.srm
    if srm is not None and srm.mismatch:
        split = ", ".join(
            f"{_e(n)} {c:,} (expected {srm.expected[n]:,.0f})" for n, c in srm.observed.items()
        )
        out.append(
            "<div class='alarm' role='alert'>⚠ Sample ratio mismatch: the traffic split is not "
            "the configured one, so these results cannot be trusted."
            f"<small>Users per variant: {split}. Chi-square p {_p(srm.p_value)} "
            f"(flagged below {SRM_ALPHA}). Look for a broken assignment, a variant that fails "
            "or drops searches, or logging lost for one variant.</small></div>"
        )
    inter = analysis.interleaving
    if inter is not None and inter.lead.mismatch:
        leads = ", ".join(f"{_e(n)} {c:,}" for n, c in inter.lead.observed.items())
        out.append(
            "<div class='alarm' role='alert'>⚠ Interleaving imbalance: one team placed the first "
            f"hit far more often than the other.<small>First hits: {leads}. p "
            f"{_p(inter.lead.p_value)}.</small></div>"
        )
    return "".join(out)


def _variants(analysis: ExperimentAnalysis) -> str:
    palette = colors(analysis)
    rows = []
    for v in analysis.variants:
        swatch = f"<span class='swatch' style='background:{palette.get(v.name, '#999')}'></span>"
        control = " <span class='pill'>control</span>" if v.name == analysis.control else ""
        rows.append(
            f"<tr><td>{swatch}{_e(v.name)}{control}</td><td>{v.searches:,}</td>"
            f"<td>{v.users:,}</td><td>{v.unkeyed:,}</td><td>{_ci(v.ctr)}</td>"
            f"<td>{_ci(v.clicks_per_search)}</td><td>{_ci(v.mrr)}</td>"
            f"<td>{_ci(v.abandonment)}</td></tr>"
        )
    head = (
        "<tr><th>variant</th><th>searches</th><th>users</th><th>without a user</th>"
        "<th>CTR [95% CI]</th><th>clicks per search</th><th>MRR of the first click</th>"
        "<th>abandonment</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _comparisons(analysis: ExperimentAnalysis) -> str:
    if not analysis.comparisons:
        return ""
    rows = []
    for c in analysis.comparisons:
        tone = "flat" if not c.significant else "good" if c.ctr.difference > 0 else "bad"
        needed = "n/a" if c.needed is None else f"{c.needed.required:,} ({c.needed.more:,} more)"
        rows.append(
            f"<tr><td>{_e(c.variant)} vs {_e(c.control)}</td>"
            f"<td class='{tone}'>{_num(c.ctr.difference, signed=True)}</td>"
            f"<td>{_num(c.ctr.z, 2, signed=True)}</td><td>{_p(c.ctr.p_value)}</td>"
            f"<td>{_ci(c.user_ctr_difference, signed=True)}</td>"
            f"<td>{_num(c.user_ctr.t, 2, signed=True)}</td><td>{_p(c.user_ctr.p_value)}</td>"
            f"<td>{needed}</td></tr>"
        )
    head = (
        "<tr><th>comparison</th><th>Δ CTR</th><th>z</th><th>p (z-test)</th>"
        "<th>Δ per-user CTR [bootstrap 95% CI]</th><th>Welch t</th><th>p (Welch)</th>"
        "<th>searches per variant for 80% power</th></tr>"
    )
    return f"<h2>A/B tests against {_e(analysis.control)}</h2><table>{head}{''.join(rows)}</table>"


def _interleaving(analysis: ExperimentAnalysis) -> str:
    inter = analysis.interleaving
    if inter is None:
        return ""
    control, challenger = inter.teams
    needed = (
        "n/a" if inter.needed is None else f"{inter.needed.required:,} ({inter.needed.more:,} more)"
    )
    winner = _e(inter.winner) if inter.winner else "none (not significant)"
    head = (
        "<tr><th>impressions</th><th>" + _e(challenger) + " won</th><th>" + _e(control)
        + " won</th><th>tied</th><th>of which no click</th><th>win rate of " + _e(challenger)
        + " [95% CI]</th><th>p (sign test)</th><th>winner</th>"
        "<th>impressions for 80% power</th></tr>"
    )  # fmt: skip
    row = (
        f"<tr><td>{inter.impressions:,}</td><td>{inter.wins:,}</td><td>{inter.losses:,}</td>"
        f"<td>{inter.ties:,}</td><td>{inter.unclicked:,}</td><td>{_ci(inter.win_rate)}</td>"
        f"<td>{_p(inter.sign.p_value)}</td><td>{winner}</td><td>{needed}</td></tr>"
    )
    skipped = (
        f"<p class='meta'>{inter.skipped:,} interleaved searches were left out: their teams "
        "do not line up with their hits.</p>"
        if inter.skipped
        else ""
    )
    return f"<h2>Interleaving</h2><table>{head}{row}</table>{_lead(analysis)}{skipped}"


def _lead(analysis: ExperimentAnalysis) -> str:
    inter = analysis.interleaving
    if inter is None:
        return ""
    leads = ", ".join(f"{_e(n)} {c:,}" for n, c in inter.lead.observed.items())
    tone, word = ("bad", "imbalanced") if inter.lead.mismatch else ("good", "balanced")
    return (
        f"<p class='meta'>First hit placed by: {leads}; chi-square against 50/50 p "
        f"{_p(inter.lead.p_value)}: <span class='{tone}'>{word}</span>.</p>"
    )


def _srm(analysis: ExperimentAnalysis) -> str:
    srm = analysis.srm
    if srm is None and not analysis.comparisons:
        return ""  # an interleaving: its balance is checked under _lead
    if srm is None:
        return (
            "<p class='meta'>Sample ratio: not checked (no weights: configure the experiment "
            "or pass --weights).</p>"
        )
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{c:,}</td><td>{srm.expected[n]:,.1f}</td></tr>"
        for n, c in srm.observed.items()
    )
    tone = "bad" if srm.mismatch else "good"
    word = "mismatch" if srm.mismatch else "as configured"
    return (
        f"<h2>Sample ratio</h2><table><tr><th>variant</th><th>users</th><th>expected</th></tr>"
        f"{rows}</table><p class='meta'>Chi-square {_num(srm.chi2, 2)}, p {_p(srm.p_value)}: "
        f"<span class='{tone}'>{word}</span> (flagged below {SRM_ALPHA}).</p>"
    )


def _revisions(analysis: ExperimentAnalysis) -> str:
    rows = []
    for r in analysis.revisions:
        mine = " <span class='pill'>this report</span>" if r.revision == analysis.revision else ""
        rows.append(
            f"<tr><td>{_e(r.revision)}{mine}</td><td>{r.searches:,}</td>"
            f"<td>{_e(r.first.strftime('%Y-%m-%d %H:%M'))}</td>"
            f"<td>{_e(r.last.strftime('%Y-%m-%d %H:%M'))}</td>"
            f"<td>{_e(', '.join(r.variants))}</td></tr>"
        )
    head = (
        "<tr><th>revision</th><th>searches</th><th>first (UTC)</th><th>last</th>"
        "<th>variants</th></tr>"
    )
    return f"<h2>Revisions</h2><table>{head}{''.join(rows)}</table>"


def render_html(analysis: ExperimentAnalysis) -> str:
    plots = [f"<figure><img alt='daily CTR per variant' src='{daily_ctr(analysis)}'></figure>"]
    if analysis.interleaving is not None and analysis.daily_wins:
        plots.append(
            "<figure><img alt='interleaving win rate per day' "
            f"src='{daily_win_rate(analysis)}'></figure>"
        )
    plots.append(f"<figure><img alt='metrics per variant' src='{variant_bars(analysis)}'></figure>")
    items = "".join(f"<li>{_e(line)}</li>" for line in findings(analysis))  # the alarms are banners
    title = f"Experiment · {_e(analysis.experiment)}"
    stray = (
        f"{analysis.clicks:,} clicks · {analysis.unshown_clicks:,} on hits not shown · "
        f"{analysis.orphan_clicks:,} orphans · "
        f"{analysis.other_revision_clicks:,} of other revisions"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{title}</h1>"
        f"<div class='meta'>revision {_e(analysis.revision)} · "
        f"{_e(analysis.first.strftime('%Y-%m-%d %H:%M'))} to "
        f"{_e(analysis.last.strftime('%Y-%m-%d %H:%M'))} UTC · {stray}</div>"
        f"{_alarms(analysis)}<ul class='verdicts'>{items}</ul>"
        "<h2>Variants</h2>"
        f"{_variants(analysis)}{_comparisons(analysis)}{_interleaving(analysis)}{_srm(analysis)}"
        "<h2>Plots</h2>" + "<br>".join(plots) + _revisions(analysis)
        + "<p class='meta'>CTR: searches with a click on a shown hit. Clicks per search: "
        "distinct hits clicked. MRR: 1 / position of the first click in time (0 without one). "
        f"Abandonment: no click and no further search by the user within "
        f"{analysis.abandon_after.total_seconds() / 60:.0f} minutes. Intervals: Wilson for "
        "shares, percentile bootstrap (10,000 resamples) for means. A/B: pooled two-proportion "
        "z-test on CTR; Welch's t-test and a user-level bootstrap on per-user CTR. "
        "Interleaving: team draft, an impression won by the team with more clicked hits, a "
        "two-sided sign test with ties left out. Power: 80% at alpha 0.05.</p>"
        "</main></body></html>"
    )  # fmt: skip
