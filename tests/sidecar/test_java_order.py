"""The HashMap iteration order and DoubleStream.sum the engines' metric_score depends on, checked
against real JVMs (the JDKs the test bed runs the engines with) on random keys and values."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from sidecar.evaluation.java_order import JavaHashMap, hashmap_order, stream_sum, string_hash
from sidecar.testbed.java import find_java

SOURCE = Path(__file__).parent / "java" / "HashMapOrder.java"


def _float(bits: str) -> float:
    value: float = struct.unpack("<d", struct.pack("<q", int(bits)))[0]
    return value


@pytest.fixture(scope="module", params=[17, 21])
def java_output(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, str]:
    try:
        java = find_java(request.param, None)
    except Exception:
        pytest.skip(f"no Java {request.param}+ on this machine")
    javac = java.home / "bin" / "javac"
    if not javac.exists():
        pytest.skip(f"{java.home} is a JRE (no javac)")
    out = tmp_path_factory.mktemp("java")
    subprocess.run([str(javac), "-d", str(out), str(SOURCE)], check=True, timeout=120)
    run = subprocess.run(
        [str(java.java), "-cp", str(out), "HashMapOrder"],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    return java.major, run.stdout


def test_string_hash_is_javas() -> None:
    assert string_hash("hello") == 99162322
    assert string_hash("") == 0
    assert string_hash("polygenelubricants") == -2147483648  # a known Integer.MIN_VALUE hash


def test_iteration_order_copies_and_sums_equal_the_jvms(java_output: tuple[int, str]) -> None:
    version, output = java_output
    lines = output.splitlines()
    assert len(lines) == 200
    for line in lines:
        keys, order, copy, values, mean = line.split("\t")
        inserted = keys.split("\x01")
        assert hashmap_order(inserted, len(inserted)) == order.split("\x01")
        assert JavaHashMap.copy_of(order.split("\x01"), jdk=version).order() == copy.split("\x01")
        by_key = dict(zip(inserted, (_float(v) for v in values.split(",")), strict=True))
        ordered = [by_key[key] for key in order.split("\x01")]
        assert stream_sum(ordered) / len(ordered) == _float(mean)
