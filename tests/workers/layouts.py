"""Scoring one request in every layout of a model, and the check that they agree: used by the
shared-prefix tests of both model kinds."""

from __future__ import annotations

from typing import Any

from workers.scoring import Scorer

TOLERANCE = 1e-5
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


def assert_same(outcomes: dict[str, Any]) -> None:
    """Every layout has plain pairs' errors, and their scores within TOLERANCE."""
    plain = outcomes["plain"]
    assert any(s is not None for s in plain.scores)
    for layout in LAYOUTS[1:]:
        other = outcomes[layout]
        assert other.errors == plain.errors, layout
        assert [s is None for s in other.scores] == [s is None for s in plain.scores]
        diff = max(
            abs(a - b) for a, b in zip(plain.scores, other.scores, strict=True) if a is not None
        )
        assert diff <= TOLERANCE, (layout, diff)
