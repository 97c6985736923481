"""A job's result documents: one per (query, reranked hit), with a deterministic id so a chunk
run again overwrites what it wrote before instead of adding to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sidecar.jobs.spec import QueryItem
from sidecar.search.merge import SCORE_FIELD

RESULT_PROPERTIES: dict[str, dict[str, Any]] = {
    "job_id": {"type": "keyword"},
    "query_id": {"type": "keyword"},
    "query_text": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}},
    "hit_index": {"type": "keyword"},
    "hit_id": {"type": "keyword"},
    "original_rank": {"type": "integer"},
    "original_score": {"type": "float"},
    "rank": {"type": "integer"},
    "score": {"type": "float"},
    "rerank_score": {"type": "float"},
    "model": {"type": "keyword"},
    "instruction": {"type": "text"},
    "profile": {"type": "keyword"},
    "timestamp": {"type": "date"},
}
"""The results index's mapping (``dynamic: false`` beyond these)."""

# Types a field may have in an existing index and still hold what the runner writes.
_COMPATIBLE: dict[str, set[str]] = {
    "keyword": {"keyword", "constant_keyword", "wildcard"},
    "text": {"text", "match_only_text"},
    "integer": {"integer", "long", "float", "double", "scaled_float"},
    "float": {"float", "double", "half_float", "scaled_float"},
    "date": {"date", "date_nanos"},
}


def results_mapping() -> dict[str, Any]:
    return {"dynamic": False, "properties": RESULT_PROPERTIES}


def result_id(job_id: str, query_id: str, hit_index: str, hit_id: str) -> str:
    """``{job}:{query id}:{hit _index}:{hit _id}``."""
    return f"{job_id}:{query_id}:{hit_index}:{hit_id}"


def mapping_conflicts(properties: Mapping[str, Any]) -> list[str]:
    """What in an existing index's mapping cannot hold the result fields (empty: compatible).
    A missing field is fine when the index maps new fields dynamically or ignores them."""
    conflicts = []
    for name, wanted in RESULT_PROPERTIES.items():
        existing = properties.get(name)
        if not isinstance(existing, Mapping):
            continue
        kind = existing.get("type", "object")
        if kind not in _COMPATIBLE[wanted["type"]]:
            conflicts.append(f"{name} is mapped as {kind}, the results need {wanted['type']}")
    return conflicts


def result_documents(
    job_id: str,
    item: QueryItem,
    query_text: str | None,
    original: Sequence[Mapping[str, Any]],
    ordered: Sequence[Mapping[str, Any]],
    model: str,
    instruction: str | None,
    profile: str | None,
    now: datetime | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) of each reranked hit, in the reranked order. ``original``: the engine's
    hits in its order; ``ordered``: the window's hits as the merge left them (scored ones carry
    ``fields._rerank_score``)."""
    stamp = (now or datetime.now(UTC)).isoformat()
    engine_rank = {_key(hit): (rank, hit.get("_score")) for rank, hit in enumerate(original, 1)}
    out = []
    for rank, hit in enumerate(ordered, start=1):
        fields = hit.get("fields") or {}
        original_rank, original_score = engine_rank.get(_key(hit), (None, None))
        document = {
            "job_id": job_id,
            "query_id": item.id,
            "query_text": query_text,
            "hit_index": hit.get("_index"),
            "hit_id": hit.get("_id"),
            "original_rank": original_rank,
            "original_score": original_score,
            "rank": rank,
            "score": hit.get("_score"),
            "rerank_score": fields[SCORE_FIELD][0] if SCORE_FIELD in fields else None,
            "model": model,
            "instruction": instruction,
            "profile": profile,
            "timestamp": stamp,
        }
        out.append(
            (result_id(job_id, item.id, str(hit.get("_index")), str(hit.get("_id"))), document)
        )
    return out


def _key(hit: Mapping[str, Any]) -> tuple[str, str]:
    return str(hit.get("_index")), str(hit.get("_id"))
