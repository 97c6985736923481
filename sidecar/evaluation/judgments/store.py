"""Judgments in the cluster: the ``rerank-judgments`` index, written and read as the caller.

One document per judgment with a deterministic id (``Judgment.store_id``), so importing a file
again replaces its judgments instead of doubling them. Every judgment of a file is validated
before the first one is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from sidecar.evaluation.cluster import Cluster, ClusterError
from sidecar.evaluation.judgments.model import Judgment

JUDGMENTS_INDEX = "rerank-judgments"

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "query_id": {"type": "keyword"},
        "query": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "index": {"type": "keyword"},
        "doc_id": {"type": "keyword"},
        "rating": {"type": "integer"},
        "rater": {"type": "keyword"},
        "source": {"type": "keyword"},
        "timestamp": {"type": "date"},
        "score": {"type": "double"},
    },
}
REQUIRED = {"query_id": "keyword", "doc_id": "keyword", "rating": "integer", "index": "keyword"}


def write_judgments(
    cluster: Cluster, judgments: Sequence[Judgment], index: str = JUDGMENTS_INDEX
) -> int:
    """Index ``judgments`` (creating the index on first use); returns how many."""
    if not judgments:
        return 0
    cluster.ensure_index(index, MAPPINGS, REQUIRED)
    docs = [(j.store_id, j.model_dump(mode="json", exclude_none=True)) for j in judgments]
    cluster.bulk_index(index, docs)
    return len(docs)


def read_judgments(
    cluster: Cluster,
    *,
    judged_index: str | None = None,
    rater: str | None = None,
    source: str | None = None,
    index: str = JUDGMENTS_INDEX,
) -> list[Judgment]:
    """The stored judgments, optionally of one judged index, rater or source, ordered by
    query id and document id."""
    filters = [
        {"term": {name: value}}
        for name, value in (("index", judged_index), ("rater", rater), ("source", source))
        if value
    ]
    query = {"bool": {"filter": filters}} if filters else None
    out = []
    for hit in cluster.scan(index, query):
        try:
            out.append(Judgment.model_validate(hit["_source"]))
        except ValidationError as exc:
            raise ClusterError(
                500, f"judgment {hit.get('_id')!r} in {index!r} is not a judgment: {exc}"
            ) from None
    return sorted(out, key=lambda j: (j.query_id, j.index, j.doc_id, j.rater))
