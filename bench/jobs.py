"""Bulk rescoring jobs: a job's throughput at 1, 4 and 16 searches in flight, and what a running
job does to interactive reranked searches, same run.

    .venv/bin/python bench/jobs.py                  # OpenSearch 2.x, Redis, worker, runner, sidecar
    .venv/bin/python bench/jobs.py --quick --no-write

Starts the test bed's OpenSearch 2.x and a redis-server on loopback, indexes bench/proxy.py's
catalog, and runs the product as deployed, each part a process of its own: a real scoring worker
(the tiny Qwen3 text model, real forward passes on this CPU, its interactive queue ahead of the
bulk one), a job runner (``rerank-sidecar jobs-worker``) and the sidecar (``rerank-sidecar
serve``). Every query text is new (no score-cache hit anywhere), window 10.

- Job rows: one job per ``limits.searches`` value, each of ``--queries`` queries, written to a
  results index; queries/s and pairs/s from the job's own start and end times.
- Interactive rows: ``--searches`` reranked searches through the proxy, one client, one at a
  time: alone, then while a job (16 searches in flight) runs; p50/p99 of each and the job's own
  pairs/s meanwhile. The worker's priorities keep the interactive windows ahead of the job's; what
  is left is the machine's 2 cores, shared by the engine, the worker's forward passes for both,
  the runner, the sidecar and this client.

Prints the tables and replaces the jobs section of docs/benchmarks.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.proxy import COMMON, SEARCH_INDEX, WORDS, percentile, seed  # noqa: E402
from bench.report import machine, write_section  # noqa: E402
from sidecar.settings import Settings  # noqa: E402
from sidecar.testbed import engine_specs, start_engine, start_redis, start_worker  # noqa: E402
from sidecar.testbed.job_runner import start_job_runner  # noqa: E402
from sidecar.testbed.ports import free_port  # noqa: E402
from workers.contract import ModelSpec  # noqa: E402

TOKEN = "bench-jobs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOW = 10
WORKER_THREADS = 8
RUNNER_THREADS = 2
DEFAULTS = {"queries": 200, "searches": 200, "docs": 2000}
QUICK = {"queries": 40, "searches": 40, "docs": 500}
CONCURRENCY = (1, 4, 16)
BACKGROUND = (2, 16)


@dataclass
class JobRow:
    searches: int
    queries: int
    seconds: float
    queries_per_s: float
    pairs_per_s: float
    cache_hits: int
    failed: int


@dataclass
class InteractiveRow:
    label: str
    searches: int
    p50_ms: float
    p99_ms: float
    rerank_p50_ms: float
    applied: float
    job_pairs_per_s: float | None


def settings(engine_url: str, redis_url: str, model_path: str, port: int) -> dict[str, Any]:
    spec = ModelSpec(path=model_path, kind="qwen3", device="cpu")
    return {
        "server": {"port": port},
        "models": {"tiny-text": spec.model_dump(mode="json")},
        "upstream": {"urls": [engine_url]},
        "celery": {"broker_url": redis_url},
        "admin": {"tokens": [TOKEN]},
        "rerank": {
            "default_model": "tiny-text",
            "profiles": {"bench": {"window": WINDOW, "fields": {"text": ["description"]}}},
            "timeout_ms": 10_000,
            "max_timeout_ms": 10_000,
        },
        "jobs": {"chunk_size": 50, "max_concurrency": 64},
    }


def query_text(tag: str, i: int) -> str:
    """A query every document matches (the common word) whose text is new: no cache hit."""
    return f"{COMMON} {WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {tag}{i}"


def job_spec(tag: str, queries: int, searches: int) -> dict[str, Any]:
    return {
        "index": SEARCH_INDEX,
        "queries": {
            "inline": [{"id": f"{tag}{i}", "text": query_text(tag, i)} for i in range(queries)]
        },
        "search": {"query": {"match": {"description": "{{query}}"}}, "size": WINDOW},
        "rerank": {"profile": "bench"},
        "output": {"index": "bench-job-results"},
        "limits": {"searches": searches},
        "name": f"bench {tag}",
    }


class Sidecar:
    """``rerank-sidecar serve --config`` in a process of its own."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
        path = self._dir / "settings.yaml"
        path.write_text(yaml.safe_dump(config))
        self._log = (self._dir / "sidecar.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RERANK_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", "--config", str(path)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{config['server']['port']}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.http.get("/_rerank/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sidecar did not start: see {self._dir / 'sidecar.log'}")
            time.sleep(0.1)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"/_rerank/jobs/{job_id}", headers=AUTH).json()  # type: ignore[no-any-return]

    def submit(self, spec: dict[str, Any]) -> str:
        response = self.http.post("/_rerank/jobs", json=spec, headers=AUTH)
        if response.status_code != 202:
            raise RuntimeError(f"the job was refused: {response.text}")
        return str(response.json()["id"])

    def wait(self, job_id: str, states: tuple[str, ...], timeout_s: float = 3600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (job := self.job(job_id))["state"] not in states:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} stayed {job['state']}")
            time.sleep(0.1)
        return job

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


