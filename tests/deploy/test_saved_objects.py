"""The Kibana and OpenSearch Dashboards saved objects import as they are, and chart only fields
the sidecar writes.

Pure file checks (no Kibana, no cluster): every line parses, every reference resolves in the same
file, the JSON-in-a-string attributes parse, every field a visualization aggregates on or queries
exists in the mapping of its data view (the mappings the sidecar's own modules define) with a type
that aggregation accepts, and ``deploy/saved_objects.py`` reproduces the checked-in files byte for
byte. The checker is tested on deliberately broken objects too, so a passing run means something.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sidecar.access_log import ACCESS_LOG_FIELDS, JsonAccessLogger
from sidecar.evaluation import runs_store
from sidecar.evaluation.judgments import store as judgments_store
from sidecar.evaluation.models import Flavor
from sidecar.experiments import ubi_schema

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "deploy" / "saved_objects.py"
FILES = {
    "kibana": ROOT / "deploy" / "kibana" / "rerank-sidecar.ndjson",
    "opensearch-dashboards": ROOT / "deploy" / "opensearch-dashboards" / "rerank-sidecar.ndjson",
}
# Which engine each product talks to, for the mappings that differ (UBI's query_attributes).
FLAVORS: dict[str, Flavor] = {"kibana": "elasticsearch", "opensearch-dashboards": "opensearch"}
ACCESS_PATTERN = "rerank-access-*"
JSON_STRINGS = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON")

NUMERIC = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
)
AGGREGATABLE = NUMERIC | {"keyword", "boolean", "date", "ip"}
# The field types each aggregation (and top_hits' sort) accepts, as Kibana's agg editor offers them.
FIELD_TYPES = {
    "avg": NUMERIC,
    "sum": NUMERIC,
    "min": NUMERIC | {"date"},
    "max": NUMERIC | {"date"},
    "median": NUMERIC,
    "percentiles": NUMERIC,
    "std_dev": NUMERIC,
    "histogram": NUMERIC,
    "date_histogram": frozenset({"date"}),
    "terms": AGGREGATABLE,
    "cardinality": AGGREGATABLE,
    "top_hits": AGGREGATABLE,
}
SORTABLE = NUMERIC | {"keyword", "date"}


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every field of an index mapping by dotted name (object properties and multi-fields
    such as ``query.keyword`` included), with its type."""
    out: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        out[path] = spec.get("type", "object")
        out |= flatten(spec, f"{path}.")
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = sub_spec["type"]
    return out


def index_fields(product: str) -> dict[str, dict[str, str]]:
    """The indices the sidecar writes (or ships logs to), each with its fields."""
    flavor = FLAVORS[product]
    access = {
        "properties": {
            "@timestamp": {"type": "date"},  # added by the log shipper
            **{key: {"type": kind} for key, kind in ACCESS_LOG_FIELDS.items()},
        }
    }
    return {
        runs_store.RUNS_INDEX: flatten(runs_store.MAPPINGS),
        judgments_store.JUDGMENTS_INDEX: flatten(judgments_store.MAPPINGS),
        ubi_schema.QUERIES_INDEX: flatten(ubi_schema.queries_mapping(flavor)),
        ubi_schema.EVENTS_INDEX: flatten(ubi_schema.events_mapping(flavor)),
        ACCESS_PATTERN: flatten(access),
    }


def kql_fields(query: str) -> set[str]:
    """The field names of a KQL query (``kind:summary and delta:*`` → kind, delta)."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", unquoted))


def filter_fields(filters: list[dict[str, Any]]) -> set[str]:
    """The fields of saved filter pills (``meta.key``, and the field of the query they hold)."""
    names: set[str] = set()
    for pill in filters:
        if key := pill.get("meta", {}).get("key"):
            names.add(key)
        query = pill.get("query", pill)
        for clause in ("match_phrase", "match", "term", "terms", "range", "wildcard", "prefix"):
            names.update(query.get(clause, {}))
        if "exists" in pill or "exists" in query:
            names.add((pill.get("exists") or query["exists"])["field"])
    return names


def parse_ndjson(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The saved objects of an export file and the problems of its lines (the export summary,
    if there, must count them)."""
    problems: list[str] = []
    objects: list[dict[str, Any]] = []
    lines = text.splitlines()
    if not text.endswith("\n"):
        problems.append("the file does not end with a newline")
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {number}: not JSON ({exc})")
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: not an object")
        elif "exportedCount" in value:
            if number != len(lines):
                problems.append(f"line {number}: the export summary is not the last line")
            if value["exportedCount"] != len(objects) or value.get("missingRefCount") != 0:
                problems.append(f"line {number}: summary {value} does not match the objects")
        else:
            objects.append(value)
    return objects, problems


