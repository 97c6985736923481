"""Team-draft interleaving (Radlinski, Kurup and Joachims 2008, "How does clickthrough data
reflect retrieval quality?") of two variants' rankings, and the credit of one impression.

Two teams pick in turns, like captains choosing players: the team with fewer picks so far goes
next, and when both have as many a coin decides; the team picking places its best-ranked key
not yet shown. Every placed key carries its team, and a click credits the team that placed the
clicked hit.

- Keys are ``(_index, _id)`` tuples (any hashable works); a key appears once in the result,
  however often either ranking holds it.
- When one ranking runs out (everything it holds is placed), the other team continues alone and
  places the rest of its ranking, each key credited to it. The paper stops there instead; we
  keep going so no retrieved hit is lost from the page. Two orderings of the same window run out
  together, so this only matters when the variants retrieved different hits.
- ``limit`` stops after that many placed keys: ``team_draft(..., limit=k)`` is always
  ``team_draft(...)[:k]`` (the coin flips happen in the same order).
- The coins come from ``random.Random(seed)``; ``interleaving_seed`` derives the seed from the
  query, the user's assignment key and the experiment's salt with SHA-256, so every process
  computes the same interleaving. Paging: interleave the whole window once and slice
  ``from``/``size`` out of it; page 2 then continues page 1's interleaving.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Key = tuple[str, str]  # (_index, _id)


@dataclass(frozen=True)
class Placed(Generic[K]):
    key: K
    team: str  # the variant that placed it


def interleaving_seed(query_text: str, assignment_key: str | None, salt: str) -> int:
    """The seed of one user's interleaving of one query: the same in every process (SHA-256,
    not ``hash()``, which Python salts per process). No key (assigned per request) is its own
    value, distinct from every key."""
    key = "\x00" if assignment_key is None else "\x01" + assignment_key
    digest = hashlib.sha256("\x1f".join((salt, key, query_text)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def team_draft(
    first: Sequence[K],
    second: Sequence[K],
    *,
    teams: tuple[str, str],
    seed: int,
    limit: int | None = None,
) -> list[Placed[K]]:
    """The team-draft interleaving of ``first`` (team ``teams[0]``) and ``second`` (team
    ``teams[1]``), best first; see the module docstring for list ends and ``limit``."""
    if teams[0] == teams[1]:
        raise ValueError(f"the two teams need two names, not {teams[0]!r} twice")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    rankings = (first, second)
    rng = random.Random(seed)
    placed: list[Placed[K]] = []
    seen: set[K] = set()
    cursors = [0, 0]
    picks = [0, 0]

    def next_unplaced(side: int) -> K | None:
        ranking = rankings[side]
        while cursors[side] < len(ranking) and ranking[cursors[side]] in seen:
            cursors[side] += 1
        return ranking[cursors[side]] if cursors[side] < len(ranking) else None

    while limit is None or len(placed) < limit:
        candidates = (next_unplaced(0), next_unplaced(1))
        if candidates[0] is None and candidates[1] is None:
            break
        if candidates[0] is None:
            side = 1
        elif candidates[1] is None:
            side = 0
        elif picks[0] != picks[1]:
            side = 0 if picks[0] < picks[1] else 1
        else:
            side = 0 if rng.random() < 0.5 else 1
        key = candidates[side]
        assert key is not None
        seen.add(key)
        placed.append(Placed(key, teams[side]))
        picks[side] += 1
    return placed


def credit(teams_shown: Sequence[str], clicked_positions: Iterable[int]) -> str | None:
    """The team that won one impression: the one whose hits got more clicks. A hit clicked
    twice counts once; equal counts (none at all included) are a tie: None.

    ``teams_shown[i]`` is the team of the hit shown at position ``i`` (0-based), and
    ``clicked_positions`` are positions in that list."""
    clicked = set(clicked_positions)
    outside = [p for p in clicked if not 0 <= p < len(teams_shown)]
    if outside:
        raise ValueError(f"clicked positions {sorted(outside)} are not among the shown hits")
    counts = Counter(teams_shown[p] for p in clicked).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]
