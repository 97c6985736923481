"""Qwen3-Reranker-0.6B/4B/8B (text only): the official scoring, batched.

Ids = prefix + body (truncated from the end to 8192 − prefix − suffix) + suffix, each piece
tokenized on its own. Score = softmax over the last position's logits of [no, yes], the yes part;
only those two lm_head rows are computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.scoring.base import QWEN_REGEX_AS_IS, PairError, Prepared, left_pad
from workers.scoring.prompts import TEXT_DEFAULT_INSTRUCTION, TEXT_PREFIX, TEXT_SUFFIX, text_body

MAX_LENGTH = 8192


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
    ) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, padding_side="left", revision=revision, fix_mistral_regex=QWEN_REGEX_AS_IS
        )
        full = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, attn_implementation=attn_implementation, revision=revision
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
        ids = self.tokenizer.encode(text, add_special_tokens=False)
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
            encoded = self.tokenizer(
                list(bodies.values()),
                truncation="longest_first",
                max_length=room,
                return_attention_mask=False,
            )["input_ids"]
            for index, ids in zip(bodies, encoded, strict=True):
                out[index] = Prepared(self.prefix_ids + ids + self.suffix_ids)
        return out

    @torch.inference_mode()
    def forward(self, batch: Sequence[Prepared]) -> list[float]:
        inputs = {
            key: value.to(self.device) for key, value in left_pad(batch, self.pad_token_id).items()
        }
        hidden = self.backbone(**inputs).last_hidden_state[:, -1]
        logits = hidden @ self.head.T  # columns: no, yes
        # In the model's dtype, as the official code computes it.
        scores = torch.log_softmax(logits, dim=-1)[:, 1].exp()
        return [float(value) for value in scores.float().cpu().tolist()]
