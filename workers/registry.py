"""Loading the registry's models once per worker process, each behind its own batcher."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workers.batcher import Batcher, BatchObserver
from workers.contract import ModelSpec
from workers.media import MediaResolver
from workers.scoring.base import RerankerModel
from workers.scoring.loading import load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    token_budget: int = 16384
    max_batch: int = 64
    media: MediaResolver = field(default_factory=MediaResolver)


def warm_up(model: RerankerModel) -> None:
    """One real forward pass at start, so the first request pays no lazy initialisation."""
    prepared = model.prepare(
        model.resolve({"text": "warm up"}), model.resolve({"text": "ok"}), None
    )
    model.forward([prepared])


def load_batchers(
    registry: Mapping[str, ModelSpec],
    names: Sequence[str],
    options: LoadOptions,
    observers: Mapping[str, BatchObserver] | None = None,
) -> dict[str, Batcher]:
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ValueError(
            f"unknown model(s) {', '.join(unknown)}; the registry has {', '.join(registry)}"
        )
    batchers: dict[str, Batcher] = {}
    for name in names:
        log.info("loading model %s from %s", name, registry[name].path)
        model = load_model(registry[name], options.media)
        warm_up(model)
        batchers[name] = Batcher(
            model,
            token_budget=options.token_budget,
            max_batch=options.max_batch,
            observer=(observers or {}).get(name),
        )
    return batchers
