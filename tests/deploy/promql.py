"""Just enough PromQL reading for the dashboard tests: the metric names a query selects, the label
names it matches or groups by, and the sample names an exposition declares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
IDENTIFIER = re.compile(r"(?<![\w$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])(?!\s*\()")


@dataclass
class Query:
    metrics: set[str] = field(default_factory=set)
    matched: dict[str, set[str]] = field(default_factory=dict)
    """metric → label names its selector matches on"""
    grouped: set[str] = field(default_factory=set)
    """label names of by (...), without (...), on (...)"""


def parse(expr: str) -> Query:
    query = Query()
    text = STRING.sub('""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    for match in GROUPING.finditer(text):
        query.grouped |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = GROUPING.sub(" ", text)
    for match in SELECTOR.finditer(text):
        labels = set(MATCHER_LABEL.findall(match.group(2)))
        if match.group(1):
            query.matched.setdefault(match.group(1), set()).update(labels)
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    for name in IDENTIFIER.findall(text):
        if name.lower() not in KEYWORDS:
            query.metrics.add(name)
    query.metrics |= set(query.matched)
    return query


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
    "untyped": ("",),
    "info": ("_info",),
}


@dataclass
class Exposition:
    names: set[str] = field(default_factory=set)
    """every sample name the families declare (with Prometheus' suffixes for their type)"""
    labels: dict[str, set[str]] = field(default_factory=dict)
    """sample name → label names seen on its samples (only for samples present)"""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def read_exposition(text: str, into: Exposition | None = None) -> Exposition:
    exposition = into or Exposition()
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            exposition.names.add(family.name + suffix)
        for sample in family.samples:
            exposition.names.add(sample.name)
            exposition.labels.setdefault(sample.name, set()).update(sample.labels)
            exposition.samples.append((sample.name, dict(sample.labels), sample.value))
    return exposition
