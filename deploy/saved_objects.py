"""Kibana and OpenSearch Dashboards saved objects for relevance tuning, from one definition.

``.venv/bin/python deploy/saved_objects.py`` rewrites both import files (deterministically):

- ``deploy/kibana/rerank-sidecar.ndjson``: Kibana 8.8+ (``coreMigrationVersion`` and
  ``typeMigrationVersion``, data views with a ``name``);
- ``deploy/opensearch-dashboards/rerank-sidecar.ndjson``: OpenSearch Dashboards 2.x, whose
  saved-objects format is Kibana 7.10's (``migrationVersion``).

Both hold the same objects: a data view per index the sidecar writes (``rerank-eval-runs``,
``rerank-judgments``, ``ubi_queries``, ``ubi_events``; their names come from the modules that
write them) and one on ``rerank-access-*`` for the access logs when a log shipper indexes them;
legacy ``visualization`` objects (aggregation-based, which both products render; no Lens); and a
dashboard of them all. The visualizations are written in the 7.10 format both products read, and
the Kibana file says so in its ``typeMigrationVersion`` ("7.10.0"), so Kibana upgrades them on
import as it upgrades any 7.x export, instead of taking them for already migrated.

Which fields each visualization may use is not decided here: ``tests/deploy`` checks every field
against the mapping the sidecar writes (``MAPPINGS`` of ``runs_store`` and ``judgments.store``,
``ubi_schema``, ``sidecar.access_log.ACCESS_LOG_FIELDS``) and that this script reproduces the
checked-in files byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sidecar.evaluation.judgments.store import JUDGMENTS_INDEX
from sidecar.evaluation.runs_store import RUNS_INDEX
from sidecar.experiments.ubi_schema import EVENTS_INDEX, QUERIES_INDEX

Target = Literal["kibana", "opensearch-dashboards"]
TARGETS: tuple[Target, ...] = ("kibana", "opensearch-dashboards")
DEPLOY = Path(__file__).resolve().parent
FILE_NAME = "rerank-sidecar.ndjson"
ACCESS_INDEX = "rerank-access-*"
"""Where a log shipper (Filebeat, Fluent Bit, Logstash) indexes the sidecar's access logs: the
JSON after the ``rerank_sidecar.access`` logger name, its keys at the top level, mapped as
``ACCESS_LOG_FIELDS`` says, with the shipper's ``@timestamp``."""

SEARCH_SOURCE_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
KIBANA_CORE_VERSION = "8.8.0"
# The format each type is written in (Kibana 7.10's, the one OpenSearch Dashboards 2.x reads),
# except Kibana's data views, which carry the 8.0 attributes (``name``, ``fieldAttrs``, ...).
TYPE_VERSIONS: dict[Target, dict[str, str]] = {
    "kibana": {"index-pattern": "8.0.0", "visualization": "7.10.0", "dashboard": "7.9.3"},
    "opensearch-dashboards": {
        "index-pattern": "7.6.0",
        "visualization": "7.10.0",
        "dashboard": "7.9.3",
    },
}
PANEL_VERSION = "7.10.0"


@dataclass(frozen=True)
class DataView:
    id: str
    title: str
    name: str
    time_field: str


RUNS = DataView("rerank-sidecar-eval-runs", RUNS_INDEX, "Rerank eval runs", "timestamp")
JUDGMENTS = DataView("rerank-sidecar-judgments", JUDGMENTS_INDEX, "Rerank judgments", "timestamp")
UBI_QUERIES = DataView("rerank-sidecar-ubi-queries", QUERIES_INDEX, "UBI queries", "timestamp")
UBI_EVENTS = DataView("rerank-sidecar-ubi-events", EVENTS_INDEX, "UBI events", "timestamp")
ACCESS = DataView("rerank-sidecar-access-logs", ACCESS_INDEX, "Rerank access logs", "@timestamp")
DATA_VIEWS = (RUNS, JUDGMENTS, UBI_QUERIES, UBI_EVENTS, ACCESS)


@dataclass(frozen=True)
class Visualization:
    id: str
    title: str
    description: str
    data_view: DataView
    vis_type: Literal["line", "histogram", "table", "pie"]
    aggs: list[dict[str, Any]]
    query: str = ""  # KQL
    params: dict[str, Any] = field(default_factory=dict)


