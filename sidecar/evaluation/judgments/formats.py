"""Judgment files: read and written in the formats search teams already keep them in.

- ``csv``: a header row, then one judgment per row. Columns: ``query_id``, ``query``, ``index``,
  ``doc_id``, ``rating``, ``rater``, ``source``, ``timestamp``, ``score``; ``query``, ``doc_id``
  and ``rating`` are required (``index`` too unless the reader is given one).
- ``jsonl``: one JSON object per line with the same keys.
- ``rre``: Rated Ranking Evaluator's ratings file: ``{"index", "id_field", "topics": [{
  "description", "query_groups": [{"name", "queries": [{"template", "placeholders"}],
  "relevant_documents": {doc_id: {"gain": n}}}]}]}`` (``rating`` is read as ``gain``'s synonym).
- ``quepid``: Quepid's ratings CSV (``query,docid,rating``, its import and basic export).

Round trips keep what a format can hold: csv and jsonl everything, rre and quepid the query,
document and rating (quepid has no query id or index: the query id is the normalized text and
the index is given to the reader).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from sidecar.evaluation.judgments.model import Judgment, normalize_query
from sidecar.files import write_atomically

Format = Literal["csv", "jsonl", "rre", "quepid"]
FORMATS: tuple[str, ...] = get_args(Format)
COLUMNS = (
    "query_id",
    "query",
    "index",
    "doc_id",
    "rating",
    "rater",
    "source",
    "timestamp",
    "score",
)
QUEPID_COLUMNS = ("query", "docid", "rating")
RRE_TEMPLATE = "query.json"
RRE_PLACEHOLDER = "$query"


class JudgmentFormatError(ValueError):
    """A judgment file that cannot be read: ``where`` names the file and line (or key path)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def detect_format(path: Path) -> Format:
    """The format a file's name and first line say: ``.jsonl``/``.ndjson``, ``.json`` (RRE), and
    ``.csv``/``.tsv``, Quepid's when its header is exactly ``query,docid,rating``."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "rre"
    if suffix == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), [])
        except OSError:
            return "csv"
        return "quepid" if [h.strip().lower() for h in header] == list(QUEPID_COLUMNS) else "csv"
    raise JudgmentFormatError(
        str(path), f"cannot tell the format from the name; pass one of {', '.join(FORMATS)}"
    )


def _judgment(fields: dict[str, Any], where: str) -> Judgment:
    try:
        return Judgment.model_validate(fields)
    except ValidationError as exc:
        # A missing query id follows from a bad query: name the query.
        first = sorted(exc.errors(), key=lambda e: e["loc"] == ("query_id",))[0]
        key = ".".join(str(part) for part in first["loc"]) or "judgment"
        raise JudgmentFormatError(where, f"{key}: {first['msg']}") from None


def _defaults(fields: dict[str, Any], index: str | None, source: str) -> dict[str, Any]:
    fields = {k: v for k, v in fields.items() if v not in (None, "")}
    if index is not None:
        fields.setdefault("index", index)
    fields.setdefault("source", source)
    if "query" in fields and "query_id" not in fields:
        fields["query_id"] = normalize_query(str(fields["query"]))
    return fields


def _read_csv(text: str, name: str, index: str | None, rater: str | None) -> list[Judgment]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise JudgmentFormatError(
            f"{name}:1",
            f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}",
        )
    for needed in ("query", "doc_id", "rating"):
        if needed not in header:
            raise JudgmentFormatError(f"{name}:1", f"the header has no {needed!r} column")
    out = []
    for row in reader:
        fields = {k.strip(): v for k, v in row.items() if k is not None}
        if None in row:
            raise JudgmentFormatError(f"{name}:{reader.line_num}", "more values than columns")
        if rater:
            fields.setdefault("rater", rater)
        out.append(_judgment(_defaults(fields, index, "csv"), f"{name}:{reader.line_num}"))
    return out


def _read_quepid(text: str, name: str, index: str | None, rater: str | None) -> list[Judgment]:
    if index is None:
        raise JudgmentFormatError(name, "a Quepid file names no index: give the index")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != list(QUEPID_COLUMNS):
        raise JudgmentFormatError(f"{name}:1", "the header must be query,docid,rating")
    out = []
    for row in reader:
        where = f"{name}:{reader.line_num}"
        if not row:
            continue
        if len(row) != 3:
            raise JudgmentFormatError(where, f"expected 3 values, found {len(row)}")
        query, doc_id, rating = row
        fields = {"query": query, "doc_id": doc_id, "rating": rating, "rater": rater}
        out.append(_judgment(_defaults(fields, index, "quepid"), where))
    return out


def _read_jsonl(text: str, name: str, index: str | None, rater: str | None) -> list[Judgment]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JudgmentFormatError(where, f"not JSON: {exc.msg}") from None
        if not isinstance(fields, dict):
            raise JudgmentFormatError(where, "each line must be a JSON object")
        if rater:
            fields.setdefault("rater", rater)
        out.append(_judgment(_defaults(fields, index, "jsonl"), where))
    return out


def _rre_query_text(query: Any, where: str) -> str:
    if not isinstance(query, dict):
        raise JudgmentFormatError(where, "a query must be an object")
    placeholders = query.get("placeholders") or {}
    if not isinstance(placeholders, dict) or not placeholders:
        raise JudgmentFormatError(where, "a query needs placeholders holding its text")
    text = placeholders.get(RRE_PLACEHOLDER, next(iter(placeholders.values())))
    if not isinstance(text, str) or not text.strip():
        raise JudgmentFormatError(f"{where}.placeholders", "the query text must be a string")
    return text


def _rre_rating(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        for key in ("gain", "rating"):
            if key in value:
                return value[key]
        raise JudgmentFormatError(where, "a relevant document needs a gain")
    return value  # some files write the gain alone


def _read_rre(text: str, name: str, index: str | None, rater: str | None) -> list[Judgment]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JudgmentFormatError(f"{name}:{exc.lineno}", f"not JSON: {exc.msg}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("topics"), list):
        raise JudgmentFormatError(name, "an RRE ratings file is an object with a topics list")
    file_index = raw.get("index", index)
    if not isinstance(file_index, str) or not file_index:
        raise JudgmentFormatError(f"{name}: index", "the file names no index: give the index")
    out = []
    for t, topic in enumerate(raw["topics"]):
        groups = topic.get("query_groups") if isinstance(topic, dict) else None
        if not isinstance(groups, list):
            raise JudgmentFormatError(f"{name}: topics.{t}", "a topic needs query_groups")
        for g, group in enumerate(groups):
            where = f"{name}: topics.{t}.query_groups.{g}"
            if not isinstance(group, dict) or not isinstance(group.get("queries"), list):
                raise JudgmentFormatError(where, "a query group needs queries")
            documents = group.get("relevant_documents") or {}
            if not isinstance(documents, dict):
                raise JudgmentFormatError(f"{where}.relevant_documents", "must be an object")
            queries = group["queries"]
            group_name = str(group.get("name") or "")
            for q, query in enumerate(queries):
                text = _rre_query_text(query, f"{where}.queries.{q}")
                query_id = group_name if len(queries) == 1 and group_name else None
                if query_id is None and group_name:
                    query_id = f"{group_name}#{q}"
                for doc_id, value in documents.items():
                    doc_where = f"{where}.relevant_documents.{doc_id}"
                    fields = {
                        "query_id": query_id,
                        "query": text,
                        "doc_id": doc_id,
                        "rating": _rre_rating(value, doc_where),
                        "rater": rater,
                    }
                    out.append(_judgment(_defaults(fields, file_index, "rre"), doc_where))
    return out


_READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "rre": _read_rre, "quepid": _read_quepid}


def parse_judgments(
    text: str,
    format: Format,
    *,
    name: str = "<judgments>",
    index: str | None = None,
    rater: str | None = None,
) -> list[Judgment]:
    """Judgments from a file's text. ``index`` fills in judgments that name none (Quepid files,
    csv/jsonl without the column); ``rater`` those without a rater. Duplicates (same index,
    query, document and rater) are refused: one of them would silently win."""
    if format not in _READERS:
        raise JudgmentFormatError(
            name, f"unknown format {format!r}; use one of {', '.join(FORMATS)}"
        )
    judgments = _READERS[format](text, name, index, rater)
    seen: dict[tuple[str, str, str, str], int] = {}
    for position, judgment in enumerate(judgments):
        if judgment.key in seen:
            raise JudgmentFormatError(
                name,
                f"document {judgment.doc_id!r} of index {judgment.index!r} is rated twice for "
                f"query {judgment.query_id!r} by {judgment.rater!r} "
                f"(judgments {seen[judgment.key] + 1} and {position + 1})",
            )
        seen[judgment.key] = position
    return judgments


def read_judgments(
    path: Path, format: Format | None = None, *, index: str | None = None, rater: str | None = None
) -> list[Judgment]:
    """Judgments from a file (format from its name when not given)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgmentFormatError(str(path), f"cannot read it: {exc}") from None
    return parse_judgments(
        text, format or detect_format(path), name=str(path), index=index, rater=rater
    )


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _row(judgment: Judgment) -> dict[str, Any]:
    return judgment.model_dump(mode="json")


