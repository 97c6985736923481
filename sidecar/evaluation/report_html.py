"""The eval run as one self-contained HTML page: the verdict first (which variant moved which
metric, and how sure we are), then the plots, then the queries that gained and lost most with
their top hits side by side (images shown where documents have them)."""

from __future__ import annotations

import base64
import math
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar.evaluation.html_format import escape as _e
from sidecar.evaluation.html_format import number as _num
from sidecar.evaluation.html_format import p_value as _p
from sidecar.evaluation.metric_names import MetricName
from sidecar.evaluation.report import EvalReport, Mover, Summary
from sidecar.evaluation.report_plots import colors, metric_bars, per_query_scatter
from sidecar.evaluation.runner import RankedHit, Variant

Display = Mapping[tuple[str, str], Mapping[str, Any]]
MAX_INLINE_IMAGE_BYTES = 2 * 1024 * 1024
SIGNIFICANT = 0.05
HITS_SHOWN = 5

CSS = """
:root { --ink:#1d2433; --muted:#6b7385; --line:#e3e6ee; --good:#1f8a5b; --bad:#c2412d;
        --card:#ffffff; --bg:#f5f6fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:28px 24px 60px; }
h1 { font-size:26px; margin:0 0 4px; } h2 { font-size:19px; margin:34px 0 12px; }
h3 { font-size:15px; margin:0 0 8px; }
.meta { color:var(--muted); font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(250px,1fr)); gap:14px;
         margin-top:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
        padding:14px 16px; }
.card .delta { font-size:28px; font-weight:650; }
.good { color:var(--good); } .bad { color:var(--bad); } .flat { color:var(--muted); }
.pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px;
        background:#eef1f7; color:var(--muted); margin-right:4px; }
table { border-collapse:collapse; width:100%; background:var(--card); border-radius:10px;
        overflow:hidden; border:1px solid var(--line); }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:right; font-size:14px; }
th { background:#f0f2f7; font-weight:600; } td:first-child, th:first-child { text-align:left; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:12px;
         padding:10px; } figure img { max-width:100%; display:block; margin:auto; }
.query { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:14px;
         margin-bottom:14px; }
.sides { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
.hit { display:flex; align-items:center; gap:10px; padding:5px 0;
       border-top:1px solid var(--line); }
.hit img { width:44px; height:44px; object-fit:cover; border-radius:6px;
           border:1px solid var(--line); }
.hit .rank { width:18px; color:var(--muted); font-size:13px; }
.hit .title { flex:1; }
.rating { font-size:12px; padding:1px 7px; border-radius:6px; background:#eef1f7; }
.r0 { background:#f6e3df; } .r1 { background:#fbf0d5; } .r2 { background:#dff2e7; }
.r3, .r4, .r5 { background:#c6ead5; } .unrated { background:#eceef3; color:var(--muted); }
.swatch { display:inline-block; width:10px; height:10px; border-radius:3px; margin-right:6px; }
"""


def _tone(summary: Summary) -> str:
    c = summary.comparison
    if c is None or not math.isfinite(c.delta.mean):
        return "flat"
    if c.p_value < SIGNIFICANT and c.delta.low > 0:
        return "good"
    if c.p_value < SIGNIFICANT and c.delta.high < 0:
        return "bad"
    return "flat"


def _verdict(summary: Summary) -> str:
    tone = _tone(summary)
    if tone == "good":
        return "better, significant"
    if tone == "bad":
        return "worse, significant"
    return "no significant difference"


