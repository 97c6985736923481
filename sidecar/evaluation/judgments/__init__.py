"""Relevance judgments: the model, the file formats (csv, jsonl, RRE, Quepid), the cluster
index ``rerank-judgments``, and implicit judgments from UBI click logs (COEC)."""

from sidecar.evaluation.judgments.coec import Click, ClickModel, CoecScore, Search, coec, grade
from sidecar.evaluation.judgments.formats import (
    FORMATS,
    Format,
    JudgmentFormatError,
    format_judgments,
    parse_judgments,
    read_judgments,
    write_judgments,
)
from sidecar.evaluation.judgments.model import Judgment, normalize_query

__all__ = [
    "FORMATS",
    "Click",
    "ClickModel",
    "CoecScore",
    "Format",
    "Judgment",
    "JudgmentFormatError",
    "Search",
    "coec",
    "format_judgments",
    "grade",
    "normalize_query",
    "parse_judgments",
    "read_judgments",
    "write_judgments",
]
