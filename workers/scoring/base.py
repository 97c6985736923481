"""What every reranker model offers the scorer and the batcher, and the scorer built on it.

A model has three steps (after infinity's encode_pre / encode_core / encode_post): ``prepare``
turns one (query, document) pair into token ids and vision tensors on the CPU and may fail for
that pair alone; ``forward`` runs one left-padded micro-batch through the network; scores come
back in batch order. The batcher only ever sees ``Prepared.length``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from workers.media import MediaError, MediaJob

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
    """Scores a query against documents in token-budgeted micro-batches.

    Example::

        scorer = load_scorer("Qwen/Qwen3-VL-Reranker-2B", device="cuda", dtype="bfloat16")
        scorer.score({"text": "red shoes"}, [{"text": "red running shoes"}, {"image": "a.png"}])
    """

    model: RerankerModel
    token_budget: int = 16384
    """Padded tokens per forward pass (longest pair × pairs). Example: 16384."""
    max_batch: int = 64

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
        scores: list[float | None] = [None] * len(documents)
        errors: list[tuple[int, str]] = []
        media = getattr(self.model, "media", None)
        job = MediaJob.for_limits(getattr(media, "limits", None), deadline=None)
        try:
            with job.active(copies=len(documents)):
                resolved_query = self.model.resolve(query)
        except (MediaError, PairError) as exc:
            reason = f"query: {exc}"
            return ScoreOutcome(scores, [(i, reason) for i in range(len(documents))])
        documents = [cut_document(self.model, d, max_doc_tokens) for d in documents]
        prepared: dict[int, Prepared] = {}
        prepared_all = self._prepare_all(resolved_query, documents, instruction, job)
        for index, item in enumerate(prepared_all):
            if isinstance(item, Prepared):
                prepared[index] = item
            else:
                errors.append((index, str(item)))
        indices = list(prepared)
        lengths = [prepared[i].length for i in indices]
        for batch in plan_batches(lengths, self.token_budget, self.max_batch):
            members = [indices[position] for position in batch]
            for index, value in zip(
                members, self.model.forward([prepared[i] for i in members]), strict=True
            ):
                scores[index] = value
        tokens = sum(p.length for i, p in prepared.items() if scores[i] is not None)
        return ScoreOutcome(scores, sorted(errors), tokens)

    def _prepare_all(
        self,
        query: Mapping[str, Any],
        documents: Sequence[Mapping[str, Any]],
        instruction: str | None,
        job: MediaJob,
    ) -> list[Prepared | MediaError | PairError]:
        prepare_many = getattr(self.model, "prepare_many", None)
        if prepare_many is not None:  # text models tokenize the whole request in one call
            return list(prepare_many(query, documents, instruction))
        out: list[Prepared | MediaError | PairError] = []
        for document in documents:
            try:
                with job.active():
                    resolved = self.model.resolve(document)
                    out.append(self.model.prepare(query, resolved, instruction))
            except (MediaError, PairError) as exc:
                out.append(exc)
        return out