def _json_attribute(obj: dict[str, Any], name: str, text: Any, problems: list[str]) -> Any:
    try:
        if not isinstance(text, str):
            raise TypeError(f"a {type(text).__name__}, not a string")
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        problems.append(f"{obj.get('id')}: {name} is not a JSON string ({exc})")
        return None


def check_objects(objects: list[dict[str, Any]], product: str) -> list[str]:
    """Everything wrong with ``objects`` as one import file of ``product``; [] when nothing."""
    problems: list[str] = []
    fields_of = index_fields(product)
    counts = Counter(obj.get("id") for obj in objects)
    problems += [f"{i}: the id is not unique" for i, n in counts.items() if n > 1]
    by_key = {(obj.get("type"), obj.get("id")): obj for obj in objects}
    panel_targets: set[str] = set()
    for obj in objects:
        oid, kind = obj.get("id"), obj.get("type")
        missing = [k for k in ("type", "id", "attributes", "references") if k not in obj]
        if missing:
            problems.append(f"{oid}: lacks {missing}")
            continue
        attributes, references = obj["attributes"], obj["references"]
        if product == "kibana":
            if "coreMigrationVersion" not in obj or "typeMigrationVersion" not in obj:
                problems.append(f"{oid}: lacks coreMigrationVersion/typeMigrationVersion")
        elif set(obj.get("migrationVersion", {})) != {kind} or "typeMigrationVersion" in obj:
            problems.append(f"{oid}: needs migrationVersion {{{kind!r}: ...}} alone")
        refs: dict[Any, dict[str, Any]] = {}
        for ref in references:
            if ref.get("name") in refs:
                problems.append(f"{oid}: reference name {ref.get('name')!r} twice")
            refs[ref.get("name")] = ref
            if (ref.get("type"), ref.get("id")) not in by_key:
                problems.append(f"{oid}: reference {ref} is not in the file")
        for name in JSON_STRINGS:
            if name in attributes:
                _json_attribute(obj, name, attributes[name], problems)
        source = None
        if kind != "index-pattern":  # a search source: its query, filters and data view
            meta = attributes.get("kibanaSavedObjectMeta", {})
            text = meta.get("searchSourceJSON")
            source = _json_attribute(obj, "searchSourceJSON", text, problems)
            if not isinstance(source, dict):
                continue

        if kind == "index-pattern":
            title = attributes.get("title")
            if title not in fields_of:
                problems.append(f"{oid}: data view on {title!r}, an index the sidecar never writes")
                continue
            time_field = attributes.get("timeFieldName")
            if time_field and fields_of[title].get(time_field) != "date":
                problems.append(f"{oid}: time field {time_field!r} is not a date of {title}")
            if product == "kibana" and not attributes.get("name"):
                problems.append(f"{oid}: a Kibana 8 data view needs a name")
        elif kind == "visualization":
            assert source is not None
            problems += _check_visualization(obj, source, refs, by_key, fields_of)
        elif kind == "dashboard":
            panels = _json_attribute(obj, "panelsJSON", attributes.get("panelsJSON"), problems)
            for panel in panels or []:
                ref = refs.get(panel.get("panelRefName"))
                if ref is None or ref.get("type") != "visualization":
                    problems.append(f"{oid}: panel {panel.get('panelRefName')!r} has no reference")
                else:
                    panel_targets.add(ref["id"])
        else:
            problems.append(f"{oid}: unexpected type {kind!r}")
    unused = {o.get("id") for o in objects if o.get("type") == "visualization"} - panel_targets
    problems += [f"{vid}: on no dashboard" for vid in sorted(unused, key=str)]
    return problems


