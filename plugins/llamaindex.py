"""LlamaIndex: a node postprocessor that reranks retrieved nodes with rerank-sidecar.

    from plugins.llamaindex import RerankSidecarPostprocessor
    query_engine = index.as_query_engine(
        node_postprocessors=[RerankSidecarPostprocessor(base_url="http://127.0.0.1:9280", top_n=5)]
    )

Install with the ``llamaindex`` extra.
"""

from __future__ import annotations

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from plugins.client import RerankClient


class RerankSidecarPostprocessor(BaseNodePostprocessor):
    """Keeps the ``top_n`` most relevant nodes, best first, their score set to the reranker's."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    instruction: str | None = None
    top_n: int | None = 3
    timeout_s: float = 60.0

    @classmethod
    def class_name(cls) -> str:
        return "RerankSidecarPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("RerankSidecarPostprocessor needs the query (query_bundle)")
        if not nodes:
            return []
        client = RerankClient(
            self.base_url, self.api_key, self.model, self.instruction, self.timeout_s
        )
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        ranked = client.rerank(query_bundle.query_str, texts, self.top_n)
        return [NodeWithScore(node=nodes[index].node, score=score) for index, score in ranked]
