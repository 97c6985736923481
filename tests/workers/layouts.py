"""Scoring one request in every layout of a model, and the check that they agree: used by the
shared-prefix tests of both model kinds."""

from __future__ import annotations

from typing import Any

from workers.scoring import Scorer

TOLERANCE = 1e-5
BF16_TOLERANCE = 2**-7
"""In bf16 the score itself is a bf16 number (computed in the model's dtype, as the official code
does), so near 0.5 it moves in steps of 2**-8: the layouts may differ by a step or two of it."""
LAYOUTS = ("plain", "padded", "packed", "packed-dense")
"""``packed`` attends document by document (workers.scoring.segment_attention); ``packed-dense``
is the same pack through one dense block-diagonal mask."""


def by_layout(scorer: Scorer, *args: Any) -> dict[str, Any]:
    """``scorer.score_with_errors(*args)`` in each layout (the model is switched in place)."""
    model: Any = scorer.model
    out = {}
    try:
        for layout in LAYOUTS:
            model.layout = "packed" if layout == "packed-dense" else layout
            model.segmented = layout == "packed"
            out[layout] = scorer.score_with_errors(*args)
    finally:
        model.layout, model.segmented = "packed", True
    return out


def misordered(first: list[float | None], second: list[float | None], margin: float) -> int:
    """Pairs of documents that ``first`` sets more than ``margin`` apart and ``second`` does not
    order the same way, strictly. Closer pairs may swap or tie within the tolerance."""
    scored = [i for i, value in enumerate(first) if value is not None]
    return sum(
        1
        for i in scored
        for j in scored
        if first[i] > first[j] + margin and not second[i] > second[j]  # type: ignore[operator]
    )


def assert_same(outcomes: dict[str, Any], tolerance: float = TOLERANCE) -> None:
    """Every layout has plain pairs' errors, their scores within ``tolerance``, and plain pairs'
    order wherever plain pairs set two documents more than twice ``tolerance`` apart."""
    plain = outcomes["plain"]
    values = [s for s in plain.scores if s is not None]
    assert values and max(values) - min(values) > 2 * tolerance  # some order to keep
    for layout in LAYOUTS[1:]:
        other = outcomes[layout]
        assert other.errors == plain.errors, layout
        assert [s is None for s in other.scores] == [s is None for s in plain.scores]
        diff = max(
            abs(a - b) for a, b in zip(plain.scores, other.scores, strict=True) if a is not None
        )
        assert diff <= tolerance, (layout, diff)
        assert misordered(plain.scores, other.scores, 2 * tolerance) == 0, layout
        assert len({s for s in other.scores if s is not None}) > 1, layout
