"""How the HTML reports (eval, experiments) write values: escaped text, numbers, p-values."""

from __future__ import annotations

import html
import math


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: float, digits: int = 3, signed: bool = False) -> str:
    """``n/a`` for NaN or infinity: a report never shows ``nan``."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def p_value(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
