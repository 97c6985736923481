"""The media types of search bodies, as the engines and their official clients write them.

Elasticsearch reads JSON under four names: ``application/json``, ``application/x-ndjson``
and their versioned forms ``application/vnd.elasticsearch+json`` and
``application/vnd.elasticsearch+x-ndjson`` (with ``compatible-with=7|8|9``, which the
Elasticsearch 8 and 9 clients always send); OpenSearch reads the first two. Any of them may carry
parameters (``charset=UTF-8``, ``compatible-with=8``) in any case and spacing. A body under any
other type (form-encoded, YAML, CBOR, Smile) is not the sidecar's to read: it goes on untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

JSON_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    }
)
UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


@dataclass(frozen=True)
class MediaType:
    """``type/subtype`` in lower case, and the parameters (names in lower case) in order."""

    essence: str
    params: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse_media_type(value: str) -> MediaType:
    """``application/vnd.elasticsearch+json; compatible-with=8`` → its essence and params."""
    essence, *raw_params = value.split(";")
    params: list[tuple[str, str]] = []
    for raw in raw_params:
        name, sep, param_value = raw.partition("=")
        if sep and name.strip():
            params.append((name.strip().lower(), param_value.strip().strip('"')))
    return MediaType(essence.strip().lower(), tuple(params))


def is_json_body(content_type: str | None) -> bool:
    """Is a request body under this Content-Type JSON (or NDJSON) in UTF-8, for the sidecar to
    read? A missing header counts: clients send bodies of GET searches without one."""
    if not content_type:
        return True
    media = parse_media_type(content_type)
    if media.essence not in JSON_TYPES:
        return False
    charset = media.param("charset")
    return charset is None or charset.lower() in UTF8_NAMES


def is_json_response(content_type: str | None) -> bool:
    """Does the engine's answer say it is JSON (any of the engines' JSON names)?"""
    return bool(content_type) and parse_media_type(content_type or "").essence in JSON_TYPES


def rewritten_content_type(content_type: str | None) -> str:
    """The Content-Type of a body the sidecar rewrote: the client's own media type and
    parameters (``compatible-with`` must reach Elasticsearch as sent), except ``charset``: the
    sidecar always writes UTF-8."""
    if not content_type:
        return "application/json"
    media = parse_media_type(content_type)
    kept = [f"{name}={value}" for name, value in media.params if name != "charset"]
    return "; ".join([content_type.split(";", 1)[0].strip(), *kept])


__all__ = [
    "MediaType",
    "is_json_body",
    "is_json_response",
    "parse_media_type",
    "rewritten_content_type",
]
