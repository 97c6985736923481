"""LangChain: a document compressor that reranks retrieved documents with rerank-sidecar.

    from plugins.langchain import RerankSidecarCompressor
    from langchain.retrievers import ContextualCompressionRetriever
    compressor = RerankSidecarCompressor(base_url="http://127.0.0.1:9280", api_key="…", top_n=5)
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=…)

Install with the ``langchain`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document

from plugins.client import RerankClient


class RerankSidecarCompressor(BaseDocumentCompressor):
    """Keeps the ``top_n`` most relevant documents, best first, with ``relevance_score`` in
    their metadata."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    instruction: str | None = None
    top_n: int | None = 3
    timeout_s: float = 60.0

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        client = RerankClient(
            self.base_url, self.api_key, self.model, self.instruction, self.timeout_s
        )
        ranked = client.rerank(query, [d.page_content for d in documents], self.top_n)
        out: list[Document] = []
        for index, score in ranked:
            original = documents[index]
            metadata: dict[str, Any] = {**original.metadata, "relevance_score": score}
            out.append(Document(page_content=original.page_content, metadata=metadata))
        return out
