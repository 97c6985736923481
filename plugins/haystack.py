"""Haystack: a ranker component that reranks documents with rerank-sidecar.

    from plugins.haystack import RerankSidecarRanker
    pipeline.add_component("ranker", RerankSidecarRanker(base_url="http://127.0.0.1:9280", top_k=5))

Install with the ``haystack`` extra.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component

from plugins.client import RerankClient


@component
class RerankSidecarRanker:
    """Returns the ``top_k`` most relevant documents, best first, with ``score`` set."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        instruction: str | None = None,
        top_k: int | None = 10,
        timeout_s: float = 60.0,
    ) -> None:
        self.client = RerankClient(base_url, api_key, model, instruction, timeout_s)
        self.top_k = top_k

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, Any]:
        if not documents:
            return {"documents": []}
        ranked = self.client.rerank(
            query, [d.content or "" for d in documents], top_k or self.top_k
        )
        return {"documents": [replace(documents[index], score=score) for index, score in ranked]}
