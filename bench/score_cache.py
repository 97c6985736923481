"""The score cache's write: the sidecar's client CPU per ``put_many``, one Lua script call against
the pipeline it replaced, same run, same Redis.

    .venv/bin/python bench/score_cache.py              # writes its section of docs/benchmarks.md
    .venv/bin/python bench/score_cache.py --no-write

Starts a real redis-server on loopback. A dispatched search with the cache on writes its
window's scores back (``ScoreCache.put_many``); before, that was a pipeline of one SET per entry,
a ZADD and a ZCARD, which the client encodes and whose replies it parses one by one; now it is
one EVALSHA whose reply is the index's size (the pipeline stays, as the fallback where Redis
refuses scripts, and is the baseline here). The rows interleave round by round; the figure is
the process's CPU time (what the sidecar's event loop pays), the wall time beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from bench.report import machine, publish  # noqa: E402
from sidecar.scoring.cache import ScoreCache  # noqa: E402
from sidecar.settings import Settings  # noqa: E402
from sidecar.testbed import start_redis  # noqa: E402


def score_cache(client: aioredis.Redis, scripting: bool) -> ScoreCache:
    """The cache writing by script, or as it did before (its fallback where Redis refuses
    scripts); no eviction in either, the index never reaching its bound."""
    cache = ScoreCache(client, ttl_s=600, max_entries=10**9)
    cache.scripting = scripting
    return cache


ROWS = {"pipeline": False, "lua": True}
LABELS = {
    "pipeline": "pipeline: a SET per entry, ZADD, ZCARD (before)",
    "lua": "one Lua script call (after)",
}


async def time_writes(cache: ScoreCache, entries: dict[str, float], n: int) -> tuple[float, float]:
    """Milliseconds of CPU and of wall time per write, over ``n`` writes."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await cache.put_many(entries)
    return (time.process_time() - cpu) / n * 1e3, (time.perf_counter() - wall) / n * 1e3


async def measure(url: str, sizes: list[int], writes: int, rounds: int) -> list[tuple]:
    client = aioredis.from_url(url)
    try:
        caches = {name: score_cache(client, scripting) for name, scripting in ROWS.items()}
        rows = []
        for size in sizes:
            entries = {f"rerank:score:bench:{size}:{i}": 0.123456789 * i for i in range(size)}
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ROWS}
            for cache in caches.values():
                await time_writes(cache, entries, 50)  # warm-up: the script is loaded
            for _ in range(rounds):
                for name, cache in caches.items():
                    samples[name].append(await time_writes(cache, entries, writes))
            for name in ROWS:
                cpu = statistics.median(s[0] for s in samples[name])
                wall = statistics.median(s[1] for s in samples[name])
                rows.append((size, name, cpu, wall))
        return rows
    finally:
        await client.aclose()


def render(rows: list[tuple]) -> str:
    lines = [
        "| entries per write | how | client CPU (ms/write) | wall (ms/write) | CPU vs before |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for size, name, cpu, wall in rows:
        before = next(r[2] for r in rows if r[0] == size and r[1] == "pipeline")
        lines.append(f"| {size} | {LABELS[name]} | {cpu:.3f} | {wall:.3f} | {cpu / before:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,100")
    parser.add_argument("--writes", type=int, default=500, help="writes per sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    server = start_redis(Settings())
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        rows = asyncio.run(measure(server.url, sizes, args.writes, args.rounds))
    finally:
        server.stop()
    table = render(rows)
    text = (
        "## The score cache's write (`bench/score_cache.py`)\n\n"
        f"Run {datetime.date.today().isoformat()} on {machine()}; a real redis-server on "
        "loopback, redis-py's asyncio client, as the sidecar uses it. Per write of a window's "
        f"scores (`ScoreCache.put_many`): median of {args.rounds} rounds of {args.writes} "
        "writes, the two rows interleaved. Client CPU is what the sidecar's event loop pays "
        "per dispatched search with the cache on."
    )
    publish(table, text, "score-cache-write", write=not args.no_write)


if __name__ == "__main__":
    main()