def _rre(judgments: Sequence[Judgment]) -> dict[str, Any]:
    indices = {j.index for j in judgments}
    if len(indices) > 1:
        raise JudgmentFormatError(
            "rre", f"an RRE file holds one index; these judgments have {', '.join(sorted(indices))}"
        )
    groups: dict[str, dict[str, Any]] = {}
    raters: dict[tuple[str, str], set[str]] = defaultdict(set)
    for j in judgments:
        raters[(j.query_id, j.doc_id)].add(j.rater)
        if len(raters[(j.query_id, j.doc_id)]) > 1:
            raise JudgmentFormatError(
                "rre", f"query {j.query_id!r} has several raters' ratings; export one rater"
            )
        group = groups.setdefault(
            j.query_id,
            {
                "name": j.query_id,
                "queries": [{"template": RRE_TEMPLATE, "placeholders": {RRE_PLACEHOLDER: j.query}}],
                "relevant_documents": {},
            },
        )
        group["relevant_documents"][j.doc_id] = {"gain": j.rating}
    return {
        "index": next(iter(indices), ""),
        "id_field": "_id",
        "query_placeholder": RRE_PLACEHOLDER,
        "topics": [
            {"description": "rerank-sidecar judgments", "query_groups": list(groups.values())}
        ],
    }


