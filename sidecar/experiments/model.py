"""An experiment: which searches it applies to, its variants, how users are split between them.

A variant is a rerank profile, a model with options (any profile key), or ``off`` (the
engine's own order). Traffic is split by weight (A/B/n), or two variants are interleaved in one
result list (``interleave: [A, B]``). The revision is a hash of what users see (variants,
weights, interleaving): change a running experiment's variants and its searches log a new
revision, so analysis never mixes two versions of one experiment.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from sidecar.search.options import Profile

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
KEY_SOURCES = ("header:", "cookie:", "ext.rerank.user", "ubi.client_id")


class ExperimentVariant(BaseModel):
    """One arm: exactly one of ``profile``, ``model`` (with ``options``), or ``off: true``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    profile: str | None = None
    model: str | None = None
    options: Profile | None = None
    """Profile keys for a ``model`` variant (window, instruction, fields, combine...)."""
    off: bool = False
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_kind(self) -> ExperimentVariant:
        kinds = [self.profile is not None, self.model is not None, self.off]
        if sum(kinds) != 1:
            raise ValueError(f"variant {self.name!r}: give exactly one of profile, model or off")
        if self.options is not None and self.model is None:
            raise ValueError(f"variant {self.name!r}: options go with a model")
        if self.options is not None and self.options.model is not None:
            raise ValueError(f"variant {self.name!r}: options.model: name the model in model")
        return self

    def ext_rerank(self) -> dict[str, Any]:
        """What this variant puts in a search's ``ext.rerank``."""
        if self.off:
            return {"enabled": False}
        if self.profile is not None:
            return {"profile": self.profile}
        options = self.options.model_dump(exclude_none=True) if self.options else {}
        return {**options, "model": self.model}


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    indices: list[str] = Field(min_length=1)
    """Index names or patterns (``products*``) whose searches take part."""
    variants: list[ExperimentVariant] = Field(min_length=1)
    interleave: list[str] | None = None
    """Two variant names: every search shows a team-draft interleaving of both."""
    key: list[str] = Field(default_factory=lambda: ["header:X-User-Id"])
    """Where a user's assignment key is read, first found wins: ``header:NAME``,
    ``cookie:NAME``, ``ext.rerank.user``, ``ubi.client_id`` (``ext.ubi.client_id``)."""
    salt: str | None = None
    """Hashed with the key; a new salt reshuffles users. Unset: the experiment's name."""
    start: datetime | None = None
    stop: datetime | None = None
    enabled: bool = True
    application: str | None = None
    """UBI ``application`` of its searches. Unset: ``ubi.application``."""

    @field_validator("key", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        for source in value:
            if not any(
                source == s or (s.endswith(":") and source.startswith(s) and len(source) > len(s))
                for s in KEY_SOURCES
            ):
                raise ValueError(
                    f"key {source!r}: use header:NAME, cookie:NAME, ext.rerank.user or "
                    "ubi.client_id"
                )
        return value

    @field_validator("start", "stop")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r}: variant names repeat: {names}")
        if self.interleave is not None:
            if len(self.interleave) != 2 or len(set(self.interleave)) != 2:
                raise ValueError(
                    f"experiment {self.name!r}: interleave takes exactly two different variants"
                )
            unknown = [n for n in self.interleave if n not in names]
            if unknown:
                raise ValueError(f"experiment {self.name!r}: interleave names unknown {unknown}")
        else:
            if len(self.variants) < 2:
                raise ValueError(f"experiment {self.name!r}: an A/B test needs two variants")
            if not sum(v.weight for v in self.variants) > 0:
                raise ValueError(f"experiment {self.name!r}: the weights must sum to more than 0")
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError(f"experiment {self.name!r}: stop is not after start")
        return self

    @property
    def revision(self) -> str:
        """A hash of what the users see: variants, weights and the interleaving."""
        seen = {
            "variants": [v.model_dump(mode="json", exclude_none=True) for v in self.variants],
            "interleave": self.interleave,
        }
        text = json.dumps(seen, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def seed_salt(self) -> str:
        return self.salt if self.salt is not None else self.name

    def variant(self, name: str) -> ExperimentVariant:
        return next(v for v in self.variants if v.name == name)

    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def active(self, now: datetime) -> bool:
        if not self.enabled:
            return False
        return (self.start is None or now >= self.start) and (self.stop is None or now < self.stop)

    def applies_to(self, names: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in self.indices)


def check_references(
    experiment: Experiment, profiles: Sequence[str], models: Sequence[str]
) -> None:
    """Every profile and model the variants name must exist (ValueError naming the first)."""
    for i, variant in enumerate(experiment.variants):
        if variant.profile is not None and variant.profile not in profiles:
            raise ValueError(
                f"variants.{i}.profile: no profile named {variant.profile!r} "
                f"(profiles: {sorted(profiles) or 'none'})"
            )
        if variant.model is not None and variant.model not in models:
            raise ValueError(f"variants.{i}.model: {variant.model!r} is not in the model registry")
