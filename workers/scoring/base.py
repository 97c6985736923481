"""What every reranker model offers the scorer and the batcher, and the scorer built on it.

A model has three steps (after infinity's encode_pre / encode_core / encode_post): ``prepare``
turns one (query, document) pair into token ids and vision tensors on the CPU and may fail for
that pair alone; ``forward`` runs one left-padded micro-batch through the network; scores come
back in batch order. The batcher only ever sees ``Prepared.length``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

QWEN_REGEX_AS_IS = False
"""``fix_mistral_regex`` for the Qwen tokenizers: keep their pre-tokenizer as it is (the default).
transformers 4.57.3 warns that a tokenizer "has an incorrect regex pattern" for every local
checkpoint saved by 4.57.3 itself (the tiny test models, and any checkpoint re-saved locally),
whatever its family; the regex fix concerns Mistral tokenizers only. Saying so explicitly
silences the spurious warning and changes no token."""


class PairError(ValueError):
    """One pair cannot be scored; the message is the reason the caller sees."""


@dataclass
class Prepared:
    """One pair, ready for the network."""

    input_ids: list[int]
    vision: dict[str, torch.Tensor] = field(default_factory=dict)
    prefix_len: int = 0
    """How many leading ids every pair of its request shares (system message, instruction,
    query): the model may compute them once for all (``workers.scoring.shared_prefix``). 0: none
    known."""
    prefix_key: Hashable | None = None
    """What the shared prefix is, for grouping: pairs with equal keys compute the same prefix
    (its ids, and for vision models a digest of its vision inputs). None: run as a plain pair."""

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class ScoreOutcome:
    """Scores in document order (None where a document failed) and the reasons for failures."""

    scores: list[float | None]
    errors: list[tuple[int, str]]
    tokens: int = 0
    """Tokens of the pairs that were scored (vision placeholders included, padding excluded)."""


class RerankerModel(Protocol):
    kind: str
    pad_token_id: int
    default_instruction: str

    def resolve(self, side: Mapping[str, Any]) -> dict[str, Any]:
        """Resolve a query's or document's media (raises MediaError)."""
        ...

    def prepare(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> Prepared:
        """Resolved query and document → one prepared pair (raises PairError)."""
        ...

    def forward(self, batch: Sequence[Prepared]) -> list[float]: ...

    def truncate_text(self, text: str, max_tokens: int) -> str:
        """The first ``max_tokens`` tokens of ``text``, as text."""
        ...


def cut_document(
    model: RerankerModel, document: Mapping[str, Any], max_tokens: int | None
) -> Mapping[str, Any]:
    """``document`` with its text cut to ``max_tokens`` tokens (media untouched)."""
    text = document.get("text")
    if not max_tokens or text is None:
        return document
    if isinstance(text, list):
        text = "\n".join(str(part) for part in text)
    return {**document, "text": model.truncate_text(str(text), max_tokens)}


def plan_batches(lengths: Sequence[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Group item indices into micro-batches, shortest first, so that each batch's padded cost
    (longest × count) stays within ``token_budget``; an item longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so this item is the longest of the batch if it joins.
        if current and (
            lengths[index] * (len(current) + 1) > token_budget or len(current) >= max_batch
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def left_pad(batch: Sequence[Prepared], pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask, padded on the left to the longest pair."""
    longest = max(item.length for item in batch)
    ids = torch.full((len(batch), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, longest - item.length :] = torch.tensor(item.input_ids, dtype=torch.long)
        mask[row, longest - item.length :] = 1
    return {"input_ids": ids, "attention_mask": mask}


@dataclass
class Scorer:
    """Scores a query against documents in token-budgeted micro-batches: the in-process API.

    It runs the same path as a worker's jobs (``workers.batcher.Batcher``: resolve the query,
    prepare every document, collect per-document errors, batch across calls), on a batcher of
    its own started at the first call, so scores and errors are the worker's by construction.

    Example::

        scorer = load_scorer("Qwen/Qwen3-VL-Reranker-2B", device="cuda", dtype="bfloat16")
        scorer.score({"text": "red shoes"}, [{"text": "red running shoes"}, {"image": "a.png"}])
    """

    model: RerankerModel
    token_budget: int = 16384
    """Padded tokens per forward pass (longest pair × pairs). Example: 16384."""
    max_batch: int = 64
    _batcher: Any = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)  # fmt: skip

    def score(
        self,
        query: Mapping[str, Any],
        documents: Sequence[Mapping[str, Any]],
        instruction: str | None = None,
        max_doc_tokens: int | None = None,
    ) -> list[float | None]:
        """One relevance probability per document; None where the document failed (see
        ``score_with_errors`` for the reasons). ``max_doc_tokens`` cuts each document's text."""
        return self.score_with_errors(query, documents, instruction, max_doc_tokens).scores

    def score_with_errors(
        self,
        query: Mapping[str, Any],
        documents: Sequence[Mapping[str, Any]],
        instruction: str | None = None,
        max_doc_tokens: int | None = None,
    ) -> ScoreOutcome:
        if not documents:
            return ScoreOutcome([], [])
        outcome: ScoreOutcome = self._shared_batcher().score(
            query, documents, instruction, time.time() + NO_DEADLINE_S, max_doc_tokens
        )
        return outcome

    def close(self) -> None:
        """Stop the batcher's threads (a scorer used again starts them again)."""
        with self._lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()

    def _shared_batcher(self) -> Any:
        with self._lock:
            if self._batcher is None:
                from workers.batcher import Batcher  # the batcher builds on this module

                self._batcher = Batcher(
                    self.model, token_budget=self.token_budget, max_batch=self.max_batch
                )
            return self._batcher


NO_DEADLINE_S = 10 * 365 * 86400.0
"""The in-process API has no deadline: the batcher's is ten years away."""
