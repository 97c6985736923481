"""Attention over a pack of documents that share one cached prefix, computed per document.

A pack (``workers.scoring.shared_prefix``) is one sequence of documents after a shared prefix;
document *i* may attend to the prefix and to its own past only. A dense mask says exactly that,
but SDPA's CPU path and its math kernel then compute every pack × (prefix + pack) score and
throw most of them away, about as much work as the padding that packing saves. Here the
attention of a pack is computed document by document instead: each document's queries against
the prefix's keys and its own (causal, aligned to the end), so the work is what the documents
need and nothing more. On CUDA with FlashAttention-2 installed, one ``flash_attn_varlen_func``
call does the same for the whole pack (its causal mask aligns to the bottom right, which is this
layout).

It is installed as an attention implementation of its own (``segments_over(base)``): calls that
carry no ``segments`` (the prefix's pass, plain pairs) go to the base implementation unchanged,
with the base's masks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

WRAPPABLE = ("sdpa", "flash_attention_2")
"""Base implementations the segment attention can stand in front of (eager is per-model code
that the attention interface does not hold)."""


@dataclass(frozen=True)
class Segments:
    """A pack's layout for the attention: ``prefix_len`` cached tokens, then documents of
    ``lengths`` tokens, in order."""

    prefix_len: int
    lengths: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.lengths)

    def spans(self) -> list[tuple[int, int]]:
        """(start in the pack, length) of each document."""
        out, start = [], 0
        for length in self.lengths:
            out.append((start, length))
            start += length
        return out


@lru_cache(maxsize=512)
def _own_mask(prefix_len: int, length: int, device: str) -> torch.Tensor:
    """(length, prefix + length) bool: the prefix open, the document's own keys causal."""
    return torch.ones(length, prefix_len + length, dtype=torch.bool, device=device).tril(
        diagonal=prefix_len
    )


@lru_cache(maxsize=1)  # looked up once, not per layer and pass
def _flash_varlen() -> Callable[..., torch.Tensor] | None:
    if importlib.util.find_spec("flash_attn") is None:
        return None
    from flash_attn import flash_attn_varlen_func  # type: ignore[import-not-found]

    fn: Callable[..., torch.Tensor] = flash_attn_varlen_func
    return fn


def segment_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    segments: Segments,
    scaling: float | None = None,
) -> torch.Tensor:
    """Attention of a pack: query (1, heads, T, dim), key and value (1, kv_heads, prefix + T,
    dim), the prefix first. Returns (1, T, heads, dim), the layout attention functions return."""
    prefix = segments.prefix_len
    if query.is_cuda and (varlen := _flash_varlen()) is not None:
        return _flash_segments(varlen, query, key, value, segments, scaling)
    gqa = query.shape[1] != key.shape[1]
    outputs = []
    for start, length in segments.spans():
        own = slice(prefix + start, prefix + start + length)
        keys = torch.cat([key[:, :, :prefix], key[:, :, own]], dim=2)
        values = torch.cat([value[:, :, :prefix], value[:, :, own]], dim=2)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start : start + length],
                keys,
                values,
                attn_mask=_own_mask(prefix, length, str(query.device)),
                scale=scaling,
                enable_gqa=gqa,
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous()


def _flash_segments(
    varlen: Callable[..., torch.Tensor],
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    segments: Segments,
    scaling: float | None,
) -> torch.Tensor:
    """One varlen call: the keys of document i are the prefix's and its own, side by side."""
    prefix, spans = segments.prefix_len, segments.spans()
    q = query[0].transpose(0, 1)  # (T, heads, dim)
    k, v = key[0].transpose(0, 1), value[0].transpose(0, 1)  # (prefix + T, kv_heads, dim)
    keys = torch.cat([t for s, n in spans for t in (k[:prefix], k[prefix + s : prefix + s + n])])
    values = torch.cat([t for s, n in spans for t in (v[:prefix], v[prefix + s : prefix + s + n])])
    lengths = torch.tensor(segments.lengths, dtype=torch.int32, device=query.device)
    zero = torch.zeros(1, dtype=torch.int32, device=query.device)
    cu_q = torch.cat([zero, lengths.cumsum(0, dtype=torch.int32)])
    cu_k = torch.cat([zero, (lengths + prefix).cumsum(0, dtype=torch.int32)])
    out = varlen(
        q,
        keys,
        values,
        cu_seqlens_q=cu_q,
        cu_seqlens_k=cu_k,
        max_seqlen_q=max(segments.lengths),
        max_seqlen_k=prefix + max(segments.lengths),
        softmax_scale=scaling,
        causal=True,  # bottom-right aligned: each document's queries are its keys' last ones
    )
    return out[None]  # (1, T, heads, dim)


def segments_over(base: str) -> str | None:
    """The name of the segment attention standing in front of ``base`` (registered on first
    use), or None where ``base`` cannot be wrapped."""
    if base not in WRAPPABLE:
        return None
    name = f"rerank_segments_{base}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        delegate = ALL_ATTENTION_FUNCTIONS[base]

        def attention(
            module: torch.nn.Module,
            query: torch.Tensor,
            key: torch.Tensor,
            value: torch.Tensor,
            attention_mask: torch.Tensor | None,
            *args: Any,
            segments: Segments | None = None,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, None]:
            if segments is None:
                out: tuple[torch.Tensor, None] = delegate(
                    module, query, key, value, attention_mask, *args, **kwargs
                )
                return out
            return segment_attention(query, key, value, segments, kwargs.get("scaling")), None

        AttentionInterface.register(name, attention)
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def pack_mask_placeholder(segments: Segments, device: torch.device) -> torch.Tensor:
    """A 4-D mask of the pack's shape that costs no memory: the model passes a 4-D mask through
    as it is, and the segment attention reads ``segments`` instead."""
    shape = (1, 1, segments.total, segments.prefix_len + segments.total)
    return torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device).expand(shape)


__all__ = [
    "WRAPPABLE",
    "Segments",
    "pack_mask_placeholder",
    "segment_attention",
    "segments_over",
]