# --- aggregations (Kibana 7.10's agg configs) ---------------------------------------------------


def _agg(agg_id: int, agg_type: str, schema: str, **params: Any) -> dict[str, Any]:
    return {
        "id": str(agg_id),
        "enabled": True,
        "type": agg_type,
        "params": params,
        "schema": schema,
    }


def _count(agg_id: int = 1) -> dict[str, Any]:
    return _agg(agg_id, "count", "metric")


def _terms(
    agg_id: int,
    field_name: str,
    schema: str,
    size: int = 10,
    order_by: str = "1",
    order: str = "desc",
    **extra: Any,
) -> dict[str, Any]:
    return _agg(
        agg_id,
        "terms",
        schema,
        field=field_name,
        orderBy=order_by,
        order=order,
        size=size,
        otherBucket=False,
        otherBucketLabel="Other",
        missingBucket=False,
        missingBucketLabel="Missing",
        **extra,
    )


def _date_histogram(agg_id: int, field_name: str) -> dict[str, Any]:
    return _agg(
        agg_id,
        "date_histogram",
        "segment",
        field=field_name,
        useNormalizedEsInterval=True,
        scaleMetricValues=False,
        interval="auto",
        drop_partials=False,
        min_doc_count=1,
        extended_bounds={},
    )


def _latest(agg_id: int, field_name: str) -> dict[str, Any]:
    """The value of the newest document (of the bucket) in the time range."""
    return _agg(
        agg_id,
        "top_hits",
        "metric",
        field=field_name,
        aggregate="concat",
        size=1,
        sortField="timestamp",
        sortOrder="desc",
        customLabel=field_name,
    )


# --- visualization parameters (the 7.10 defaults of each type, written out) ---------------------


def _xy_params(chart: Literal["line", "histogram"], value_title: str) -> dict[str, Any]:
    return {
        "type": chart,
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": "bottom",
                "show": True,
                "style": {},
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": "left",
                "show": True,
                "style": {},
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": value_title},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": chart,
                "mode": "normal" if chart == "line" else "stacked",
                "data": {"label": value_title, "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "interpolate": "linear",
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": {
            "show": False,
            "value": 10,
            "width": 1,
            "style": "full",
            "color": "#E7664C",
        },
    }


def _table_params(per_page: int = 10) -> dict[str, Any]:
    return {
        "perPage": per_page,
        "showPartialRows": False,
        "showMetricsAtAllLevels": False,
        "sort": {"columnIndex": None, "direction": None},
        "showTotal": False,
        "totalFunc": "sum",
        "percentageCol": "",
    }


def _pie_params() -> dict[str, Any]:
    return {
        "type": "pie",
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "isDonut": True,
        "labels": {"show": False, "values": True, "last_level": True, "truncate": 100},
    }


# --- the visualizations -------------------------------------------------------------------------

