"""The engine-hook configurations documented in docs/integrations/engine-hooks.md work: the
request each engine would render reaches the sidecar, and the engine's paths find the scores."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import API_KEY as KEY
from tests.sidecar.test_rerank_api import _post

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "engine-hooks.md"
DOCUMENTS = ["red running shoes", "blue rain jacket", "red wool scarf"]
QUERY = 'red "trail" shoes'  # a quote, so the templates' escaping is exercised
DOC_MODEL, TEST_MODEL = "qwen3-reranker-0.6b", "tiny-text"  # the test worker serves tiny models


def _block(marker: str) -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```json\n(.*?)```", text, re.S)
    assert match, f"no JSON block after <!-- {marker} --> in {DOC}"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def _jsonpath_all(body: Any, path: str) -> list[Any]:
    """The subset the engines' parsers use here: ``$.a[*].b(.c)``."""
    match = re.fullmatch(r"\$\.(\w+)\[\*\]\.([\w.]+)", path)
    assert match, path
    items = body[match.group(1)]
    values = []
    for item in items:
        for key in match.group(2).split("."):
            item = item[key]
        values.append(item)
    return values


def _local(url: str, base: str) -> str:
    return base + urlsplit(url).path


def test_elasticsearch_custom_service_request_and_response_paths(sidecar_api: str) -> None:
    settings = _block("es-custom-service")["service_settings"]
    body = (
        settings["request"]
        .replace("${query}", json.dumps(QUERY))
        .replace("${input}", json.dumps(DOCUMENTS))
        .replace(DOC_MODEL, TEST_MODEL)
    )
    header = settings["headers"]["Authorization"].replace("${api_key}", KEY)
    status, answer = _post(
        _local(settings["url"], sidecar_api), None, key=header.split(" ", 1)[1], raw=body.encode()
    )
    assert status == 200, answer
    parser = settings["response"]["json_parser"]
    scores = _jsonpath_all(answer, parser["relevance_score"])
    indexes = _jsonpath_all(answer, parser["reranked_index"])
    assert sorted(indexes) == [0, 1, 2]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)


def test_opensearch_connector_request_and_response_paths(sidecar_api: str) -> None:
    connector = _block("opensearch-connector")
    action = connector["actions"][0]
    parameters = {
        **connector["parameters"],
        "model": TEST_MODEL,
        "query": QUERY.replace('"', '\\"'),
        "documents": json.dumps(DOCUMENTS),
        "top_n": "2",
    }
    body = action["request_body"]
    for name, value in parameters.items():
        body = body.replace("${parameters." + name + "}", value)
    assert "${" not in body
    token = (
        action["headers"]["Authorization"].replace("${credential.api_key}", KEY).split(" ", 1)[1]
    )
    status, answer = _post(_local(action["url"], sidecar_api), None, key=token, raw=body.encode())
    assert status == 200, answer
    indexes = _jsonpath_all(answer, "$.results[*].index")
    scores = _jsonpath_all(answer, "$.results[*].relevance_score")
    assert len(indexes) == 2 and set(indexes) <= {0, 1, 2}
    assert scores == sorted(scores, reverse=True)
    assert _jsonpath_all(answer, "$.results[*].document.text")[0] in DOCUMENTS