def image_src(value: Any) -> str | None:
    """A document's image as the page can show it: a web URL as is, a local file inlined."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(("http://", "https://", "data:image/")):
        return value
    path = Path(value)
    try:
        if not path.is_file() or path.stat().st_size > MAX_INLINE_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    if not kind.startswith("image/"):
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _cards(report: EvalReport) -> str:
    palette = colors(report)
    out = []
    for variant in report.challengers:
        for metric in report.metrics:
            s = report.summary(variant, metric)
            c = s.comparison
            assert c is not None
            out.append(
                f'<div class="card"><h3><span class="swatch" style="background:'
                f'{palette[variant.name]}"></span>{_e(variant.name)} · {_e(metric.label)}</h3>'
                f'<div class="delta {_tone(s)}">{_num(c.delta.mean, signed=True)}</div>'
                f'<div class="meta">95% CI [{_num(c.delta.low, signed=True)}, '
                f"{_num(c.delta.high, signed=True)}] · p {_p(c.p_value)} · "
                f"{_e(_verdict(s))}</div>"
                f'<div style="margin-top:8px"><span class="pill">{c.wins} won</span>'
                f'<span class="pill">{c.losses} lost</span><span class="pill">{c.ties} tied'
                f"</span></div></div>"
            )
    return f'<div class="cards">{"".join(out)}</div>'


def _table(report: EvalReport, metric: MetricName) -> str:
    rows = []
    for variant in report.variants:
        s = report.summary(variant, metric)
        c = s.comparison
        paired = (
            f"<td class='{_tone(s)}'>{_num(c.delta.mean, signed=True)}</td>"
            f"<td>[{_num(c.delta.low, signed=True)}, {_num(c.delta.high, signed=True)}]</td>"
            f"<td>{_p(c.p_value)}</td><td>{c.wins} / {c.losses} / {c.ties}</td>"
            if c is not None
            else "<td colspan='4' class='flat'>reference</td>"
        )
        rows.append(
            f"<tr><td>{_e(variant.name)}</td><td>{_num(s.interval.mean)}</td>"
            f"<td>[{_num(s.interval.low)}, {_num(s.interval.high)}]</td>{paired}"
            f"<td>{s.queries}</td><td>{s.failed}</td></tr>"
        )
    head = (
        "<tr><th>variant</th><th>mean</th><th>95% CI</th><th>Δ vs reference</th>"
        "<th>Δ 95% CI</th><th>p (paired t)</th><th>won / lost / tied</th><th>queries</th>"
        "<th>failed</th></tr>"
    )
    return f"<h3>{_e(metric.label)}</h3><table>{head}{''.join(rows)}</table>"


def _hits(
    hits: list[RankedHit], display: Display, display_field: str, image_field: str | None
) -> str:
    out = []
    for rank, hit in enumerate(hits[:HITS_SHOWN], start=1):
        source = display.get((hit.index, hit.doc_id), {})
        title = source.get(display_field)
        title = title if isinstance(title, str) and title else f"{hit.index}/{hit.doc_id}"
        src = image_src(source.get(image_field)) if image_field else None
        image = f'<img src="{_e(src)}" alt="">' if src else ""
        if hit.rating is None:
            rating = '<span class="rating unrated">unrated</span>'
        else:
            rating = f'<span class="rating r{min(hit.rating, 5)}">{hit.rating}</span>'
        out.append(
            f'<div class="hit"><span class="rank">{rank}</span>{image}'
            f'<span class="title">{_e(title)}</span>{rating}</div>'
        )
    return "".join(out) or '<div class="meta">no hits</div>'


def _movers(
    report: EvalReport,
    variant: Variant,
    movers: list[Mover],
    display: Display,
    display_field: str,
    image_field: str | None,
) -> str:
    metric = report.metrics[0]
    out = []
    for m in movers:
        reference = report.run(report.reference, metric).results[m.query_id].hits
        mine = report.run(variant, metric).results[m.query_id].hits
        tone = "good" if m.delta > 0 else "bad"
        out.append(
            f'<div class="query"><h3>“{_e(m.text)}” <span class="{tone}">'
            f"{_num(m.delta, signed=True)}</span> <span class='meta'>{_e(metric.label)} "
            f"{_num(m.reference_score)} → {_num(m.score)}</span></h3><div class='sides'>"
            f"<div><div class='meta'>{_e(report.reference.name)}</div>"
            f"{_hits(reference, display, display_field, image_field)}</div>"
            f"<div><div class='meta'>{_e(variant.name)}</div>"
            f"{_hits(mine, display, display_field, image_field)}</div></div></div>"
        )
    return "".join(out) or '<p class="meta">none</p>'


def _failures(report: EvalReport) -> str:
    rows = [
        f"<tr><td>{_e(run.variant.name)}</td><td>{_e(run.metric.label)}</td>"
        f"<td>{_e(query_id)}</td><td style='text-align:left'>{_e(result.failure)}</td></tr>"
        for run in report.runs
        for query_id, result in run.results.items()
        if result.failure
    ]
    if not rows:
        return ""
    head = "<tr><th>variant</th><th>metric</th><th>query</th><th>reason</th></tr>"
    return f"<h2>Failed rated requests</h2><table>{head}{''.join(rows[:200])}</table>"


def render_html(
    report: EvalReport,
    display: Display,
    *,
    display_field: str = "title",
    image_field: str | None = None,
) -> str:
    movers = []
    for variant in report.challengers:
        gained, lost = report.movers(variant, report.metrics[0])
        movers.append(
            f"<h2>{_e(variant.name)}: queries that gained most</h2>"
            + _movers(report, variant, gained, display, display_field, image_field)
            + f"<h2>{_e(variant.name)}: queries that lost most</h2>"
            + _movers(report, variant, lost, display, display_field, image_field)
        )
    label = f" · {_e(report.label)}" if report.label else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Relevance eval · {_e(report.index)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>Relevance eval · {_e(report.index)}</h1>"
        f"<div class='meta'>run {_e(report.run_id)}{label} · "
        f"{_e(report.timestamp.strftime('%Y-%m-%d %H:%M UTC'))} · {len(report.queries)} queries "
        f"· judgments {_e(report.judgments)} · reference {_e(report.reference.name)}</div>"
        f"{_cards(report)}"
        "<h2>Metrics</h2>"
        + "".join(_table(report, metric) + "<br>" for metric in report.metrics)
        + "<h2>Plots</h2>"
        f"<figure><img alt='mean per metric with intervals' src='{metric_bars(report)}'></figure>"
        "<br><figure><img alt='per-query scores against the reference' "
        f"src='{per_query_scatter(report)}'></figure>"
        + "".join(movers)
        + _failures(report)
        + "<p class='meta'>Intervals: 95% percentile bootstrap over queries (10,000 resamples). "
        "p: two-sided paired t-test over the queries both variants evaluated. Won / lost / "
        f"tied: per query, on {_e(report.metrics[0].label)} and each metric above.</p>"
        "</main></body></html>"
    )
