"""Documents go into the real engines and come back out through the official clients."""

from __future__ import annotations

import pytest

from tests.conftest import EngineHandle

ENGINES = ["opensearch", "elasticsearch", "opensearch3", "elasticsearch9"]

PRODUCTS = [
    {"title": "red running shoes", "description": "light trail runner", "image_url": "a.png"},
    {"title": "blue rain jacket", "description": "waterproof shell", "image_url": "b.png"},
    {"title": "red wool scarf", "description": "warm winter scarf", "image_url": "c.png"},
]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    return handle


def _index(engine: EngineHandle, name: str) -> None:
    client = engine.client
    if engine.name.startswith("opensearch"):
        client.indices.create(index=name, body={"settings": {"number_of_replicas": 0}})
        for i, doc in enumerate(PRODUCTS):
            client.index(index=name, id=str(i), body=doc)
    else:
        client.indices.create(index=name, settings={"number_of_replicas": 0})
        for i, doc in enumerate(PRODUCTS):
            client.index(index=name, id=str(i), document=doc)
    client.indices.refresh(index=name)


def _search(engine: EngineHandle, name: str, query: dict[str, object]) -> dict[str, object]:
    if engine.name.startswith("opensearch"):
        return dict(engine.client.search(index=name, body={"query": query}))
    return dict(engine.client.search(index=name, query=query))


def test_indexed_documents_are_searchable(
    engine: EngineHandle, request: pytest.FixtureRequest
) -> None:
    index = f"products-{request.node.callspec.id}"
    _index(engine, index)
    result = _search(engine, index, {"match": {"title": "red"}})
    hits = result["hits"]
    assert isinstance(hits, dict)
    assert hits["total"]["value"] == 2
    assert {hit["_source"]["title"] for hit in hits["hits"]} == {
        "red running shoes",
        "red wool scarf",
    }
    assert all(hit["_score"] > 0 for hit in hits["hits"])


def test_engine_reports_its_flavor_and_version(engine: EngineHandle) -> None:
    health = engine.client.cluster.health()
    assert health["status"] == "green"
    assert health["number_of_nodes"] == 1
    nodes = engine.client.nodes.info()
    (node,) = nodes["nodes"].values()
    expected_major = {
        "opensearch": "2.",
        "opensearch3": "3.",
        "elasticsearch": "8.",
        "elasticsearch9": "9.",
    }[engine.name]
    assert node["version"].startswith(expected_major)


@pytest.mark.parametrize("name", ["elasticsearch", "elasticsearch9"])
def test_elasticsearch_marks_responses_with_its_product_header(
    name: str, request: pytest.FixtureRequest
) -> None:
    # The official client refuses a 2xx response without this header; later, the proxy must keep it.
    elasticsearch: EngineHandle = request.getfixturevalue(name)
    response = elasticsearch.client.perform_request("GET", "/_cluster/health")
    assert response.meta.headers.get("X-Elastic-Product") == "Elasticsearch"


def test_elasticsearch9_serves_the_8x_client_in_compatibility_mode(
    elasticsearch9: EngineHandle,
) -> None:
    # elasticsearch-py 8 (the venv's pin) asks for compatible-with=8; Elasticsearch 9 answers in
    # that media type, so the 8.x client is the elasticsearch9 fixture's client.
    import elasticsearch

    assert elasticsearch.__versionstr__.startswith("8.")
    response = elasticsearch9.client.search(index="no-such-index-*", size=0)
    assert response.meta.headers["Content-Type"].replace(" ", "") == (
        "application/vnd.elasticsearch+json;compatible-with=8"
    )
    assert response["hits"]["total"]["value"] == 0
