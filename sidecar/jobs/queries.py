"""Reading a job's query set: JSONL (uploaded or on the sidecar's disk) and inline lists.

Every query is read and checked before the job exists, so a bad line is a 400 naming its line
number and nothing is made. UBI head queries are read from the engine (``engine_calls``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from pydantic import ValidationError

from sidecar.jobs.errors import JobError, from_validation
from sidecar.jobs.spec import QueryItem

MAX_FILE_BYTES = 512 * 1024 * 1024


def parse_jsonl(
    lines: Iterable[bytes], first_line: int = 1, field: str = "queries"
) -> list[QueryItem]:
    """One QueryItem per non-blank line. Raises JobError naming the line: not JSON, not an
    object, an invalid query, or an id used twice."""
    items: list[QueryItem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        where = f"{field}[line {number}]"
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise JobError(where, f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise JobError(where, f"a query is a JSON object, not {type(value).__name__}")
        try:
            item = QueryItem.model_validate(value)
        except ValidationError as exc:
            raise from_validation(exc, where) from None
        if item.id in seen:
            raise JobError(where, f"the query id {item.id!r} is used on line {seen[item.id]} too")
        seen[item.id] = number
        items.append(item)
    return items


def check_unique(items: list[QueryItem], field: str = "queries.inline") -> None:
    positions: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in positions:
            raise JobError(
                f"{field}.{i}.id", f"{item.id!r} is the id of query {positions[item.id]} too"
            )
        positions[item.id] = i


def read_query_file(path: str, roots: list[Path]) -> list[QueryItem]:
    """The queries of a JSONL file on the sidecar's machine, only under ``jobs.query_roots``."""
    field = "queries.path"
    if not roots:
        raise JobError(field, "reading query files is off (jobs.query_roots is empty); upload it")
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root.expanduser().resolve()) for root in roots):
        raise JobError(field, f"{path} is not under jobs.query_roots")
    try:
        size = resolved.stat().st_size
        if size > MAX_FILE_BYTES:
            raise JobError(field, f"{path} is {size} bytes, over {MAX_FILE_BYTES}")
        with resolved.open("rb") as handle:
            return parse_jsonl(handle, field="queries")
    except OSError as exc:
        raise JobError(field, f"cannot read {path}: {exc.strerror or exc}") from None
