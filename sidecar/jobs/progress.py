"""How far a job is, in numbers people read: fraction done, rates and time left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sidecar.jobs.store import JobView


@dataclass(frozen=True)
class Progress:
    finished: int
    fraction: float
    queries_per_s: float | None
    pairs_per_s: float | None
    eta_s: float | None


def progress(
    queries: int, finished: int, pairs: int, started_at: float | None, until: float
) -> Progress:
    """``finished`` of ``queries`` (done or failed) since ``started_at``, as of ``until``. Rates
    need a second of history; the ETA needs a rate and work left."""
    fraction = finished / queries if queries else 1.0
    elapsed = until - started_at if started_at is not None else 0.0
    if elapsed < 1.0 or finished == 0:
        return Progress(finished, fraction, None, None, None)
    rate = finished / elapsed
    left = queries - finished
    return Progress(finished, fraction, rate, pairs / elapsed, left / rate if left else 0.0)


def _iso(stamp: float | None) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).isoformat() if stamp is not None else None


def describe(view: JobView, now: float) -> dict[str, Any]:
    """The JSON of ``GET /_rerank/jobs/{id}``."""
    totals = view.totals
    until = view.finished_at or now
    shown = progress(
        view.queries, totals["done"] + totals["failed"], totals["pairs"], view.started_at, until
    )
    return {
        "id": view.id,
        "name": view.spec.name,
        "state": view.state,
        "reason": view.reason or None,
        "index": view.spec.index,
        "output": view.spec.output.model_dump(exclude_none=True),
        "created_at": _iso(view.created_at),
        "started_at": _iso(view.started_at),
        "finished_at": _iso(view.finished_at),
        "totals": {"queries": view.queries, **totals},
        "progress": {
            "fraction": round(shown.fraction, 4),
            "queries_per_s": shown.queries_per_s,
            "pairs_per_s": shown.pairs_per_s,
            "eta_s": shown.eta_s if view.state in ("queued", "running") else None,
            "chunks": view.chunks,
            "chunks_done": min(view.cursor, view.chunks),
        },
        "errors": view.errors,
        "spec": view.spec.model_dump(mode="json", exclude_none=True),
    }
