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

The layout functions and the passes over a prefix's cache are here, model-agnostic: a pass
takes each suffix's position ids (one stream for the text model, M-RoPE's three for Qwen3-VL)
and any extra inputs (the suffixes' vision tensors); the model classes run them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from workers.scoring.segment_attention import Segments, pack_mask_placeholder

MIN_SHARED_PREFIX = 16
"""Shorter prefixes are not worth a separate pass (every Qwen3 prompt's system message alone is
longer)."""
MIN_GROUP = 3
"""A prefix shared by fewer pairs runs as plain pairs. At the real 0.6B size on CPU one pair is
20-25% slower shared (the prefix's pass is extra); two pairs were 6% slower on one machine and
9-16% faster on another, and break even with 512-token documents; from three on, sharing paid
in every run (bench/scoring.py --threshold, decision 0014)."""


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
    prefixes: Sequence[Hashable | None], min_group: int = MIN_GROUP
) -> tuple[dict[Hashable, list[int]], list[int]]:
    """Batch positions grouped by their shared prefix's key (groups of at least ``min_group``),
    and the positions scored as plain pairs."""
    groups: dict[Hashable, list[int]] = {}
    for position, prefix in enumerate(prefixes):
        if prefix is not None:
            groups.setdefault(prefix, []).append(position)
    plain = [p for p, prefix in enumerate(prefixes) if prefix is None]
    for prefix in [k for k, members in groups.items() if len(members) < min_group]:
        plain.extend(groups.pop(prefix))
    return groups, sorted(plain)


def score_by_prefix(
    batch: Sequence[Any],
    plain: Callable[[Sequence[Any]], list[float]],
    shared: Callable[[Sequence[Any]], list[float]],
    min_group: int = MIN_GROUP,
) -> list[float]:
    """Scores of a batch of prepared pairs in batch order: each group of one ``prefix_key`` by
    ``shared``, the rest together by ``plain``."""
    groups, alone = group_by_prefix([p.prefix_key for p in batch], min_group)
    scores = [0.0] * len(batch)
    runs = [(members, shared) for members in groups.values()]
    if alone:
        runs.append((alone, plain))
    for members, run in runs:
        for position, value in zip(members, run([batch[i] for i in members]), strict=True):
            scores[position] = value
    return scores


def _position_ids(parts: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(streams, rows, length) → what the model takes: (rows, length) for one stream."""
    stacked = torch.stack(list(parts), dim=1).to(device)
    return stacked[0] if stacked.shape[0] == 1 else stacked


def run_prefix(
    backbone: Any, prefix: Sequence[int], positions: torch.Tensor, **extra: Any
) -> DynamicCache:
    """The prefix's pass: its key/value cache. ``positions``: (streams, prefix length)."""
    cache = DynamicCache()
    device = backbone.device
    backbone(
        input_ids=torch.tensor([list(prefix)], device=device),
        position_ids=_position_ids([positions], device),
        past_key_values=cache,
        use_cache=True,
        **extra,
    )
    return cache


def padded_pass(
    backbone: Any,
    cache: DynamicCache,
    prefix_len: int,
    suffixes: Sequence[Sequence[int]],
    positions: Sequence[torch.Tensor],
    pad_token_id: int,
    **extra: Any,
) -> torch.Tensor:
    """The last hidden state of each suffix, run right-padded against the prefix's cache
    repeated per row. ``positions[i]``: (streams, len(suffixes[i]))."""
    device = backbone.device
    rows, longest = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.full((rows, longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, prefix_len + longest), dtype=torch.long)
    mask[:, :prefix_len] = 1
    padded_positions = []
    for row, (suffix, own) in enumerate(zip(suffixes, positions, strict=True)):
        ids[row, : len(suffix)] = torch.tensor(list(suffix), dtype=torch.long)
        mask[row, prefix_len : prefix_len + len(suffix)] = 1
        # A pad's position is never attended to (its key is masked) nor read.
        tail = own[:, -1:] + torch.arange(1, longest - len(suffix) + 1)
        padded_positions.append(torch.cat([own, tail], dim=1))
    batch_cache = DynamicCache()
    for index, layer in enumerate(cache.layers):
        keys, values = layer.keys, layer.values
        assert keys is not None and values is not None  # filled by the prefix's pass
        batch_cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index)
    out = backbone(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=_position_ids(padded_positions, device),
        past_key_values=batch_cache,
        use_cache=True,
        cache_position=torch.arange(prefix_len, prefix_len + longest, device=device),
        **extra,
    )
    last = torch.tensor([len(s) - 1 for s in suffixes], device=device)
    hidden: torch.Tensor = out.last_hidden_state[torch.arange(rows, device=device), last]
    return hidden


def packed_pass(
    backbone: Any,
    cache: DynamicCache,
    prefix_len: int,
    suffixes: Sequence[Sequence[int]],
    positions: Sequence[torch.Tensor],
    segmented: bool,
    **extra: Any,
) -> torch.Tensor:
    """The last hidden state of each suffix, packed into one sequence after the prefix's cache
    (cropped back to the prefix afterwards). ``segmented``: the model's attention reads the
    pack's ``Segments`` (``workers.scoring.segment_attention``) instead of a dense mask."""
    device = backbone.device
    lengths = [len(s) for s in suffixes]
    layout = pack_layout(prefix_len, lengths)
    tokens = torch.tensor([[t for s in suffixes for t in s]], device=device)
    total = tokens.shape[1]
    attention: dict[str, Any] = {"attention_mask": layout.mask.to(device)}
    if segmented:
        segments = Segments(prefix_len, tuple(lengths))
        attention = {
            "attention_mask": pack_mask_placeholder(segments, device),
            "segments": segments,
        }
    out = backbone(
        input_ids=tokens,
        position_ids=_position_ids([torch.cat(list(positions), dim=1)], device),
        past_key_values=cache,
        use_cache=True,
        cache_position=torch.arange(prefix_len, prefix_len + total, device=device),
        **attention,
        **extra,
    )
    cache.crop(prefix_len)  # back to the prefix alone for the next pack
    hidden: torch.Tensor = out.last_hidden_state[0, layout.last.to(device)]
    return hidden


__all__ = [
    "MIN_GROUP",
    "MIN_SHARED_PREFIX",
    "PackLayout",
    "group_by_prefix",
    "pack_layout",
    "packed_pass",
    "padded_pass",
    "plan_packs",
    "run_prefix",
    "score_by_prefix",
]
