"""bench/score_cache.py compares like with like: its baseline (the pipeline the Lua script
replaced, still the fallback where Redis refuses scripts) and the script leave the same entries,
expiries and index in Redis, and the command runs. No timing is asserted (timings live in
docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from bench.score_cache import score_cache
from sidecar.scoring.cache import INDEX

ROOT = Path(__file__).resolve().parents[2]


def test_the_baseline_and_the_script_write_the_same(redis_url: str) -> None:
    async def state(scripting: bool) -> tuple[dict[bytes, bytes], list[bytes]]:
        client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/4")  # not the broker's
        try:
            await client.flushdb()
            entries = {f"rerank:score:k{i}": 0.1 * i + 1e-12 for i in range(7)}
            cache = score_cache(client, scripting)
            cache.ttl_s = 120
            await cache.put_many(entries)
            assert cache.scripting is scripting  # the script ran, or was never tried
            values = {key: await client.get(key) for key in await client.keys("rerank:score:k*")}
            ttls = {await client.ttl(key) for key in values}
            assert ttls <= set(range(110, 121)), ttls
            return values, sorted(await client.zrange(INDEX, 0, -1))
        finally:
            await client.aclose()

    before, after = asyncio.run(state(False)), asyncio.run(state(True))
    assert before == after
    assert len(after[0]) == 7 and float(after[0][b"rerank:score:k3"]) == 0.1 * 3 + 1e-12


def test_the_bench_runs_as_one_command() -> None:
    command = [sys.executable, str(ROOT / "bench" / "score_cache.py"),
               "--sizes", "3", "--writes", "2", "--rounds", "1", "--no-write"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 3 |")]
    assert [row.split("|")[2].strip()[:8] for row in rows] == ["pipeline", "one Lua "]