def run_job(sidecar: Sidecar, tag: str, queries: int, searches: int) -> JobRow:
    job_id = sidecar.submit(job_spec(tag, queries, searches))
    final = sidecar.wait(job_id, ("done", "failed", "cancelled"))
    if final["state"] != "done":
        raise RuntimeError(f"the job ended {final['state']}: {final.get('reason')}")
    started = datetime.datetime.fromisoformat(final["started_at"])
    finished = datetime.datetime.fromisoformat(final["finished_at"])
    seconds = (finished - started).total_seconds()
    totals = final["totals"]
    return JobRow(searches, queries, seconds, totals["done"] / seconds, totals["pairs"] / seconds,
                  totals["cache_hits"], totals["failed"])  # fmt: skip


def interactive(sidecar: Sidecar, tag: str, count: int) -> tuple[list[float], list[float], float]:
    """Latencies (ms) of ``count`` reranked searches, one at a time, the time of each spent
    reranking (``X-Rerank-Took-Ms``: dispatch and scoring), and the reranked fraction."""
    latencies, reranking, applied = [], [], 0
    for i in range(count):
        body = {"query": {"match": {"description": query_text(tag, i)}}, "size": WINDOW,
                "ext": {"rerank": {"profile": "bench"}}}  # fmt: skip
        start = time.perf_counter()
        response = sidecar.http.post(f"/{SEARCH_INDEX}/_search", json=body)
        latencies.append((time.perf_counter() - start) * 1000)
        applied += response.headers.get("X-Rerank-Status", "").startswith("applied")
        reranking.append(float(response.headers.get("X-Rerank-Took-Ms", "nan")))
    return latencies, reranking, applied / count


def during_job(sidecar: Sidecar, args: argparse.Namespace, searches: int) -> InteractiveRow:
    """Interactive searches while a job with ``searches`` in flight runs (cancelled after)."""
    job_id = sidecar.submit(job_spec(f"bg{searches}-", args.queries * 50, searches))
    sidecar.wait(job_id, ("running",))
    before = sidecar.job(job_id)
    started = time.monotonic()
    latencies, took, applied = interactive(sidecar, f"during{searches}-", args.searches)
    elapsed = time.monotonic() - started
    after = sidecar.job(job_id)
    sidecar.http.delete(f"/_rerank/jobs/{job_id}", headers=AUTH)
    if after["state"] != "running":
        raise RuntimeError("the background job ended before the interactive searches did")
    rate = (after["totals"]["pairs"] - before["totals"]["pairs"]) / elapsed
    label = f"while a job runs ({searches} searches in flight)"
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return InteractiveRow(label, len(latencies), p50, p99, percentile(took, 0.5), applied, rate)