def format_judgments(judgments: Sequence[Judgment], format: Format) -> str:
    """A file's text holding ``judgments`` in ``format``."""
    if format == "csv":
        rows = ([_cell(_row(j).get(c)) for c in COLUMNS] for j in judgments)
        return _csv_text([COLUMNS, *rows])
    if format == "jsonl":
        return "".join(json.dumps(_row(j), ensure_ascii=False) + "\n" for j in judgments)
    if format == "quepid":
        return _csv_text([QUEPID_COLUMNS, *((j.query, j.doc_id, j.rating) for j in judgments)])
    if format == "rre":
        return json.dumps(_rre(judgments), indent=2, ensure_ascii=False) + "\n"
    raise JudgmentFormatError(format, f"unknown format; use one of {', '.join(FORMATS)}")


def write_judgments(
    judgments: Sequence[Judgment], path: Path, format: Format | None = None
) -> None:
    """Write ``judgments`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    write_atomically(path, format_judgments(judgments, format or detect_format(path)))


def by_query(judgments: Iterable[Judgment]) -> Iterator[tuple[str, list[Judgment]]]:
    """Judgments grouped by query id, in first-seen order."""
    groups: dict[str, list[Judgment]] = {}
    for judgment in judgments:
        groups.setdefault(judgment.query_id, []).append(judgment)
    yield from groups.items()
