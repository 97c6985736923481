"""Decoding the request bodies the sidecar parses."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sidecar.body import BodyTooLarge, UnreadableEncoding, decode


def test_identity_gzip_and_deflate() -> None:
    body = b'{"query": {"match_all": {}}}'
    assert decode(body, None, 100) == body
    assert decode(body, "identity", 100) == body
    assert decode(gzip.compress(body), "gzip", 100) == body
    assert decode(gzip.compress(body), "X-GZIP", 100) == body
    assert decode(zlib.compress(body), "deflate", 100) == body


def test_the_limit_applies_to_the_decoded_size() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(BodyTooLarge):
        decode(bomb, "gzip", 1_000_000)


def test_unknown_or_corrupt_encodings_are_not_read() -> None:
    with pytest.raises(UnreadableEncoding, match="br"):
        decode(b"...", "br", 100)
    with pytest.raises(UnreadableEncoding, match="does not decompress"):
        decode(b"not gzip at all", "gzip", 100)