def measure(args: argparse.Namespace) -> tuple[list[JobRow], list[InteractiveRow], str]:
    from workers.random_models import cached_tiny_model

    base = Settings()
    spec = engine_specs(base)["opensearch"]
    print(f"starting OpenSearch {spec.version} …", file=sys.stderr)
    engine = start_engine(spec, base)
    redis_server = start_redis(base)
    worker = runner = sidecar = None
    try:
        seed(engine.url, args.docs)
        model_path = str(cached_tiny_model("qwen3", base.cache_dir))
        config = settings(engine.url, redis_server.url, model_path, free_port())
        threads = base.model_copy(update={
            "testbed": base.testbed.model_copy(update={"worker_concurrency": WORKER_THREADS})
        })  # fmt: skip
        model = ModelSpec.model_validate(config["models"]["tiny-text"])
        worker = start_worker(threads, redis_server.url, models={"tiny-text": model})
        runner = start_job_runner(config, concurrency=RUNNER_THREADS)
        sidecar = Sidecar(config)
        interactive(sidecar, "warm", 20)  # the engine's and the worker's first searches
        run_job(sidecar, "warmjob", 20, 4)
        jobs = []
        for searches in CONCURRENCY:
            print(f"job, {searches} searches in flight …", file=sys.stderr)
            jobs.append(run_job(sidecar, f"c{searches}-", args.queries, searches))

        print("interactive searches alone …", file=sys.stderr)
        alone, took, applied = interactive(sidecar, "alone", args.searches)
        rows = [InteractiveRow("alone", len(alone), percentile(alone, 0.5), percentile(alone, 0.99),
                               percentile(took, 0.5), applied, None)]  # fmt: skip
        for searches in BACKGROUND:
            print(f"interactive searches during a job of {searches} …", file=sys.stderr)
            rows.append(during_job(sidecar, args, searches))
        return jobs, rows, spec.version
    finally:
        if sidecar is not None:
            sidecar.close()
        for part in (runner, worker):
            if part is not None:
                part.stop()
        redis_server.stop()
        engine.stop()


def render(jobs: list[JobRow], rows: list[InteractiveRow], args: argparse.Namespace,
           version: str) -> str:  # fmt: skip
    today = datetime.date.today().isoformat()
    lines = [
        f"{today}, {machine()}; OpenSearch {version} (test bed), {args.docs} documents, one "
        f"shard. The product as deployed, each part its own process on this machine's cores: a "
        f"scoring worker ({WORKER_THREADS} task threads, the tiny random-weight Qwen3 text model, "
        f"fp32, real forward passes), the job runner ({RUNNER_THREADS} chunk threads), the "
        f"sidecar, Redis and the engine. Window {WINDOW}, every query text new (no score-cache "
        f"hit), results written to an index. A job's rates are its own: done queries and scored "
        f"pairs over its start-to-end time.",
        "",
        "| searches in flight (`limits.searches`) | queries | seconds | queries/s | pairs/s "
        "| cache hits | failed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for j in jobs:
        lines.append(f"| {j.searches} | {j.queries} | {j.seconds:.1f} | {j.queries_per_s:.1f} "
                     f"| {j.pairs_per_s:.0f} | {j.cache_hits} | {j.failed} |")  # fmt: skip
    lines += [
        "",
        f"Interactive reranked searches through the proxy (window {WINDOW}, one client, one "
        "search at a time, a new query text each), alone and while a job with 2 or 16 searches "
        "in flight runs, same run; *reranking* is the sidecar's `X-Rerank-Took-Ms` (sending the "
        "window to the worker and awaiting its scores), the rest is the engine and the proxy. "
        "The worker takes interactive windows before bulk ones and batches them alone; the job "
        "still shares the CPU with them (on a GPU machine the forward passes leave these "
        "cores).",
        "",
        "| interactive searches | searches | p50 (ms) | p99 (ms) | of which reranking, p50 (ms) "
        "| reranked | job pairs/s meanwhile |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rate = f"{r.job_pairs_per_s:.0f}" if r.job_pairs_per_s is not None else "–"
        lines.append(f"| {r.label} | {r.searches} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
                     f"| {r.rerank_p50_ms:.1f} | {r.applied:.0%} | {rate} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--queries", type=int, help="queries per job row")
    parser.add_argument("--searches", type=int, help="interactive searches per row")
    parser.add_argument("--docs", type=int, help="documents in the index")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULTS
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    jobs, rows, version = measure(args)
    text = render(jobs, rows, args, version)
    print(text)
    if not args.no_write:
        write_section(f"## Bulk rescoring jobs (`bench/jobs.py`)\n\n{text}",
                      ROOT / "docs" / "benchmarks.md", "jobs")  # fmt: skip


if __name__ == "__main__":
    main()