VISUALIZATIONS = (
    Visualization(
        "rerank-sidecar-vis-metric-trend",
        "Rerank: metric by variant over time",
        "Each eval run's mean per variant, one chart per metric (kind:summary).",
        RUNS,
        "line",
        [
            _agg(1, "avg", "metric", field="mean", customLabel="mean"),
            _date_histogram(2, "timestamp"),
            _terms(3, "variant", "group", size=10, order_by="_key", order="asc"),
            _terms(4, "metric", "split", size=10, order_by="_key", order="asc", row=True),
        ],
        query="kind:summary",
        params=_xy_params("line", "mean"),
    ),
    Visualization(
        "rerank-sidecar-vis-paired-deltas",
        "Rerank: latest paired differences",
        "The newest run's difference to the reference variant per variant and metric, its "
        "interval, p-value and wins/losses/ties (kind:summary).",
        RUNS,
        "table",
        [
            _latest(1, "delta"),
            _latest(2, "delta_ci_low"),
            _latest(3, "delta_ci_high"),
            _latest(4, "p_value"),
            _latest(5, "wins"),
            _latest(6, "losses"),
            _latest(7, "ties"),
            _terms(8, "metric", "bucket", size=20, order_by="_key", order="asc"),
            _terms(9, "variant", "bucket", size=20, order_by="_key", order="asc"),
        ],
        query="kind:summary and delta:*",
        params=_table_params(20),
    ),
    Visualization(
        "rerank-sidecar-vis-query-deltas",
        "Rerank: per-query differences, worst first",
        "Mean difference to the reference variant per query over the runs in the time range "
        "(kind:query), lowest first.",
        RUNS,
        "table",
        [
            _agg(1, "avg", "metric", field="delta", customLabel="delta"),
            _agg(2, "avg", "metric", field="score", customLabel="score"),
            _agg(3, "avg", "metric", field="reference_score", customLabel="reference score"),
            _terms(4, "metric", "bucket", size=10, order_by="_key", order="asc"),
            _terms(5, "variant", "bucket", size=10, order_by="_key", order="asc"),
            _terms(6, "query.keyword", "bucket", size=50, order_by="1", order="asc"),
        ],
        query="kind:query and delta:*",
        params=_table_params(20),
    ),
    Visualization(
        "rerank-sidecar-vis-judgments",
        "Rerank: judgments by rater and source",
        "Judgments in rerank-judgments per rater, stacked by source (csv, rre, quepid, clicks...).",
        JUDGMENTS,
        "histogram",
        [
            _count(1),
            _terms(2, "rater", "segment", size=20),
            _terms(3, "source", "group", size=10),
        ],
        params=_xy_params("histogram", "judgments"),
    ),
    Visualization(
        "rerank-sidecar-vis-ubi-searches",
        "Rerank: UBI searches over time",
        "Searches logged in ubi_queries, by application.",
        UBI_QUERIES,
        "histogram",
        [_count(1), _date_histogram(2, "timestamp"), _terms(3, "application", "group", size=10)],
        params=_xy_params("histogram", "searches"),
    ),
    Visualization(
        "rerank-sidecar-vis-ubi-events",
        "Rerank: UBI events over time",
        "Events logged in ubi_events (clicks, impressions...), by action_name.",
        UBI_EVENTS,
        "histogram",
        [_count(1), _date_histogram(2, "timestamp"), _terms(3, "action_name", "group", size=10)],
        params=_xy_params("histogram", "events"),
    ),
    Visualization(
        "rerank-sidecar-vis-rerank-status",
        "Rerank: rerank status of searches",
        "X-Rerank-Status of the searches the sidecar handled, from its access logs.",
        ACCESS,
        "pie",
        [_count(1), _terms(2, "rerank", "segment", size=20)],
        query="rerank:*",
        params=_pie_params(),
    ),
    Visualization(
        "rerank-sidecar-vis-latency-by-status",
        "Rerank: latency by rerank status",
        "Requests and latency percentiles (ms) per X-Rerank-Status, from the access logs.",
        ACCESS,
        "table",
        [
            _count(1),
            _agg(2, "percentiles", "metric", field="ms", percents=[50, 95, 99]),
            _terms(3, "rerank", "bucket", size=20),
        ],
        query="rerank:*",
        params=_table_params(20),
    ),
    Visualization(
        "rerank-sidecar-vis-latency-trend",
        "Rerank: search latency over time",
        "Latency percentiles (ms) of the searches the sidecar handled, from the access logs.",
        ACCESS,
        "line",
        [
            _agg(1, "percentiles", "metric", field="ms", percents=[50, 95, 99]),
            _date_histogram(2, "@timestamp"),
        ],
        query="rerank:*",
        params=_xy_params("line", "ms"),
    ),
)

DASHBOARD_ID = "rerank-sidecar-dashboard"
DASHBOARD_TITLE = "Rerank sidecar: relevance tuning"


# --- saved objects ------------------------------------------------------------------------------


def _json(value: Any) -> str:
    """A JSON string attribute, as the products store them (compact, keys in our order)."""
    return json.dumps(value, separators=(",", ":"))


