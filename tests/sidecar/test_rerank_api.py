"""The rerank API through a real sidecar server, real Redis and a real worker."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cohere
import httpx
import pytest

from sidecar.api.rerank.protocol import RerankResponse
from tests.conftest import API_KEY
from workers.scoring import Scorer

KEY = API_KEY
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def api_url(sidecar_api: str) -> str:
    return sidecar_api


def _post(url: str, body: Any, key: str | None = KEY, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _expected_order(scores: list[float | None]) -> list[int]:
    return sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])  # type: ignore[operator]


def test_cohere_sdk_gets_sorted_results_equal_to_load_scorer(
    api_url: str, tiny_scorers: dict[str, Scorer]
) -> None:
    docs = [
        "red running shoes",
        "blue rain jacket",
        "warm wool scarf",
        "red shoes for trail running",
    ]
    with httpx.Client(timeout=120) as http:
        client = cohere.ClientV2(api_key=KEY, base_url=api_url, httpx_client=http)
        response = client.rerank(model="tiny-text", query="red shoes", documents=docs, top_n=3)
    expected = tiny_scorers["tiny-text"].score({"text": "red shoes"}, [{"text": d} for d in docs])
    assert [r.index for r in response.results] == _expected_order(expected)[:3]
    for result in response.results:
        assert result.relevance_score == pytest.approx(expected[result.index], abs=TOLERANCE)
    assert response.meta is not None and response.meta.api_version is not None
    assert response.meta.api_version.version == "2"


def test_jina_shape_with_images_and_documents_returned(
    api_url: str, tiny_scorers: dict[str, Scorer], media_dir: Path
) -> None:
    docs: list[Any] = [
        "red running shoes",
        {"image": str(media_dir / "red.png")},
        {"text": "blue", "image": str(media_dir / "blue.png")},
    ]
    status, body = _post(
        f"{api_url}/v1/rerank",
        {
            "model": "tiny-vl",
            "query": "red shoes",
            "documents": docs,
            "top_n": 3,
            "return_documents": True,
        },
    )
    assert status == 200, body
    parsed = RerankResponse.model_validate(body)
    expected = tiny_scorers["tiny-vl"].score(
        {"text": "red shoes"}, [{"text": docs[0]}, docs[1], docs[2]]
    )
    assert [r.index for r in parsed.results] == _expected_order(expected)
    by_index = {r.index: r for r in parsed.results}
    assert by_index[0].document is not None and by_index[0].document.text == "red running shoes"
    assert by_index[1].document is not None and by_index[1].document.image == docs[1]["image"]
    assert parsed.usage.total_tokens > 0
    for r in parsed.results:
        assert r.relevance_score == pytest.approx(expected[r.index], abs=TOLERANCE)


def test_vllm_content_shape_image_query_and_video(
    api_url: str, tiny_scorers: dict[str, Scorer], media_dir: Path
) -> None:
    red, clip = str(media_dir / "red.png"), str(media_dir / "clip.mp4")
    body = {
        "model": "tiny-vl",
        "query": {"content": [{"type": "image_url", "image_url": {"url": red}}]},
        "documents": [
            {"content": [{"type": "text", "text": "a red thing"}]},
            {"content": [{"type": "video_url", "video_url": {"url": clip}}]},
            {
                "content": [
                    {"type": "text", "text": "mixed"},
                    {"type": "image_url", "image_url": {"url": red}},
                ]
            },
        ],
        "top_n": 0,
        "truncate_prompt_tokens": -1,  # a vLLM field we do not use: accepted and logged
    }
    status, answer = _post(f"{api_url}/rerank", body)
    assert status == 200, answer
    expected = tiny_scorers["tiny-vl"].score(
        {"image": red}, [{"text": "a red thing"}, {"video": clip}, {"text": "mixed", "image": red}]
    )
    assert [r["index"] for r in answer["results"]] == _expected_order(expected)
    for r in answer["results"]:
        assert r["relevance_score"] == pytest.approx(expected[r["index"]], abs=TOLERANCE)


def test_a_bad_document_is_reported_not_fatal(api_url: str, media_dir: Path) -> None:
    docs = ["fine", {"image": str(media_dir / "corrupt.png")}]
    status, body = _post(f"{api_url}/v1/rerank", {"query": "q", "documents": docs})
    assert status == 200, body
    assert [r["index"] for r in body["results"]] == [0]
    assert body["errors"][0]["index"] == 1
    assert "could not be decoded" in body["errors"][0]["error"]
    assert body["meta"]["warnings"][0].startswith("document 1:")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "query": "q", "documents": ["d"]}, 404, "model"),
        ({"query": "q", "documents": []}, 400, "documents"),
        ({"query": "q", "documents": ["d"], "top_n": -1}, 400, "top_n"),
        ({"query": "q", "documents": ["d"] * 51}, 400, "documents"),
        ({"query": "q", "documents": ["d", {}]}, 400, "documents[1]"),
        ({"query": {}, "documents": ["d"]}, 400, "query"),
        (
            {"query": "q", "documents": ["d", {"text": "x", "colour": "red"}]},
            400,
            "documents[1].colour",
        ),
        ({"documents": ["d"]}, 400, "query"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(
    api_url: str, body: Any, status: int, param: str
) -> None:
    got, answer = _post(f"{api_url}/v1/rerank", body)
    assert got == status, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["code"] == status
    assert answer["error"]["message"]


def test_malformed_json_and_oversized_bodies(api_url: str) -> None:
    status, body = _post(f"{api_url}/v1/rerank", None, raw=b'{"query": "q", "documents": [')
    assert status == 400 and body["error"]["param"] == "body"
    status, body = _post(f"{api_url}/v1/rerank", {"query": "q", "documents": ["x" * 300_000]})
    assert status == 413 and "200000" in body["error"]["message"]


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_requests_without_a_valid_key_get_401(api_url: str, key: str | None) -> None:
    status, body = _post(f"{api_url}/v2/rerank", {"query": "q", "documents": ["d"]}, key=key)
    assert status == 401
    assert body["error"]["type"] == "authentication_error"


def test_keys_never_reach_the_logs(api_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        _post(f"{api_url}/v1/rerank", {"query": "q", "documents": ["d"], "extra_field": 1})
        _post(f"{api_url}/v1/rerank", {"query": "q", "documents": ["d"]}, key="not-" + KEY)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "extra_field" in text  # unknown fields are logged...
    assert KEY not in text  # ...keys never are


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_real_responses_validate_against_the_openapi_document(
    api_url: str, media_dir: Path
) -> None:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    document = _get(f"{api_url}/openapi.json")
    assert document["openapi"].startswith("3.")
    registry = Registry().with_resource("urn:openapi", Resource.opaque(document))

    def validate(path: str, status: int, body: Any) -> None:
        schema = document["paths"][path]["post"]["responses"][str(status)]["content"][
            "application/json"
        ]["schema"]
        ref = schema["$ref"].replace("#/", "urn:openapi#/")
        Draft202012Validator({"$ref": ref}, registry=registry).validate(body)

    calls: list[tuple[str, Any, str | None]] = [
        (
            "/v2/rerank",
            {"model": "tiny-text", "query": "q", "documents": ["a", "b"], "top_n": 1},
            KEY,
        ),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a", {"image": str(media_dir / "red.png")}]},
            KEY,
        ),
        (
            "/rerank",
            {"query": "q", "documents": [{"content": [{"type": "text", "text": "a"}]}]},
            KEY,
        ),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a", {"image": str(media_dir / "corrupt.png")}]},
            KEY,
        ),
        ("/v1/rerank", {"query": "q", "documents": []}, KEY),
        ("/v1/rerank", {"model": "nope", "query": "q", "documents": ["a"]}, KEY),
        ("/v2/rerank", {"query": "q", "documents": ["a"]}, None),
    ]
    seen = set()
    for path, body, key in calls:
        status, answer = _post(f"{api_url}{path}", body, key=key)
        validate(path, status, answer)
        seen.add(status)
    assert seen == {200, 400, 401, 404}
    # The document is not vacuous: a wrong shape fails validation.
    with pytest.raises(Exception, match="relevance_score"):
        validate(
            "/v1/rerank",
            200,
            {
                "id": "x",
                "model": "m",
                "results": [{"index": 0}],
                "usage": {"total_tokens": 1, "prompt_tokens": 1},
                "meta": {
                    "api_version": {"version": "1"},
                    "billed_units": {"search_units": 1, "input_tokens": 1},
                },
            },
        )


def test_max_tokens_per_doc_cuts_long_documents(
    api_url: str, tiny_scorers: dict[str, Scorer]
) -> None:
    long_doc = "red running shoes with a light trail sole " * 40
    status, body = _post(
        f"{api_url}/v2/rerank",
        {
            "model": "tiny-text",
            "query": "red shoes",
            "documents": [long_doc],
            "max_tokens_per_doc": 6,
        },
    )
    assert status == 200, body
    scorer = tiny_scorers["tiny-text"]
    cut = scorer.model.truncate_text(long_doc, 6)
    assert len(scorer.model.tokenizer.encode(cut, add_special_tokens=False)) == 6  # type: ignore[attr-defined]
    [expected_cut] = scorer.score({"text": "red shoes"}, [{"text": cut}])
    [expected_full] = scorer.score({"text": "red shoes"}, [{"text": long_doc}])
    assert body["results"][0]["relevance_score"] == pytest.approx(expected_cut, abs=TOLERANCE)
    assert expected_cut != pytest.approx(expected_full, abs=1e-7)
    model = scorer.model
    prepared = model.prepare(model.resolve({"text": "red shoes"}), {"text": cut}, None)
    assert body["usage"]["total_tokens"] == prepared.length
