"""One relevance judgment: how good one document is for one query, on an integer scale (the
scale ``_rank_eval`` ratings use), and where the judgment came from."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

_SPACES = re.compile(r"\s+")
# An engine document id is at most 512 bytes; a judgment's id holds four parts.
_MAX_STORE_ID_BYTES = 512


def normalize_query(text: str) -> str:
    """The form two spellings of one query share: case-folded, whitespace collapsed. It is the
    default query id, and the key click logs are grouped by."""
    return _SPACES.sub(" ", text).strip().casefold()


def _escape(part: str) -> str:
    """Keep the joined id unambiguous: no part can contain the separator."""
    return part.replace("%", "%25").replace(":", "%3A")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Judgment(BaseModel):
    """A rating of ``doc_id`` in ``index`` for the query ``query_id`` (``query`` its text).

    ``rater`` says who judged (a person, a team, ``coec``); ``source`` how the judgment got here
    (``csv``, ``jsonl``, ``rre``, ``quepid``, ``clicks``...). ``score`` keeps the unrounded value
    an implicit judgment was graded from (a COEC ratio), ``None`` for explicit ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_id: NonEmpty
    query: NonEmpty
    index: NonEmpty
    doc_id: NonEmpty
    rating: int = Field(ge=0, le=2**31 - 1)
    rater: NonEmpty = "unknown"
    source: NonEmpty = "import"
    timestamp: datetime = Field(default_factory=utc_now)
    score: float | None = None

    @field_validator("rating", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        """Quepid and spreadsheets write ``2.0``; ``_rank_eval`` takes integers only, so an
        integral float is that integer and ``1.5`` is refused."""
        if isinstance(value, str):
            value = value.strip()
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise ValueError(f"rating must be an integer, not {value!r}") from None
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"rating must be an integer, not {value!r}")
            return int(value)
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes a judgment unique: importing the same one again replaces it."""
        return (self.index, self.query_id, self.doc_id, self.rater)

    @property
    def store_id(self) -> str:
        """The deterministic ``_id`` of this judgment in the judgments index."""
        readable = ":".join(_escape(part) for part in self.key)
        if len(readable.encode()) <= _MAX_STORE_ID_BYTES:
            return readable
        return "sha256:" + hashlib.sha256(readable.encode()).hexdigest()
