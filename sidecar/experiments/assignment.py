"""Which variant a search gets: a hash of the user's key and the experiment's salt, so a user
keeps their variant in every sidecar process and across restarts, with no shared state."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.experiments.model import Experiment
from sidecar.experiments.records import ASSIGNED_AT_RANDOM, ASSIGNED_BY_KEY, INTERLEAVE

MAX_KEY_CHARS = 256
_random = random.SystemRandom()


@dataclass(frozen=True)
class Assignment:
    experiment: Experiment
    variant: str  # a variant's name, or INTERLEAVE
    key: str | None  # the user's key; None: assigned for this request alone

    @property
    def how(self) -> str:
        return ASSIGNED_BY_KEY if self.key is not None else ASSIGNED_AT_RANDOM


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:MAX_KEY_CHARS] if value else None


def read_key(
    sources: Sequence[str],
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    body: Mapping[str, Any],
) -> str | None:
    """The first assignment key found among ``sources`` (see ``Experiment.key``)."""
    raw_ext = body.get("ext")
    ext: Mapping[str, Any] = raw_ext if isinstance(raw_ext, dict) else {}
    for source in sources:
        value: Any = None
        if source.startswith("header:"):
            value = headers.get(source.removeprefix("header:"))
        elif source.startswith("cookie:"):
            value = cookies.get(source.removeprefix("cookie:"))
        elif source == "ext.rerank.user":
            rerank = ext.get("rerank")
            value = rerank.get("user") if isinstance(rerank, dict) else None
        elif source == "ubi.client_id":
            ubi = ext.get("ubi")
            value = ubi.get("client_id") if isinstance(ubi, dict) else None
        if (found := _clean(value)) is not None:
            return found
    return None


def bucket(salt: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by ``salt`` and ``key``."""
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(weights: Sequence[tuple[str, float]], point: float) -> str:
    """The variant whose share of the weights' sum holds ``point`` (in [0, 1))."""
    total = sum(w for _, w in weights)
    edge = 0.0
    for name, weight in weights:
        edge += weight / total
        if point < edge and weight > 0:
            return name
    return next(name for name, weight in reversed(weights) if weight > 0)


def assign(experiment: Experiment, key: str | None) -> Assignment:
    if experiment.interleave is not None:
        return Assignment(experiment, INTERLEAVE, key)
    point = bucket(experiment.seed_salt, key) if key is not None else _random.random()
    weights = [(v.name, v.weight) for v in experiment.variants]
    return Assignment(experiment, pick(weights, point), key)
