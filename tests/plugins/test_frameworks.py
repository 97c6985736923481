"""The LangChain, LlamaIndex and Haystack plugins rerank real documents through a running
sidecar, a real Redis and a real worker; their order and scores equal load_scorer's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import API_KEY

QUERY = "red running shoes"
TEXTS = [
    "a warm wool scarf in grey",
    "lightweight red running shoes for trail",
    "blue waterproof rain jacket",
    "red shoes with a cushioned sole for road running",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def expected(tiny_scorers: dict[str, Any]) -> list[tuple[int, float]]:
    scores = tiny_scorers["tiny-text"].score({"text": QUERY}, [{"text": t} for t in TEXTS])
    return sorted(((i, s) for i, s in enumerate(scores) if s is not None), key=lambda p: -p[1])


def test_langchain_compressor(sidecar_api: str, expected: list[tuple[int, float]]) -> None:
    from langchain_core.documents import Document

    from plugins.langchain import RerankSidecarCompressor

    compressor = RerankSidecarCompressor(
        base_url=sidecar_api, api_key=API_KEY, model="tiny-text", top_n=2
    )
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    out = compressor.compress_documents(docs, QUERY)
    assert [d.metadata["n"] for d in out] == [i for i, _ in expected[:2]]
    for doc, (_, score) in zip(out, expected, strict=False):
        assert doc.metadata["relevance_score"] == pytest.approx(score, abs=TOLERANCE)


def test_llamaindex_postprocessor(sidecar_api: str, expected: list[tuple[int, float]]) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from plugins.llamaindex import RerankSidecarPostprocessor

    post = RerankSidecarPostprocessor(
        base_url=sidecar_api, api_key=API_KEY, model="tiny-text", top_n=3
    )
    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=str(i)), score=0.0) for i, t in enumerate(TEXTS)
    ]
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    assert [n.node.node_id for n in out] == [str(i) for i, _ in expected[:3]]
    for node, (_, score) in zip(out, expected, strict=False):
        assert node.score == pytest.approx(score, abs=TOLERANCE)


def test_haystack_ranker(sidecar_api: str, expected: list[tuple[int, float]]) -> None:
    from haystack import Document, Pipeline

    from plugins.haystack import RerankSidecarRanker

    pipeline = Pipeline()
    pipeline.add_component(
        "ranker", RerankSidecarRanker(base_url=sidecar_api, api_key=API_KEY, model="tiny-text")
    )
    docs = [Document(content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    out = pipeline.run({"ranker": {"query": QUERY, "documents": docs, "top_k": 4}})["ranker"][
        "documents"
    ]
    assert [d.id for d in out] == [str(i) for i, _ in expected]
    for doc, (_, score) in zip(out, expected, strict=True):
        assert doc.score == pytest.approx(score, abs=TOLERANCE)


def test_plugins_report_api_errors(sidecar_api: str) -> None:
    from plugins.client import RerankApiError, RerankClient

    with pytest.raises(RerankApiError, match="401"):
        RerankClient(sidecar_api, api_key="wrong").rerank(QUERY, TEXTS)
    with pytest.raises(RerankApiError, match="not served"):
        RerankClient(sidecar_api, api_key=API_KEY, model="nope").rerank(QUERY, TEXTS)
