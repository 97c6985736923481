"""Scoring many documents against one shared prompt prefix, computed once.

Every pair of a request starts with the same ids (system message, instruction, query): the
*prefix*. Plain scoring runs that prefix through the network once per document. Here it runs
once; its key/value cache is then shared by the documents (each document's *suffix*: its own
tokens and the fixed end of the prompt), and each document attends to the prefix and to its
own tokens only, so its last position, where the score is read, sees exactly what it sees in the
plain pair. Two layouts for the suffixes:

- ``padded``: a batch of suffixes, right-padded, against the prefix cache repeated per row;
- ``packed``: suffixes concatenated into one sequence with per-document positions (prefix
  length + 0, 1, ...) and a block-diagonal causal mask that also opens the prefix to every
  token, so a pack costs the sum of its lengths, not longest × count.

The pure layout functions are here; the model classes run them (``Qwen3TextReranker``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIN_SHARED_PREFIX = 16
"""Shorter prefixes are not worth a separate pass (every Qwen3 prompt's system message alone is
longer)."""
MIN_GROUP = 2
"""A prefix shared by fewer pairs runs as plain pairs: one pair gains nothing (bench/scoring.py
measures the crossover)."""


@dataclass(frozen=True)
class PackLayout:
    """One packed sequence of suffixes after a prefix of ``prefix_len`` tokens."""

    position_ids: torch.Tensor  # (1, T): prefix_len + the token's place in its own document
    mask: torch.Tensor  # (1, 1, T, prefix_len + T) bool, True where a token may attend
    last: torch.Tensor  # (n,): each document's last token in the pack


def pack_layout(prefix_len: int, lengths: Sequence[int]) -> PackLayout:
    """Positions, attention mask and last-token indices of ``lengths`` packed in order."""
    total = sum(lengths)
    doc_of = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(list(lengths)))
    starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
    offset = torch.arange(total) - starts[doc_of]
    same_doc = doc_of[:, None] == doc_of[None, :]
    causal = torch.arange(total)[:, None] >= torch.arange(total)[None, :]
    own = same_doc & causal
    prefix = torch.ones((total, prefix_len), dtype=torch.bool)
    mask = torch.cat([prefix, own], dim=1)[None, None]
    last = starts + torch.tensor(list(lengths)) - 1
    return PackLayout((prefix_len + offset)[None], mask, last)


def plan_packs(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into packs of at most ``token_budget`` real tokens (a longer document
    goes alone), in order."""
    packs: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, length in enumerate(lengths):
        if current and used + length > token_budget:
            packs.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    if current:
        packs.append(current)
    return packs


def group_by_prefix(
    prefixes: Sequence[tuple[int, ...] | None], min_group: int = MIN_GROUP
) -> tuple[dict[tuple[int, ...], list[int]], list[int]]:
    """Batch positions grouped by their shared prefix (groups of at least ``min_group``), and
    the positions scored as plain pairs."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, prefix in enumerate(prefixes):
        if prefix is not None:
            groups.setdefault(prefix, []).append(position)
    plain = [p for p, prefix in enumerate(prefixes) if prefix is None]
    for prefix in [k for k, members in groups.items() if len(members) < min_group]:
        plain.extend(groups.pop(prefix))
    return groups, sorted(plain)


__all__ = [
    "MIN_GROUP",
    "MIN_SHARED_PREFIX",
    "PackLayout",
    "group_by_prefix",
    "pack_layout",
    "plan_packs",
]
