"""The two places where the engines' ``_rank_eval`` numbers depend on Java itself.

The overall ``metric_score`` is the mean of the per-query scores, summed over the values of a
``java.util.HashMap`` keyed by the rated requests' ids (TransportRankEvalAction's
``responseDetails``), with ``DoubleStream.sum()``, which is a compensated (Kahan) sum. A sum of
doubles depends on its order, so to give the same last bit the sidecar sums in the order that
HashMap iterates (``hashmap_order``) the way ``DoubleStream.sum`` does (``stream_sum``). The
response's ``details`` are written in the iteration order of a copy of that map, reproduced too.

``stream_sum`` is JDK 18+'s (JDK-8214761 fixed how the compensation is applied at the end; the
two agree whenever the compensation is zero, as for every sum of a handful of scores with short
binary expansions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

MAXIMUM_CAPACITY = 1 << 30
LOAD_FACTOR = 0.75


def string_hash(text: str) -> int:
    """``String.hashCode()``: over UTF-16 code units, in 32-bit two's complement."""
    units = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _spread(h: int) -> int:
    """``HashMap.hash``: the high half folded into the low one (on the unsigned bits)."""
    u = h & 0xFFFFFFFF
    return u ^ (u >> 16)


def table_size_for(capacity: int) -> int:
    """``HashMap.tableSizeFor``: the power of two at or above ``capacity`` (at least 1)."""
    n = 1
    while n < capacity:
        n <<= 1
    return min(n, MAXIMUM_CAPACITY)


class JavaHashMap:
    """Just enough of ``java.util.HashMap<String, V>`` to know its iteration order: buckets of
    keys in insertion order, doubled (each bucket split in order) when the size passes
    three quarters of the table. (Buckets of 8+ colliding keys become trees in Java; their
    iteration still follows insertion, so they need no special case here.)"""

    def __init__(self, initial_capacity: int | None = None) -> None:
        self._threshold = table_size_for(initial_capacity) if initial_capacity else 0
        self._table: list[list[str]] | None = None
        self._keys: set[str] = set()

    def _resize(self) -> None:
        old = self._table
        capacity = (self._threshold or 16) if old is None else len(old) * 2
        table: list[list[str]] = [[] for _ in range(capacity)]
        for bucket in old or []:
            for key in bucket:  # lo and hi halves keep their relative order
                table[_spread(string_hash(key)) & (capacity - 1)].append(key)
        self._table = table
        self._threshold = int(capacity * LOAD_FACTOR)

    def put(self, key: str) -> None:
        if self._table is None:
            self._resize()
        if key in self._keys:
            return  # a replaced value keeps its place
        assert self._table is not None
        self._table[_spread(string_hash(key)) & (len(self._table) - 1)].append(key)
        self._keys.add(key)
        if len(self._keys) > self._threshold:
            self._resize()

    def order(self) -> list[str]:
        return [key for bucket in self._table or [] for key in bucket]

    @classmethod
    def copy_of(cls, keys: Sequence[str], jdk: int = 21) -> JavaHashMap:
        """``new HashMap<>(m)`` of a map iterating ``keys``: sized from ``m.size()`` first
        (JDK 19 changed how: ``ceil(size / 0.75)``, before ``size / 0.75 + 1``)."""
        copy = cls()
        if keys:
            wanted = (
                math.ceil(len(keys) / LOAD_FACTOR)
                if jdk >= 19
                else int(len(keys) / LOAD_FACTOR + 1.0)
            )
            copy._threshold = table_size_for(wanted)
        for key in keys:
            copy.put(key)
        return copy


def hashmap_order(keys: Iterable[str], initial_capacity: int | None = None) -> list[str]:
    """The iteration order of a HashMap created with ``initial_capacity`` and ``keys`` put in
    this order (a key put twice stays where it first went)."""
    table = JavaHashMap(initial_capacity)
    for key in keys:
        table.put(key)
    return table.order()


def stream_sum(values: Iterable[float]) -> float:
    """``DoubleStream.sum()`` (JDK 18+): Kahan summation, and the plain sum when the
    compensated one is NaN because of infinities."""
    total = compensation = simple = 0.0
    for value in values:
        simple += value
        y = value - compensation
        t = total + y
        compensation = (t - total) - y
        total = t
    result = total - compensation
    if math.isnan(result) and math.isinf(simple):
        return simple
    return result


__all__ = ["JavaHashMap", "hashmap_order", "stream_sum", "string_hash", "table_size_for"]