def _check_visualization(
    obj: dict[str, Any],
    source: dict[str, Any],
    refs: dict[Any, dict[str, Any]],
    by_key: dict[tuple[Any, Any], dict[str, Any]],
    fields_of: dict[str, dict[str, str]],
) -> list[str]:
    oid = obj["id"]
    ref = refs.get(source.get("indexRefName"))
    if ref is None or ref.get("type") != "index-pattern":
        return [f"{oid}: indexRefName {source.get('indexRefName')!r} names no data view reference"]
    view = by_key.get(("index-pattern", ref.get("id")))
    if view is None:
        return []  # reported as an unresolved reference
    title = view["attributes"].get("title")
    fields = fields_of.get(title, {})
    problems: list[str] = []
    state = _json_attribute(obj, "visState", obj["attributes"].get("visState"), problems)
    if not isinstance(state, dict):
        return problems
    if state.get("title") != obj["attributes"].get("title"):
        problems.append(f"{oid}: visState title differs from the title")
    for agg in state.get("aggs", []):
        params = agg.get("params", {})
        for key, accepted in (
            ("field", FIELD_TYPES.get(str(agg.get("type")))),
            ("sortField", SORTABLE),
        ):
            name = params.get(key)
            if name is None:
                continue
            if name not in fields:
                problems.append(f"{oid}: agg {agg.get('id')} uses {name!r}, not a field of {title}")
            elif accepted is None:
                problems.append(f"{oid}: agg type {agg.get('type')!r} is not known to the check")
            elif fields[name] not in accepted:
                problems.append(
                    f"{oid}: agg {agg.get('id')} ({agg.get('type')}) on {name!r}, a "
                    f"{fields[name]} field"
                )
    query = source.get("query", {})
    used = kql_fields(query.get("query", "")) if query.get("language") == "kuery" else set()
    if query.get("language") not in ("kuery", None):
        problems.append(f"{oid}: the query is not KQL, which the check reads")
    for name in sorted(used | filter_fields(source.get("filter", []))):
        if name not in fields:
            problems.append(f"{oid}: the query uses {name!r}, not a field of {title}")
    return problems


def check_file(text: str, product: str) -> list[str]:
    objects, problems = parse_ndjson(text)
    return problems + check_objects(objects, product)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_saved_objects", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.mark.parametrize("product", sorted(FILES))
def test_the_checked_in_file_is_valid(product: str) -> None:
    assert check_file(FILES[product].read_text(encoding="utf-8"), product) == []


@pytest.mark.parametrize("product", sorted(FILES))
def test_the_generator_reproduces_the_checked_in_file(generator: ModuleType, product: str) -> None:
    assert generator.output_path(product) == FILES[product]
    assert generator.ndjson(product).encode() == FILES[product].read_bytes(), (
        "run .venv/bin/python deploy/saved_objects.py"
    )


@pytest.mark.parametrize("product", sorted(FILES))
def test_every_index_the_sidecar_writes_has_a_data_view_and_a_chart(product: str) -> None:
    objects, _ = parse_ndjson(FILES[product].read_text(encoding="utf-8"))
    views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    charted = {
        views[ref["id"]] for o in objects if o["type"] == "visualization" for ref in o["references"]
    }
    assert sorted(views.values()) == sorted(index_fields(product)) == sorted(charted)
    assert [o["type"] for o in objects].count("dashboard") == 1


def test_both_files_hold_the_same_objects() -> None:
    def shape(product: str) -> list[tuple[str, str, str | None, str | None]]:
        objects, _ = parse_ndjson(FILES[product].read_text(encoding="utf-8"))
        return [
            (o["type"], o["id"], o["attributes"].get("visState"), o["attributes"].get("title"))
            for o in objects
        ]

    assert shape("kibana") == shape("opensearch-dashboards")


def test_the_access_log_writes_exactly_the_mapped_fields_with_their_types() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_saved_objects.access")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    transport = mock.Mock()
    transport.get_extra_info.return_value = ("127.0.0.1", 50000)
    request = make_mocked_request(
        "POST",
        "/products/_search?token=secret",
        headers={"User-Agent": "curl/8", "X-Opaque-Id": "abc"},
        transport=transport,
    )
    response = web.Response(status=200, body=b"{}", headers={"X-Rerank-Status": "applied"})
    try:
        JsonAccessLogger(logger, "").log(request, response, 0.0123)
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record.keys() == ACCESS_LOG_FIELDS.keys()
    python_types: dict[str, type | tuple[type, ...]] = {
        "keyword": str,
        "long": int,
        "double": (int, float),
    }
    for key, value in record.items():
        assert isinstance(value, python_types[ACCESS_LOG_FIELDS[key]]), (key, value)


# --- the checker catches what it should -----------------------------------------------------------


def _objects(product: str) -> list[dict[str, Any]]:
    return parse_ndjson(FILES[product].read_text(encoding="utf-8"))[0]


def _first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["type"] == kind)


def _edit_state(objects: list[dict[str, Any]], edit: Any) -> None:
    vis = _first(objects, "visualization")
    state = json.loads(vis["attributes"]["visState"])
    edit(state)
    vis["attributes"]["visState"] = json.dumps(state)