def _envelope(
    target: Target,
    kind: str,
    object_id: str,
    attributes: dict[str, Any],
    references: list[dict[str, str]],
) -> dict[str, Any]:
    versions: dict[str, Any]
    if target == "kibana":
        versions = {
            "coreMigrationVersion": KIBANA_CORE_VERSION,
            "typeMigrationVersion": TYPE_VERSIONS[target][kind],
            "managed": False,
        }
    else:
        versions = {"migrationVersion": {kind: TYPE_VERSIONS[target][kind]}}
    return {
        "type": kind,
        "id": object_id,
        "attributes": attributes,
        "references": references,
        **versions,
    }


def _data_view(target: Target, view: DataView) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "title": view.title,
        "timeFieldName": view.time_field,
        # No field list: both products read the fields from the cluster (Kibana 8 always does;
        # OpenSearch Dashboards refreshes a data view saved without one when it is first used).
        "fields": "[]",
    }
    if target == "kibana":
        attributes |= {
            "name": view.name,
            "fieldAttrs": "{}",
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        }
    return _envelope(target, "index-pattern", view.id, attributes, [])


def _search_source(query: str, index_ref: str | None) -> str:
    source: dict[str, Any] = {"query": {"query": query, "language": "kuery"}, "filter": []}
    if index_ref is not None:
        source["indexRefName"] = index_ref
    return _json(source)


def _visualization(target: Target, vis: Visualization) -> dict[str, Any]:
    state = {"title": vis.title, "type": vis.vis_type, "aggs": vis.aggs, "params": vis.params}
    attributes = {
        "title": vis.title,
        "description": vis.description,
        "visState": _json(state),
        "uiStateJSON": "{}",
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(vis.query, SEARCH_SOURCE_REF)},
    }
    reference = {"name": SEARCH_SOURCE_REF, "type": "index-pattern", "id": vis.data_view.id}
    return _envelope(target, "visualization", vis.id, attributes, [reference])


def _dashboard(target: Target) -> dict[str, Any]:
    panels = []
    references = []
    for position, vis in enumerate(VISUALIZATIONS):
        index = str(position + 1)
        grid = {"x": (position % 2) * 24, "y": (position // 2) * 15, "w": 24, "h": 15, "i": index}
        panels.append(
            {
                "version": PANEL_VERSION,
                "gridData": grid,
                "panelIndex": index,
                "embeddableConfig": {},
                "panelRefName": f"panel_{position}",
            }
        )
        references.append({"name": f"panel_{position}", "type": "visualization", "id": vis.id})
    attributes = {
        "title": DASHBOARD_TITLE,
        "description": (
            "Eval runs (baseline vs reranked), judgments, UBI searches and events, and the "
            "sidecar's rerank status and latency."
        ),
        "hits": 0,
        "panelsJSON": _json(panels),
        "optionsJSON": _json({"hidePanelTitles": False, "useMargins": True}),
        "version": 1,
        "timeRestore": True,
        "timeFrom": "now-30d",
        "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 0},
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("", None)},
    }
    return _envelope(target, "dashboard", DASHBOARD_ID, attributes, references)


def saved_objects(target: Target) -> list[dict[str, Any]]:
    """Every object of ``target``'s file, each before the objects that reference it."""
    objects = [
        *(_data_view(target, view) for view in DATA_VIEWS),
        *(_visualization(target, vis) for vis in VISUALIZATIONS),
        _dashboard(target),
    ]
    ids = [obj["id"] for obj in objects]
    assert len(set(ids)) == len(ids), f"ids must be unique: {ids}"
    return objects


def export_summary(target: Target, count: int) -> dict[str, Any]:
    """The last line of an export (the import skips it)."""
    summary: dict[str, Any] = {
        "exportedCount": count,
        "missingRefCount": 0,
        "missingReferences": [],
    }
    if target == "kibana":
        summary = {"excludedObjects": [], "excludedObjectsCount": 0, **summary}
    return summary


def ndjson(target: Target) -> str:
    """The whole file: one object a line, keys sorted as the products export them."""
    objects = saved_objects(target)
    lines = [*objects, export_summary(target, len(objects))]
    return "".join(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n" for line in lines)


def output_path(target: Target) -> Path:
    return DEPLOY / target / FILE_NAME


def main() -> None:
    for target in TARGETS:
        path = output_path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ndjson(target), encoding="utf-8", newline="\n")
        print(f"wrote {path.relative_to(DEPLOY.parent)}")


if __name__ == "__main__":
    main()
