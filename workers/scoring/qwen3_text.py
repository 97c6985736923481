"""Qwen3-Reranker-0.6B/4B/8B (text only): the official scoring, batched.

Ids = prefix + body (truncated from the end to 8192 − prefix − suffix) + suffix, each piece
tokenized on its own. Score = softmax over the last position's logits of [no, yes], the yes part;
only those two lm_head rows are computed.

The pairs of one request share their first ids (the prompt's prefix and the body up to
``<Document>:``); ``layout`` decides how a batch uses that (``workers.scoring.shared_prefix``):
``packed`` (the default) computes each shared prefix once and packs the documents after it
without padding, ``padded`` computes the prefix once and pads the documents, ``plain`` runs every
pair whole, left-padded, as the official code does. All three give the same scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.scoring.base import QWEN_REGEX_AS_IS, PairError, Prepared, left_pad, plan_batches
from workers.scoring.prompts import (
    TEXT_DEFAULT_INSTRUCTION,
    TEXT_PREFIX,
    TEXT_SUFFIX,
    text_body,
    text_head,
)
from workers.scoring.segment_attention import segments_over
from workers.scoring.shared_prefix import (
    MIN_GROUP,
    MIN_SHARED_PREFIX,
    packed_pass,
    padded_pass,
    plan_packs,
    run_prefix,
    score_by_prefix,
)

MAX_LENGTH = 8192
Layout = Literal["plain", "padded", "packed"]
PACK_TOKENS = 2048
"""Real tokens per packed forward pass after a shared prefix. The attention mask of a pack is
dense (T × (prefix + T)), so SDPA's CPU path materializes that many scores per head: 2048 keeps
it to a few hundred MB."""


def _text_of(side: Mapping[str, Any], what: str) -> str:
    text = side.get("text")
    if isinstance(text, list):
        text = "\n".join(str(part) for part in text)
    if text is None:
        media = [k for k in ("image", "video") if side.get(k) is not None]
        has = f" (it has {' and '.join(media)} only)" if media else ""
        raise PairError(f"{what} has no text{has}; Qwen3-Reranker scores text only")
    return str(text)


class Qwen3TextReranker:
    kind = "qwen3"

    def __init__(
        self,
        path: str,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        attn_implementation: str = "sdpa",
        max_length: int = MAX_LENGTH,
        default_instruction: str = TEXT_DEFAULT_INSTRUCTION,
        revision: str | None = None,
        layout: Layout = "packed",
        pack_tokens: int = PACK_TOKENS,
    ) -> None:
        self.layout: Layout = layout
        self.pack_tokens = pack_tokens
        self.min_group = MIN_GROUP
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, padding_side="left", revision=revision, fix_mistral_regex=QWEN_REGEX_AS_IS
        )
        # Packs attend document by document (workers.scoring.segment_attention) where the
        # requested implementation can be wrapped; elsewhere through a dense mask.
        segmented = segments_over(attn_implementation) if layout == "packed" else None
        self.segmented = segmented is not None
        full = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            attn_implementation=segmented or attn_implementation,
            revision=revision,
        )
        yes = self.tokenizer.convert_tokens_to_ids("yes")
        no = self.tokenizer.convert_tokens_to_ids("no")
        # Rows [no, yes] of lm_head: the only logits the score needs.
        self.head = full.lm_head.weight.detach()[[no, yes]].clone().to(device)
        self.backbone = full.model.to(device).eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.default_instruction = default_instruction
        self.pad_token_id: int = self.tokenizer.pad_token_id
        self.prefix_ids: list[int] = self.tokenizer.encode(TEXT_PREFIX, add_special_tokens=False)
        self.suffix_ids: list[int] = self.tokenizer.encode(TEXT_SUFFIX, add_special_tokens=False)

    def resolve(self, side: Mapping[str, Any]) -> dict[str, Any]:
        return dict(side)

    def truncate_text(self, text: str, max_tokens: int) -> str:
        room = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        # prepare_many's truncation settings: see there (the tokenizer is shared by threads).
        (ids,) = self.tokenizer(
            [text], truncation="longest_first", max_length=room, return_attention_mask=False
        )["input_ids"]
        return text if len(ids) <= max_tokens else str(self.tokenizer.decode(ids[:max_tokens]))

    def body(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> str:
        if instruction is None:
            instruction = self.default_instruction
        return text_body(_text_of(query, "query"), _text_of(document, "document"), instruction)

    def prepare(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> Prepared:
        (prepared,) = self.prepare_many(query, [document], instruction)
        if isinstance(prepared, PairError):
            raise prepared
        return prepared

    def prepare_many(
        self,
        query: Mapping[str, Any],
        documents: Sequence[Mapping[str, Any]],
        instruction: str | None,
    ) -> list[Prepared | PairError]:
        """Prepare many pairs with one call into the Rust tokenizer, which encodes a list in
        parallel; a document without text gets its PairError in its place."""
        bodies: dict[int, str] = {}
        out: list[Prepared | PairError] = []
        for index, document in enumerate(documents):
            try:
                bodies[index] = self.body(query, document, instruction)
                out.append(Prepared([]))
            except PairError as exc:
                out.append(exc)
        if bodies:
            room = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
            used = self.default_instruction if instruction is None else instruction
            head = text_head(_text_of(query, "query"), used)
            # One call with the same truncation settings as every other: the Rust tokenizer is
            # shared by the worker's threads, and a call with other settings would change them
            # under a concurrent one ("Already borrowed").
            shared, *encoded = self.tokenizer(
                [head, *bodies.values()],
                truncation="longest_first",
                max_length=room,
                return_attention_mask=False,
            )["input_ids"]
            for index, ids in zip(bodies, encoded, strict=True):
                # The shared part is only claimed where the ids really start with it (a
                # truncation that cut into it, or a tokenizer that merged across it, keeps 0).
                known = len(ids) > len(shared) and ids[: len(shared)] == shared
                prefix_len = len(self.prefix_ids) + len(shared) if known else 0
                full = self.prefix_ids + ids + self.suffix_ids
                worth = MIN_SHARED_PREFIX <= prefix_len < len(full)
                out[index] = Prepared(
                    full,
                    prefix_len=prefix_len if worth else 0,
                    prefix_key=tuple(full[:prefix_len]) if worth else None,
                )
        return out

    def forward(self, batch: Sequence[Prepared]) -> list[float]:
        if self.layout == "plain":
            return self._forward_plain(batch)
        return score_by_prefix(batch, self._forward_plain, self._forward_shared, self.min_group)

    def _scores(self, hidden: torch.Tensor) -> list[float]:
        logits = hidden @ self.head.T  # columns: no, yes
        # In the model's dtype, as the official code computes it.
        scores = torch.log_softmax(logits, dim=-1)[:, 1].exp()
        return [float(value) for value in scores.float().cpu().tolist()]

    @torch.inference_mode()
    def _forward_plain(self, batch: Sequence[Prepared]) -> list[float]:
        inputs = {
            key: value.to(self.device) for key, value in left_pad(batch, self.pad_token_id).items()
        }
        return self._scores(self.backbone(**inputs).last_hidden_state[:, -1])

    @torch.inference_mode()
    def _forward_shared(self, pairs: Sequence[Prepared]) -> list[float]:
        """Scores of pairs that share their first ``prefix_len`` ids, the prefix computed once."""
        length = pairs[0].prefix_len
        cache = run_prefix(self.backbone, pairs[0].input_ids[:length], torch.arange(length)[None])
        suffixes = [p.input_ids[length:] for p in pairs]
        lengths = [len(s) for s in suffixes]
        scores = [0.0] * len(suffixes)
        if self.layout == "packed":
            groups = plan_packs(lengths, self.pack_tokens)
        else:
            groups = plan_batches(lengths, self.pack_tokens, len(suffixes))
        for members in groups:
            chosen = [suffixes[i] for i in members]
            positions = [torch.arange(length, length + len(s))[None] for s in chosen]
            if self.layout == "packed":
                hidden = packed_pass(
                    self.backbone, cache, length, chosen, positions, self.segmented
                )
            else:
                hidden = padded_pass(
                    self.backbone, cache, length, chosen, positions, self.pad_token_id
                )
            for position, value in zip(members, self._scores(hidden), strict=True):
                scores[position] = value
        return scores