def _edit_query(objects: list[dict[str, Any]], query: str) -> None:
    vis = _first(objects, "visualization")
    meta = vis["attributes"]["kibanaSavedObjectMeta"]
    source = json.loads(meta["searchSourceJSON"])
    source["query"]["query"] = query
    meta["searchSourceJSON"] = json.dumps(source)


def _edit_filter(objects: list[dict[str, Any]], pill: dict[str, Any]) -> None:
    vis = _first(objects, "visualization")
    meta = vis["attributes"]["kibanaSavedObjectMeta"]
    source = json.loads(meta["searchSourceJSON"])
    source["filter"] = [pill]
    meta["searchSourceJSON"] = json.dumps(source)


def _breakages() -> Iterator[tuple[str, Any, str]]:
    """(what is broken, how to break a copy of the objects, a word the problem must contain)"""
    yield (
        "an agg on a field no mapping has",
        lambda o: _edit_state(o, lambda s: s["aggs"][0]["params"].update(field="meen")),
        "meen",
    )
    yield (
        "terms on a text field",
        lambda o: _edit_state(o, lambda s: s["aggs"][2]["params"].update(field="query")),
        "text field",
    )
    yield (
        "a date histogram on a number",
        lambda o: _edit_state(o, lambda s: s["aggs"][1]["params"].update(field="mean")),
        "double field",
    )
    yield ("a KQL field no mapping has", lambda o: _edit_query(o, "kinds:summary"), "kinds")
    yield (
        "a filter pill on a field no mapping has",
        lambda o: _edit_filter(o, {"meta": {"key": "flavour"}, "query": {"match_phrase": {}}}),
        "flavour",
    )
    yield (
        "a visState that is not JSON",
        lambda o: _first(o, "visualization")["attributes"].update(visState="{nope"),
        "visState",
    )
    yield (
        "a panelsJSON that is not JSON",
        lambda o: _first(o, "dashboard")["attributes"].update(panelsJSON="[{"),
        "panelsJSON",
    )
    yield (
        "a reference to an object not in the file",
        lambda o: _first(o, "visualization")["references"][0].update(id="gone"),
        "not in the file",
    )
    yield (
        "an indexRefName without its reference",
        lambda o: _first(o, "visualization")["references"][0].update(name="other"),
        "indexRefName",
    )
    yield (
        "a panelRefName without its reference",
        lambda o: _first(o, "dashboard")["references"].pop(0),
        "panel_0",
    )
    yield (
        "a duplicated id",
        lambda o: o.append(copy.deepcopy(_first(o, "index-pattern"))),
        "not unique",
    )
    yield (
        "a data view on an index the sidecar does not write",
        lambda o: _first(o, "index-pattern")["attributes"].update(title="products"),
        "never writes",
    )
    yield (
        "a time field that is not a date",
        lambda o: _first(o, "index-pattern")["attributes"].update(timeFieldName="run_id"),
        "time field",
    )
    yield (
        "an object without references",
        lambda o: _first(o, "index-pattern").pop("references"),
        "lacks",
    )


@pytest.mark.parametrize("product", sorted(FILES))
@pytest.mark.parametrize(
    ("what", "breakage", "word"), list(_breakages()), ids=[b[0] for b in _breakages()]
)
def test_the_checker_catches(product: str, what: str, breakage: Any, word: str) -> None:
    objects = _objects(product)
    breakage(objects)
    problems = check_objects(objects, product)
    assert any(word in problem for problem in problems), (what, problems)


def test_the_checker_catches_a_broken_line_and_a_wrong_summary() -> None:
    text = FILES["kibana"].read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    assert any(
        "not JSON" in p for p in check_file("".join([lines[0][:-5] + "\n", *lines[1:]]), "kibana")
    )
    assert any("summary" in p for p in check_file("".join(lines[1:]), "kibana"))


def test_the_version_fields_are_each_products_own() -> None:
    kibana, dashboards = _objects("kibana"), _objects("opensearch-dashboards")
    assert check_objects(kibana, "opensearch-dashboards") != []
    assert check_objects(dashboards, "kibana") != []


def test_flatten_names_object_properties_and_multi_fields() -> None:
    fields = flatten(ubi_schema.events_mapping("opensearch"))
    assert fields["event_attributes.position.ordinal"] == "integer"
    assert fields["event_attributes.object.description.keyword"] == "keyword"
    assert flatten(runs_store.MAPPINGS)["query.keyword"] == "keyword"
