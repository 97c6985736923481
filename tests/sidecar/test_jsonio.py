"""The search path's JSON: orjson, with the standard library for what orjson refuses."""

from __future__ import annotations

import json
import math

import pytest

from sidecar.jsonio import dumps, loads


def test_round_trip_keeps_order_unicode_and_numbers() -> None:
    value = {"z": 1, "a": [0.1, -2.5e-7, 3], "text": "Schuhe für Läufer 跑鞋", "none": None}
    raw = dumps(value)
    assert b"\\u" not in raw  # UTF-8, not ASCII escapes
    assert list(loads(raw)) == ["z", "a", "text", "none"]
    assert loads(raw) == value == json.loads(raw)


def test_integers_beyond_64_bits_survive_both_ways() -> None:
    big = 2**70 + 1  # an engine may hold such a number in _source
    assert loads(b'{"n": %d}' % big) == {"n": big}
    assert json.loads(dumps({"n": big})) == {"n": big}


def test_nan_from_a_lenient_writer_is_read() -> None:
    assert math.isnan(loads(b'{"x": NaN}')["x"])


def test_lone_surrogates_are_written_as_escapes() -> None:
    value = loads(b'{"t": "\\ud800 broken"}')
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize("raw", [b"{", b"", b"{'a': 1}", b"\xff\xfe"])
def test_malformed_input_raises_a_decode_error(raw: bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        loads(raw)
