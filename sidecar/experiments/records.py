"""What the sidecar logs of an experiment, as the analysis reads it back from the UBI indices.

A search under an experiment is a ``ubi_queries`` document whose ``query_attributes`` hold
``experiment``, ``revision``, ``variant`` (for interleaving: ``"interleave"``), ``assignment``
(``"key"``: the assignment key decided the variant; ``"random"``: the request had no key) and,
for interleaving, ``teams``: the variant that contributed each shown hit, aligned with
``query_response_hit_ids``. A click is a ``ubi_events`` document with ``action_name`` ``click``,
the search's ``query_id`` and ``event_attributes.object.object_id`` (the hit's ``_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

INTERLEAVE = "interleave"
ASSIGNED_BY_KEY = "key"
ASSIGNED_AT_RANDOM = "random"
CLICK = "click"


@dataclass(frozen=True)
class LoggedSearch:
    query_id: str
    client_id: str | None  # the assignment key's value (a user); None when the search had none
    timestamp: datetime
    experiment: str
    revision: str
    variant: str  # a variant's name, or INTERLEAVE
    hit_ids: tuple[str, ...]  # in the order shown
    teams: tuple[str, ...] | None = None  # interleaving: the variant behind each shown hit
    assignment: str = ASSIGNED_BY_KEY
    user_query: str = ""


@dataclass(frozen=True)
class LoggedClick:
    query_id: str
    object_id: str
    timestamp: datetime
    client_id: str | None = None
    position: int | None = None  # as the collector sent it (0- or 1-based): not relied on
