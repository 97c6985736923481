"""Synthetic users with known click preferences, and their searches and clicks as the sidecar
logs them (records, and the UBI documents it writes).

A user examines the hit at 0-based position ``i`` with probability ``1 / (1 + i)`` (position
bias) and clicks an examined hit with the document's attractiveness. ``GOOD`` documents are
attractive; ``BETTER`` ranks them first, ``WORSE`` differs by one dud put on top of them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.experiments.interleaving import interleaving_seed, team_draft
from sidecar.experiments.records import (
    ASSIGNED_AT_RANDOM,
    ASSIGNED_BY_KEY,
    CLICK,
    INTERLEAVE,
    LoggedClick,
    LoggedSearch,
)

START = datetime(2026, 12, 1, 8, tzinfo=UTC)
DOCS = [f"d{i}" for i in range(20)]
GOOD = set(DOCS[:5])
ATTRACTIVE = {d: (0.6 if d in GOOD else 0.05) for d in DOCS}
BETTER = DOCS[:]  # the attractive documents first
WORSE = DOCS[5:6] + DOCS[:5] + DOCS[6:]  # an unattractive document first
QUERIES = [f"query {i}" for i in range(8)]
SHOWN = 10


def clicked_positions(hits: Sequence[str], rng: random.Random) -> list[int]:
    return [i for i, hit in enumerate(hits) if rng.random() < ATTRACTIVE[hit] / (1 + i)]


def _when(rng: random.Random, days: int, start: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, days * 86400 - 3600))


def _clicks(search: LoggedSearch, rng: random.Random) -> list[LoggedClick]:
    return [
        LoggedClick(
            search.query_id, search.hit_ids[i], search.timestamp + timedelta(seconds=5 + 3 * n),
            search.client_id, i + 1,
        )
        for n, i in enumerate(clicked_positions(search.hit_ids, rng))
    ]  # fmt: skip


def ab_logs(
    *,
    seed: int,
    users: int,
    searches_per_user: int,
    rankings: Mapping[str, Sequence[str]],
    split: Mapping[str, float],
    experiment: str = "shoes",
    revision: str = "r1",
    days: int = 3,
    unkeyed: int = 0,
    start: datetime = START,
) -> tuple[list[LoggedSearch], list[LoggedClick]]:
    """An A/B test: each user is put in a variant with probability ``split`` (and stays), then
    searches; ``unkeyed`` more searches come without a user, each assigned on its own."""
    rng = random.Random(seed)
    names = list(split)
    searches, clicks = [], []
    for u in range(users + unkeyed):
        variant = rng.choices(names, weights=[split[n] for n in names])[0]
        user = f"user-{seed}-{u}" if u < users else None
        for k in range(searches_per_user if user else 1):
            s = LoggedSearch(
                query_id=f"{experiment}-{revision}-{seed}-{u}-{k}",
                client_id=user,
                timestamp=_when(rng, days, start),
                experiment=experiment,
                revision=revision,
                variant=variant,
                hit_ids=tuple(rankings[variant][:SHOWN]),
                assignment=ASSIGNED_BY_KEY if user else ASSIGNED_AT_RANDOM,
                user_query=rng.choice(QUERIES),
            )
            searches.append(s)
            clicks += _clicks(s, rng)
    return searches, clicks


def interleaved_logs(
    *,
    seed: int,
    users: int,
    searches_per_user: int,
    first: Sequence[str],
    second: Sequence[str],
    teams: tuple[str, str] = ("A", "B"),
    experiment: str = "boots",
    revision: str = "r1",
    days: int = 3,
    salt: str = "boots",
    start: datetime = START,
) -> tuple[list[LoggedSearch], list[LoggedClick]]:
    """An interleaving: every search shows the team draft of ``first`` and ``second``, seeded
    by its query and user as the sidecar seeds it."""
    rng = random.Random(seed)
    searches, clicks = [], []
    for u in range(users):
        user = f"user-{seed}-{u}"
        for k in range(searches_per_user):
            text = rng.choice(QUERIES)
            placed = team_draft(
                first, second, teams=teams, seed=interleaving_seed(text, user, salt), limit=SHOWN
            )
            s = LoggedSearch(
                query_id=f"{experiment}-{revision}-{seed}-{u}-{k}",
                client_id=user,
                timestamp=_when(rng, days, start),
                experiment=experiment,
                revision=revision,
                variant=INTERLEAVE,
                hit_ids=tuple(p.key for p in placed),
                teams=tuple(p.team for p in placed),
                user_query=text,
            )
            searches.append(s)
            clicks += _clicks(s, rng)
    return searches, clicks


def query_doc(search: LoggedSearch) -> dict[str, Any]:
    """The ``ubi_queries`` document the sidecar writes for ``search``."""
    attributes: dict[str, Any] = {
        "experiment": search.experiment,
        "revision": search.revision,
        "variant": search.variant,
        "assignment": search.assignment,
    }
    if search.teams is not None:
        attributes["teams"] = list(search.teams)
    doc: dict[str, Any] = {
        "query_id": search.query_id,
        "query_response_id": f"response-{search.query_id}",
        "query_response_hit_ids": list(search.hit_ids),
        "query_attributes": attributes,
        "user_query": search.user_query,
        "application": "rerank-sidecar",
        "timestamp": search.timestamp.isoformat(),
    }
    if search.client_id is not None:
        doc["client_id"] = search.client_id
    return doc


def event_doc(click: LoggedClick, action: str = CLICK) -> dict[str, Any]:
    """A ``ubi_events`` document as the UBI JavaScript collector sends a click."""
    doc: dict[str, Any] = {
        "application": "shop",
        "action_name": action,
        "query_id": click.query_id,
        "message_type": "CLICK_THROUGH" if action == CLICK else "INFO",
        "timestamp": click.timestamp.isoformat(),
        "event_attributes": {
            "object": {"object_id": click.object_id, "object_id_field": "_id"},
            "position": {"ordinal": click.position},
        },
    }
    if click.client_id is not None:
        doc["client_id"] = click.client_id
    return doc
