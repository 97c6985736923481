"""The search path's JSON: orjson, with the standard library for what orjson refuses."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("raw", [b'{"x": NaN}', b'{"size": Infinity}', b"[-Infinity]"])
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    # The engines refuse them: a body holding one goes to the engine as sent, for it to say so.
    with pytest.raises(ValueError, match=r"not JSON|Infinity|NaN"):
        loads(raw)


def test_lone_surrogates_are_written_as_escapes() -> None:
    value = loads(b'{"t": "\\ud800 broken"}')
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize("raw", [b"{", b"", b"{'a': 1}", b"\xff\xfe"])
def test_malformed_input_raises_a_decode_error(raw: bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        loads(raw)


@pytest.mark.parametrize(
    "literal",
    [
        b"1E2",
        b"1e2",
        b"2.5e-7",
        b"1.5E+300",
        b"1.10",
        b"2.00",
        b"-0",
        b"0.000001",
        b"3.0000000000000001",
        b"-9223372036854775809",  # below int64
        b"18446744073709551616",  # above uint64
        b"123456789012345678901234567890",
        b"0.1",
        b"1.0",
        b"-0.0",
        b"99.5",
    ],
)
def test_numbers_are_written_back_exactly_as_read(literal: bytes) -> None:
    raw = b'{"_source":{"n":' + literal + b',"list":[' + literal + b"]}}"
    assert dumps(loads(raw)) == raw


def test_exact_numbers_still_compute_as_numbers() -> None:
    value = loads(b'{"score": 1E2, "big": -9223372036854775809}')
    assert value["score"] * 2 == 200.0
    assert value["big"] + 1 == -9223372036854775808


def test_ordinary_responses_take_the_fast_path() -> None:
    from sidecar.jsonio import needs_exact_path

    raw = json.dumps(
        {"took": 3, "hits": [{"_score": 12.34567, "d": "2024-01-05", "p": 99.5, "n": -3}]}
    ).encode()
    assert not needs_exact_path(raw)


def test_nesting_beyond_what_can_be_parsed_is_a_value_error() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(deep)


def test_nesting_beyond_orjsons_writer_is_still_written() -> None:
    value = loads(b'{"a":' * 300 + b"1E2" + b"}" * 300)
    assert dumps(value) == b'{"a":' * 300 + b"1E2" + b"}" * 300
