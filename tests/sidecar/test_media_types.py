"""The media types under which the sidecar reads a search body."""

from __future__ import annotations

import pytest

from sidecar.proxy.media_types import is_json_body, is_json_response, rewritten_content_type


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=UTF-8",
        "Application/JSON;charset=utf-8",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json; compatible-with=8",
        "application/vnd.elasticsearch+json;compatible-with=9",
        "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        'application/vnd.elasticsearch+json; compatible-with="7"; charset=utf-8',
    ],
)
def test_every_json_name_the_engines_and_clients_use_is_read(content_type: str | None) -> None:
    assert is_json_body(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",  # curl -d without -H
        "application/yaml",
        "application/cbor",
        "application/smile",
        "text/plain",
        "application/json; charset=utf-16",
    ],
)
def test_other_types_and_charsets_are_left_to_the_engine(content_type: str) -> None:
    assert not is_json_body(content_type)


def test_a_rewritten_body_keeps_the_type_and_compatibility_but_says_utf8() -> None:
    assert rewritten_content_type(None) == "application/json"
    assert rewritten_content_type("application/json; charset=utf-16") == "application/json"
    assert (
        rewritten_content_type("application/vnd.elasticsearch+json; compatible-with=8")
        == "application/vnd.elasticsearch+json; compatible-with=8"
    )


def test_engine_answers_are_json_under_every_json_name() -> None:
    assert is_json_response("application/vnd.elasticsearch+json;compatible-with=8")
    assert is_json_response("application/json; charset=UTF-8")
    assert not is_json_response("text/plain; charset=UTF-8")
    assert not is_json_response(None)
