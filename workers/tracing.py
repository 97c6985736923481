"""The worker's batch spans: a batch mixes pairs of several jobs, so each job whose pairs were in
it gets a ``rerank.batch`` span in its own trace (child of its Celery task span), with the
batch's real start and end. Nothing happens when tracing is off or OpenTelemetry is absent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # the tracing extra is not installed
    _context = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]


def current_context() -> Any:
    """The calling thread's trace context (the task's), to carry to the model thread."""
    return _context.get_current() if _context is not None else None


def batch_spans(
    contexts: Sequence[Any], start_ns: int, end_ns: int, attributes: dict[str, Any]
) -> None:
    if _trace is None:
        return
    tracer = _trace.get_tracer("rerank.worker")
    seen: set[int] = set()
    for context in contexts:
        if context is None:
            continue
        parent = _trace.get_current_span(context).get_span_context()
        if not parent.is_valid or parent.span_id in seen:
            continue
        seen.add(parent.span_id)
        pairs = sum(1 for c in contexts if c is context)
        span = tracer.start_span(
            "rerank.batch",
            context=context,
            start_time=start_ns,
            attributes={**attributes, "rerank.batch.job_pairs": pairs},
        )
        span.end(end_time=end_ns)
