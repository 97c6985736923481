"""The search proxy's own cost: direct to OpenSearch vs through the sidecar, same engine, same run.

    .venv/bin/python bench/proxy.py                  # real OpenSearch 2.x and Redis, full run
    .venv/bin/python bench/proxy.py --quick --no-write

Starts the test bed's OpenSearch 2.x and a real redis-server on loopback, indexes small
documents (``title``, ``description``), and measures three things:
- pass-through: a plain search (no rule, no ``ext.rerank``) and ``_bulk`` indexing, direct to the
  engine vs through the sidecar, at 1, 8 and 32 concurrent clients;
- the rerank path with model time taken out: ``ext.rerank`` at windows 10, 100 and 1000 scored
  by a zero-cost in-process scorer, and by the real score cache (Redis) answering every pair,
  each against the engine's own time for the same search at size = window;
- memory: the RSS of a sidecar process before and after many requests (searches, half of them
  reranked at window 10).

The load generator is always a separate process (this script with ``--loadgen``: an aiohttp
client reading its phases as JSON on stdin and printing the measurements as JSON), and so is
the sidecar, as in production (``--serve-sidecar``: the app `rerank-sidecar serve` builds, on
its event loop, with the zero-cost scorer, alone or behind the score cache). Prints the tables
and replaces the proxy section of docs/benchmarks.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.report import machine, write_section  # noqa: E402
from bench.serving import serve_until_stdin_closes  # noqa: E402
from sidecar.app import create_app  # noqa: E402
from sidecar.scoring.cache import CachedDispatcher, ScoreCache  # noqa: E402
from sidecar.settings import (  # noqa: E402
    DispatchSettings,
    RerankSettings,
    Settings,
    UpstreamSettings,
)
from sidecar.testbed import engine_specs, start_engine, start_redis  # noqa: E402
from workers.contract import ModelSpec, ScoringJob, ScoringResult  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
MODEL = "qwen3-reranker-0.6b"
CELERY_MODEL = "tiny-text"
MAX_WINDOW = 1000
SEARCH_INDEX = "bench"
BULK_INDEX = "bench-bulk"
COMMON = "item"  # in every document's description: the rerank searches match it
WORDS = [
    "red", "running", "shoes", "trail", "jacket", "scarf", "blue", "warm", "light", "sole",
    "wool", "cotton", "green", "winter", "summer", "leather", "boots", "socks", "rain", "hiking",
]  # fmt: skip
QUERIES = 10  # distinct query texts per kind of request, cycled

# Defaults of the sized flags, and what --quick uses instead.
DEFAULTS = {
    "celery_requests": 400,
    "searches": 2000,
    "bulks": 200,
    "rerank_requests": 300,
    "requests_memory": 100_000,
    "warmup": 200,
}
QUICK = {
    "celery_requests": 60,
    "searches": 300,
    "bulks": 30,
    "rerank_requests": 40,
    "requests_memory": 5000,
    "warmup": 40,
}

BUDGET_ADDED_P50_MS = 0.5
BUDGET_ADDED_P99_MS = 2.0
BUDGET_THROUGHPUT = 0.9
BUDGET_RERANK_MS = 5.0  # zero-cost scorer, window 100, added p50
BUDGET_CACHE_HIT_MS = 3.0  # full cache hit, window 100, added p50
BUDGET_WINDOW = 100


class ZeroCostDispatcher:
    """A dispatcher without a model: each document's score is the CRC-32 of its text, scaled to
    [0, 1]. Counts its calls, so a cache in front of it can be seen answering everything."""

    def __init__(self) -> None:
        self.calls = 0
        self.pairs = 0

    async def score(self, job: ScoringJob) -> ScoringResult:
        self.calls += 1
        self.pairs += len(job.documents)
        scores: list[float | None] = [
            zlib.crc32((doc.text or doc.id).encode()) / 0xFFFFFFFF for doc in job.documents
        ]
        return ScoringResult(scores=scores, model=job.model, took_ms=0)

    async def close(self) -> None:
        return None


def sidecar_settings(engine_url: str) -> Settings:
    return Settings(
        upstream=UpstreamSettings(urls=[engine_url]),
        dispatch=DispatchSettings(cache_enabled=False),
        rerank=RerankSettings(window=10, max_window=MAX_WINDOW, default_model=MODEL),
    )


# ---------------------------------------------------------------------------------------------
# The load generator (a separate process: this script with --loadgen)


@dataclass
class Phase:
    """``total`` POSTs of ``bodies`` (cycled) to ``url + path`` from ``clients`` concurrent
    clients. ``expect[i]`` is the X-Rerank-Status body ``i`` must get ("absent": none; "": not
    checked). ``unique``: ``__N__`` in a body becomes the request's number, after a salt of the
    phase's own."""

    url: str
    path: str
    bodies: list[str]
    total: int
    clients: int
    expect: list[str] = field(default_factory=list)
    content_type: str = "application/json"
    record: bool = True
    unique: bool = False
    bulk: bool = False
    cpu_pid: int | None = None  # a process whose CPU time (user + system) the phase measures


@dataclass
class Measured:
    latencies: list[float]  # seconds, one per request (empty when the phase did not record)
    elapsed: float
    count: int
    took: list[float]  # X-Rerank-Took-Ms of each reranked answer
    cpu_s: float = 0.0  # CPU time of the phase's cpu_pid during the phase
    statuses: dict[str, int] = field(default_factory=dict)  # X-Rerank-Status, reason kept

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s / self.count * 1000

    @classmethod
    def merge(cls, parts: list[Measured]) -> Measured:
        statuses: dict[str, int] = {}
        for part in parts:
            for status, n in part.statuses.items():
                statuses[status] = statuses.get(status, 0) + n
        return cls(
            [x for p in parts for x in p.latencies],
            sum(p.elapsed for p in parts),
            sum(p.count for p in parts),
            [x for p in parts for x in p.took],
            sum(p.cpu_s for p in parts),
            statuses,
        )

    @property
    def applied_share(self) -> float:
        applied = sum(n for status, n in self.statuses.items() if status.startswith("applied"))
        return applied / self.count

    @property
    def rps(self) -> float:
        return self.count / self.elapsed

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5) * 1000

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99) * 1000


async def run_phase(session: aiohttp.ClientSession, phase: Phase) -> Measured:
    url = phase.url + phase.path
    bodies = [body.encode() for body in phase.bodies]
    expect = phase.expect or [""] * len(bodies)
    headers = {"Content-Type": phase.content_type}
    latencies: list[float] = []
    took: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(phase.total))
    # A number of its own in every phase, so that no search of a unique phase repeats one of an
    # earlier phase (the score cache would answer it).
    salt = os.urandom(4).hex().encode()

    async def client() -> None:
        for n in counter:
            body = bodies[n % len(bodies)]
            if phase.unique:
                body = body.replace(b"__N__", salt + str(n).encode())
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
            latency = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"POST {url}: HTTP {response.status}: {data[:500]!r}")
            if phase.bulk and b'"errors":false' not in data[:200]:
                raise RuntimeError(f"POST {url}: the bulk request had errors: {data[:500]!r}")
            wanted = expect[n % len(bodies)]
            status = response.headers.get("X-Rerank-Status")
            kind = (status or "absent").split("; unscored")[0]
            statuses[kind] = statuses.get(kind, 0) + 1
            if wanted and (status or "absent") != wanted:
                raise RuntimeError(f"POST {url}: X-Rerank-Status {status!r}, wanted {wanted!r}")
            if "X-Rerank-Took-Ms" in response.headers:
                took.append(float(response.headers["X-Rerank-Took-Ms"]))
            if phase.record:
                latencies.append(latency)

    cpu_before = cpu_seconds(phase.cpu_pid) if phase.cpu_pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(phase.clients)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(phase.cpu_pid) - cpu_before if phase.cpu_pid else 0.0
    return Measured(latencies, elapsed, phase.total, took, cpu, statuses)


async def run_phases(phases: list[Phase]) -> list[Measured]:
    limit = 2 * max(p.clients for p in phases)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
    async with aiohttp.ClientSession(
        connector=connector,
        # No Accept-Encoding: neither the engine nor the sidecar compresses, as for the official
        # clients' defaults. What is measured is the proxying, not gzip.
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        timeout=aiohttp.ClientTimeout(total=120),
    ) as session:
        return [await run_phase(session, phase) for phase in phases]


def loadgen_main() -> None:
    phases = [Phase(**p) for p in json.load(sys.stdin)]
    results = asyncio.run(run_phases(phases))
    for r in results:
        r.latencies = [round(x, 7) for x in r.latencies]
    print(json.dumps([asdict(r) for r in results]))


def loadgen(phases: list[Phase]) -> list[Measured]:
    """Run ``phases`` in a fresh load-generator process, one after the other."""
    completed = subprocess.run(
        [sys.executable, SCRIPT, "--loadgen"],
        input=json.dumps([asdict(p) for p in phases]),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{completed.stderr[-4000:]}")
    return [Measured(**r) for r in json.loads(completed.stdout.strip().splitlines()[-1])]


# ---------------------------------------------------------------------------------------------
# The sidecar in a process of its own (--serve-sidecar), as `rerank-sidecar serve` runs it


FLOOR_SESSION = web.AppKey("floor_session", aiohttp.ClientSession)


def minimal_proxy(upstream: str) -> web.Application:
    """The reference: the least an aiohttp proxy does per request (read the body, send it on
    with its Content-Type, answer with the engine's status, Content-Type and body). It is not
    transparent (every other header is dropped); what it costs is aiohttp's own floor."""
    app = web.Application()

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[FLOOR_SESSION] = aiohttp.ClientSession(
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept")
        )
        yield
        await app[FLOOR_SESSION].close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        kind = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        url = upstream + request.path_qs
        async with request.app[FLOOR_SESSION].request(
            request.method, url, data=body, headers=kind
        ) as answer:
            data = await answer.read()
            kind = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
            return web.Response(body=data, status=answer.status, headers=kind)

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def celery_sidecar_settings(
    engine_url: str, broker: str, model_path: str, publisher: str = "direct", cache: bool = False
) -> Settings:
    """The sidecar as deployed: scoring jobs through Redis to a real Celery worker serving the
    tiny Qwen3 text model (real forward passes), no score cache unless ``cache``."""
    return Settings(
        upstream=UpstreamSettings(urls=[engine_url]),
        celery={"broker_url": broker},
        models={CELERY_MODEL: ModelSpec(path=model_path, kind="qwen3", device="cpu")},
        dispatch=DispatchSettings(cache_enabled=cache, publisher=publisher),  # type: ignore[arg-type]
        rerank=RerankSettings(window=10, max_window=MAX_WINDOW, default_model=CELERY_MODEL),
    )


def serve_sidecar_main(
    upstream: str,
    cache_redis: str | None,
    minimal: bool,
    celery_broker: str | None = None,
    model_path: str | None = None,
    publisher: str = "direct",
    celery_cache: bool = False,
) -> None:
    """Serve the sidecar on a free loopback port with the zero-cost scorer (behind the score
    cache on ``cache_redis`` when given), with the Celery dispatcher (``celery_broker``), or the
    minimal proxy; print the port as JSON. Each line read on stdin is answered with the
    scorer's counters as JSON; it stops when stdin closes."""

    scorer = ZeroCostDispatcher()

    def build() -> web.Application:
        dispatcher: ZeroCostDispatcher | CachedDispatcher = scorer
        if cache_redis is not None:
            dispatcher = CachedDispatcher(scorer, ScoreCache(aioredis.Redis.from_url(cache_redis)))
        if minimal:
            return minimal_proxy(upstream)
        if celery_broker is not None and model_path is not None:
            return create_app(celery_sidecar_settings(
                upstream, celery_broker, model_path, publisher, celery_cache))  # fmt: skip
        return create_app(sidecar_settings(upstream), dispatcher=dispatcher)

    serve_until_stdin_closes(
        build, answer=lambda: json.dumps({"calls": scorer.calls, "pairs": scorer.pairs})
    )


class SidecarProcess:
    """A ``--serve-sidecar`` child: its URL, its pid, and its scorer's call count on demand."""

    def __init__(
        self,
        upstream: str,
        cache_redis: str | None = None,
        minimal: bool = False,
        celery_broker: str | None = None,
        model_path: str | None = None,
        publisher: str = "direct",
        celery_cache: bool = False,
    ) -> None:
        command = [sys.executable, SCRIPT, "--serve-sidecar", "--upstream", upstream]
        command += ["--publisher", publisher] + (["--celery-cache"] if celery_cache else [])
        if cache_redis is not None:
            command += ["--cache-redis", cache_redis]
        if minimal:
            command.append("--minimal")
        if celery_broker is not None and model_path is not None:
            command += ["--celery-broker", celery_broker, "--model-path", model_path]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.pid = self.process.pid
        try:
            self.url = f"http://127.0.0.1:{self._read_line()['port']}"
        except BaseException:
            self.__exit__()
            raise

    def _read_line(self) -> dict[str, int]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the sidecar process does not answer:\n{self.log_tail()}")
        answer: dict[str, int] = json.loads(line)
        return answer

    def scorer_calls(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self._read_line()["calls"]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the sidecar process exited:\n{self.log_tail()}")

    def log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-3000:].decode(errors="replace")

    def __enter__(self) -> SidecarProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()  # the sidecar stops when its stdin closes
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak) of ``pid``, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


# ---------------------------------------------------------------------------------------------
# Helpers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_call(url: str, method: str, path: str, body: Any = None, ndjson: bytes = b"") -> Any:
    data = ndjson or (json.dumps(body).encode() if body is not None else None)
    content_type = "application/x-ndjson" if ndjson else "application/json"
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def document(i: int) -> dict[str, str]:
    n = len(WORDS)
    title = f"{WORDS[i % n]} {WORDS[(i * 7 + 3) % n]} product {i}"
    words = [WORDS[(i * k + k * k) % n] for k in range(1, 13)]
    return {"title": title, "description": " ".join([COMMON, *words])}


def bulk_body(docs: list[dict[str, str]], index: str | None = None) -> bytes:
    action = json.dumps({"index": {"_index": index}} if index else {"index": {}})
    return "".join(f"{action}\n{json.dumps(d)}\n" for d in docs).encode()


def seed(engine_url: str, count: int) -> None:
    one_shard = {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    mappings = {"properties": {"title": {"type": "text"}, "description": {"type": "text"}}}
    for index in (SEARCH_INDEX, BULK_INDEX):
        engine_call(engine_url, "PUT", f"/{index}", {**one_shard, "mappings": mappings})
    for start in range(0, count, 1000):
        docs = [document(i) for i in range(start, min(count, start + 1000))]
        answer = engine_call(engine_url, "POST", "/_bulk", ndjson=bulk_body(docs, SEARCH_INDEX))
        if answer.get("errors"):
            raise RuntimeError(f"seeding {SEARCH_INDEX} failed: {str(answer)[:500]}")
    engine_call(engine_url, "POST", f"/{SEARCH_INDEX}/_refresh")
    engine_call(engine_url, "POST", f"/{SEARCH_INDEX}/_forcemerge?max_num_segments=1")
    found = engine_call(engine_url, "POST", f"/{SEARCH_INDEX}/_count")["count"]
    if found != count:
        raise RuntimeError(f"{SEARCH_INDEX} holds {found} documents, not {count}")


def search_bodies(size: int = 10, window: int | None = None) -> list[str]:
    """Match queries on the common word plus one more (every document matches)."""
    bodies = []
    for q in range(QUERIES):
        body: dict[str, Any] = {
            "query": {"match": {"description": f"{COMMON} {WORDS[q % len(WORDS)]}"}},
            "size": size,
        }
        if window is not None:
            body["ext"] = {"rerank": {"window": window}}
        bodies.append(json.dumps(body))
    return bodies


def maker(
    url: str, path: str, bodies: list[str], clients: int, expect: str = "", **extra: Any
) -> Callable[[int], Phase]:
    """Phases of ``n`` requests with these settings; ``expect`` applies to every body."""

    def make(n: int) -> Phase:
        wanted = [expect] * len(bodies) if expect else []
        return Phase(url, path, bodies, n, clients, wanted, **extra)

    return make


class Plan:
    """The phases of one load-generator run, and where each cell's results will be."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []

    def add(self, *phases: Phase) -> None:
        self.phases.extend(phases)

    def cell(
        self, rounds: int, total: int, makers: list[Callable[[int], Phase]]
    ) -> Callable[[list[Measured]], list[Measured]]:
        """``rounds`` rounds of each maker's phase in turn (A B A B …), ``total`` requests per
        maker in all; returns what picks this cell's results, merged into one per maker."""
        per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
        start = len(self.phases)
        self.phases += [m(n) for n in per_round if n for m in makers]
        stop, width = len(self.phases), len(makers)

        def pick(results: list[Measured]) -> list[Measured]:
            mine = results[start:stop]
            return [Measured.merge(mine[i::width]) for i in range(width)]

        return pick


def sized(args: argparse.Namespace, name: str) -> int:
    value: int | None = getattr(args, name)
    if value is not None:
        return value
    return (QUICK if args.quick else DEFAULTS)[name]


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------------------------------------
# The three parts


@dataclass
class PassRow:
    operation: str
    clients: int
    direct: Measured
    sidecar: Measured
    minimal: Measured  # the minimal aiohttp proxy, the reference

    @property
    def added_p50(self) -> float:
        return self.sidecar.p50 - self.direct.p50

    @property
    def added_p99(self) -> float:
        return self.sidecar.p99 - self.direct.p99

    @property
    def ratio(self) -> float:
        return self.sidecar.rps / self.direct.rps

    @property
    def minimal_added_p50(self) -> float:
        return self.minimal.p50 - self.direct.p50


def measure_passthrough(
    engine_url: str,
    sidecar: SidecarProcess,
    minimal: SidecarProcess,
    args: argparse.Namespace,
    clients: list[int],
) -> list[PassRow]:
    searches, bulks, warmup = sized(args, "searches"), sized(args, "bulks"), sized(args, "warmup")
    search = search_bodies()
    bulk = [
        bulk_body([document(100_000 + b * args.bulk_docs + i) for i in range(args.bulk_docs)])
        for b in range(QUERIES)
    ]
    bulk_text = [b.decode() for b in bulk]
    search_path, bulk_path = f"/{SEARCH_INDEX}/_search", f"/{BULK_INDEX}/_bulk"
    ndjson: dict[str, Any] = {"content_type": "application/x-ndjson", "bulk": True}
    plan = Plan()
    watched: dict[str, Any] = {"cpu_pid": sidecar.pid}
    reference: dict[str, Any] = {"cpu_pid": minimal.pid}
    for url, expect in ((engine_url, ""), (sidecar.url, "absent"), (minimal.url, "")):
        plan.add(maker(url, search_path, search, 8, expect)(warmup))
        plan.add(maker(url, bulk_path, bulk_text, 8, **ndjson)(max(5, warmup // 10)))
    cells = []
    for c in clients:
        makers = [
            maker(engine_url, search_path, search, c),
            maker(sidecar.url, search_path, search, c, "absent", **watched),
            maker(minimal.url, search_path, search, c, **reference),
        ]
        cells.append(("search", c, plan.cell(args.rounds, searches, makers)))
    for c in clients:
        makers = [
            maker(engine_url, bulk_path, bulk_text, c, **ndjson),
            maker(sidecar.url, bulk_path, bulk_text, c, **ndjson, **watched),
            maker(minimal.url, bulk_path, bulk_text, c, **ndjson, **reference),
        ]
        cells.append((f"_bulk ({args.bulk_docs} docs)", c, plan.cell(args.rounds, bulks, makers)))
    results = loadgen(plan.phases)
    rows = []
    for operation, c, pick in cells:
        direct, through_sidecar, through_minimal = pick(results)
        rows.append(PassRow(operation, c, direct, through_sidecar, through_minimal))
    return rows


@dataclass
class RerankRow:
    variant: str
    window: int
    clients: int
    direct: Measured
    sidecar: Measured

    @property
    def added_p50(self) -> float:
        return self.sidecar.p50 - self.direct.p50

    @property
    def took_median(self) -> float:
        return statistics.median(self.sidecar.took) if self.sidecar.took else float("nan")


def measure_rerank(
    engine_url: str,
    zero: SidecarProcess,
    cached: SidecarProcess,
    args: argparse.Namespace,
) -> tuple[list[RerankRow], int]:
    """Rows of both variants, and the inner scorer's calls while the cache was measured."""
    windows, clients = int_list(args.windows), int_list(args.rerank_clients)
    total, warmup = sized(args, "rerank_requests"), max(10, sized(args, "warmup") // 10)
    path = f"/{SEARCH_INDEX}/_search"
    # One pass of every reranked query through the cached sidecar fills the cache.
    loadgen(
        [maker(cached.url, path, search_bodies(window=w), 1, "applied")(QUERIES) for w in windows]
    )
    calls_before = cached.scorer_calls()
    plan = Plan()
    cells = []
    for w in windows:
        direct, reranked = search_bodies(size=w), search_bodies(window=w)
        plan.add(
            maker(engine_url, path, direct, 1)(warmup),
            maker(zero.url, path, reranked, 1, "applied")(warmup),
            maker(cached.url, path, reranked, 1, "applied")(warmup),
        )
        for c in clients:
            makers = [
                maker(engine_url, path, direct, c),
                maker(zero.url, path, reranked, c, "applied", cpu_pid=zero.pid),
                maker(cached.url, path, reranked, c, "applied", cpu_pid=cached.pid),
            ]
            cells.append((w, c, plan.cell(args.rounds, total, makers)))
    results = loadgen(plan.phases)
    calls = cached.scorer_calls() - calls_before
    rows_zero, rows_cached = [], []
    for w, c, pick in cells:
        direct_m, zero_m, cached_m = pick(results)
        rows_zero.append(RerankRow("zero-cost scorer", w, c, direct_m, zero_m))
        rows_cached.append(RerankRow("full cache hit (Redis)", w, c, direct_m, cached_m))
    return rows_zero + rows_cached, calls


@dataclass
class CeleryRow:
    clients: int
    direct: Measured
    sidecar: Measured


CELERY_WORKER_THREADS = 8


@contextlib.contextmanager
def celery_worker_bed(base: Settings) -> Iterator[tuple[str, str]]:
    """A redis-server and a real Celery worker (``CELERY_WORKER_THREADS`` task threads) serving
    the tiny Qwen3 text model: (broker URL, model path), both stopped afterwards."""
    from sidecar.testbed import start_worker
    from workers.random_models import cached_tiny_model

    model_path = str(cached_tiny_model("qwen3", base.cache_dir))
    spec = ModelSpec(path=model_path, kind="qwen3", device="cpu")
    testbed = base.testbed.model_copy(update={"worker_concurrency": CELERY_WORKER_THREADS})
    redis_server = start_redis(base)
    try:
        worker = start_worker(base.model_copy(update={"testbed": testbed}), redis_server.url,
                              models={CELERY_MODEL: spec})  # fmt: skip
        try:
            yield redis_server.url, model_path
        finally:
            worker.stop()
    finally:
        redis_server.stop()


def measure_celery(
    engine_url: str, base: Settings, args: argparse.Namespace
) -> tuple[list[CeleryRow], str]:
    """The reranked path as deployed: every search's window scored by a real Celery worker
    (tiny Qwen3 text model, real forward passes) through Redis, at rising concurrency. Each
    search has a query text of its own, so no two jobs are the same."""
    path = f"/{SEARCH_INDEX}/_search"
    query = {"match": {"description": f"{COMMON} q__N__"}}
    reranked = [json.dumps({"query": query, "size": 10, "ext": {"rerank": {"window": 10}}})]
    direct = [json.dumps({"query": query, "size": 10})]
    total = sized(args, "celery_requests")
    unique: dict[str, Any] = {"unique": True}
    with (
        celery_worker_bed(base) as (broker, model_path),
        SidecarProcess(engine_url, celery_broker=broker, model_path=model_path) as sidecar,
    ):
        loadgen([Phase(sidecar.url, path, reranked, 40, 4, ["applied"], **unique)])
        plan = Plan()
        cells = []
        for c in int_list(args.celery_clients):
            makers = [
                maker(engine_url, path, direct, c, **unique),
                maker(sidecar.url, path, reranked, c, cpu_pid=sidecar.pid, **unique),
            ]
            cells.append((c, plan.cell(args.rounds, max(total, 2 * c), makers)))
        results = loadgen(plan.phases)
        sidecar.check_alive()
    rows = []
    for c, pick in cells:
        direct_m, sidecar_m = pick(results)
        rows.append(CeleryRow(c, direct_m, sidecar_m))
    return rows, model_path


DISPATCH_ROWS = {
    "celery": "Celery's send_task on a thread (`dispatch.publisher: celery`, before)",
    "direct": "the sidecar's own task message, LPUSH on the event loop (`direct`, after)",
    "missed": "the same with the score cache on (the default): every pair looked up, a miss, "
    "sent, and its score written back",
    "cached": "every pair a score-cache hit (no job sent)",
}


def measure_dispatch(
    engine_url: str, base: Settings, args: argparse.Namespace
) -> list[tuple[str, int, Measured]]:
    """Sidecar CPU per reranked search whose window goes to the real Celery worker: Celery's
    publisher vs the sidecar's own message, and all cache hits as the floor; same run, the rows
    interleaved round by round."""
    path = f"/{SEARCH_INDEX}/_search"
    body = {"query": {"match": {"description": f"{COMMON} q__N__"}}, "size": 20,
            "ext": {"rerank": {"window": 20}}}  # fmt: skip
    unique_bodies = [json.dumps(body)]
    repeated = [json.dumps(body).replace("__N__", f"{i}") for i in range(QUERIES)]
    total = sized(args, "celery_requests")
    with (
        celery_worker_bed(base) as (broker, model_path),
        SidecarProcess(engine_url, celery_broker=broker, model_path=model_path,
                       publisher="celery") as before,
        SidecarProcess(engine_url, celery_broker=broker, model_path=model_path,
                       publisher="direct") as after,
        SidecarProcess(engine_url, celery_broker=broker, model_path=model_path,
                       publisher="direct", celery_cache=True) as missed,
        SidecarProcess(engine_url, celery_broker=broker, model_path=model_path,
                       publisher="direct", celery_cache=True) as cached,
    ):  # fmt: skip
        sidecars = {"celery": before, "direct": after, "missed": missed, "cached": cached}
        loadgen([
            Phase(before.url, path, unique_bodies, 40, 4, ["applied"], unique=True),
            Phase(after.url, path, unique_bodies, 40, 4, ["applied"], unique=True),
            Phase(missed.url, path, unique_bodies, 40, 4, ["applied"], unique=True),
            Phase(cached.url, path, repeated, 40, 4, ["applied"] * len(repeated)),  # the cache
        ])  # fmt: skip
        plan = Plan()
        cells = []
        for c in (1, 8):
            makers = [
                maker(sidecars[name].url, path, repeated if name == "cached" else unique_bodies,
                      c, cpu_pid=sidecars[name].pid, unique=name != "cached")
                for name in DISPATCH_ROWS
            ]  # fmt: skip
            cells.append((c, plan.cell(args.rounds, max(total, 2 * c), makers)))
        results = loadgen(plan.phases)
        for sidecar in sidecars.values():
            sidecar.check_alive()
    rows = []
    for c, pick in cells:
        for name, measured in zip(DISPATCH_ROWS, pick(results), strict=True):
            rows.append((name, c, measured))
    return rows


def render_dispatch(rows: list[tuple[str, int, Measured]], engine_version: str) -> str:
    lines = [
        "| how the window's scores come | clients | requests | sidecar CPU (ms/search) "
        "| p50 (ms) | p99 (ms) | req/s | applied |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, clients, m in rows:
        lines.append(
            f"| {DISPATCH_ROWS[name]} | {clients} | {m.count} | {m.cpu_ms_per_request:.2f} "
            f"| {m.p50:.2f} | {m.p99:.2f} | {m.rps:.1f} | {m.applied_share:.1%} |"
        )
    paragraph = (
        f"Run {datetime.date.today().isoformat()} on {machine()}; OpenSearch {engine_version} "
        "(test bed). Four sidecar processes side by side (the app `rerank-sidecar serve` "
        "builds), the rows interleaved round by round: a size-20 match search reranked at window "
        "20, every search a query text of its own, each window sent through Redis to the same "
        f"real Celery worker ({CELERY_WORKER_THREADS} task threads, the tiny Qwen3 text model, "
        "real forward passes) with Celery's publisher or with the sidecar's own task message, "
        "the latter also with the score cache on (the default: every pair of a new search "
        "looked up, missed, sent, and its score written back with one Lua script call); "
        "and the same searches answered from the score cache (every pair a hit, no job sent), "
        "the floor of the rerank path. Sidecar CPU is the sidecar process's user + system time "
        "per search (/proc), the engine's search and the merge included."
    )
    return f"{paragraph}\n\n" + "\n".join(lines)


def render_celery(rows: list[CeleryRow], args: argparse.Namespace, engine_version: str) -> str:
    lines = [
        "| clients | requests | direct p50 (ms) | sidecar req/s | sidecar p50 (ms) "
        "| sidecar p99 (ms) | applied | not applied (X-Rerank-Status) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        others = ", ".join(
            f"{status}: {n}"
            for status, n in sorted(r.sidecar.statuses.items())
            if not status.startswith("applied")
        )
        lines.append(
            f"| {r.clients} | {r.sidecar.count} | {r.direct.p50:.2f} | {r.sidecar.rps:.1f} | "
            f"{r.sidecar.p50:.2f} | {r.sidecar.p99:.2f} | {r.sidecar.applied_share:.1%} | "
            f"{others or 'none'} |"
        )
    paragraph = (
        f"Run {datetime.date.today().isoformat()} on {machine()}; OpenSearch {engine_version} "
        f"(test bed), {args.docs} documents. The sidecar (its own process, the app "
        f"`rerank-sidecar serve` builds, Celery dispatch, score cache off) reranks a size-10 "
        f"match search at window 10, every search with a query text of its own; each window "
        f"goes through Redis to a real Celery worker ({CELERY_WORKER_THREADS} task threads, one "
        f"batcher) that scores it with the tiny Qwen3 text model (real forward passes, CPU). "
        f"Deadline {Settings().rerank.timeout_ms} ms (the default); a search whose scores do "
        f"not come in time is answered in the engine's order (`degraded`). The engine, Redis, "
        f"the worker, the sidecar and the load generator share the machine's cores, so the "
        f"model's forward passes compete with the proxying: on a GPU machine the worker's share "
        f"goes elsewhere. *direct* is the same search without reranking, straight to the engine."
    )
    return f"{paragraph}\n\n" + "\n".join(lines)


@dataclass
class MemoryResult:
    requests: int
    clients: int
    before_kib: int
    after_kib: int
    peak_kib: int
    rps: float


def measure_memory(engine_url: str, args: argparse.Namespace) -> MemoryResult:
    with SidecarProcess(engine_url) as sidecar:
        path = f"/{SEARCH_INDEX}/_search"
        query = {"match": {"description": f"{COMMON} q__N__"}}  # a query text of its own each
        mix = [
            json.dumps({"query": query}),
            json.dumps({"query": query, "ext": {"rerank": {"window": 10}}}),
        ]
        expect = ["absent", "applied"]
        requests, clients = sized(args, "requests_memory"), args.memory_clients
        warmup = max(500, sized(args, "warmup") * 10)
        unique: dict[str, Any] = {"record": False, "unique": True}
        loadgen([Phase(sidecar.url, path, mix, warmup, clients, expect, **unique)])
        before, _ = rss_kib(sidecar.pid)
        [run] = loadgen([Phase(sidecar.url, path, mix, requests, clients, expect, **unique)])
        after, peak = rss_kib(sidecar.pid)
        sidecar.check_alive()
    return MemoryResult(requests, clients, before, after, peak, run.rps)


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class ProcessRow:
    processes: int
    clients: int
    direct: Measured
    sidecar: Measured


class ServeProcesses:
    """``rerank-sidecar serve --workers N`` as deployed (its own supervisor and children)."""

    def __init__(self, engine_url: str, processes: int) -> None:
        from sidecar.testbed.ports import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "sidecar", "serve", "--workers", str(processes)]
        command += ["--port", self.url.rsplit(":", 1)[1], "--upstream", engine_url]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while len(seen) < processes:  # every child answers before anything is measured
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"serve --workers {processes} did not come up")
            try:
                request = urllib.request.Request(
                    f"{self.url}/_rerank/health", headers={"Connection": "close"}
                )
                with urllib.request.urlopen(request, timeout=2) as answer:
                    seen.add(answer.headers.get("X-Rerank-Process", ""))
            except OSError:
                time.sleep(0.2)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_processes(engine_url: str, args: argparse.Namespace) -> list[ProcessRow]:
    """Pass-through searches at ``--process-clients``: direct, through one sidecar process and
    through two (``serve --workers 2``), interleaved in the same rounds."""
    search, path = search_bodies(), f"/{SEARCH_INDEX}/_search"
    one = ServeProcesses(engine_url, 1)
    try:
        two = ServeProcesses(engine_url, 2)
        try:
            plan = Plan()  # warm-up first: the engine's JIT and every child's pools
            warmup = sized(args, "warmup")
            plan.add(maker(engine_url, path, search, 8)(3 * warmup))
            for served in (one, two):
                plan.add(maker(served.url, path, search, 8, "absent")(warmup))
            cells = []
            for c in int_list(args.process_clients):
                makers = [maker(u, path, search, c) for u in (engine_url, one.url, two.url)]
                cells.append((c, plan.cell(args.rounds, sized(args, "searches"), makers)))
            results = loadgen(plan.phases)
        finally:
            two.close()
    finally:
        one.close()
    rows = []
    for c, pick in cells:
        direct, through_one, through_two = pick(results)
        rows += [ProcessRow(1, c, direct, through_one), ProcessRow(2, c, direct, through_two)]
    return rows


def render_processes(rows: list[ProcessRow], args: argparse.Namespace, version: str) -> str:
    lines = [
        f"{datetime.date.today().isoformat()}, {machine()}; OpenSearch {version}; "
        f"`rerank-sidecar serve --workers N` (SO_REUSEPORT), pass-through searches (no rule), "
        f"{args.rounds} interleaved rounds of {sized(args, 'searches')} searches each direct to "
        f"the engine, through one sidecar process and through two, in the same rounds (the "
        f"direct column is the same for both rows of a client count). The engine, the load "
        f"generator and the sidecar processes share this machine's {os.cpu_count()} cores: a "
        f"second process can only use what the others leave.",
        "",
        "| processes | clients | direct req/s | sidecar req/s | ratio | direct p50 ms "
        "| sidecar p50 ms | sidecar p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.processes} | {r.clients} | {r.direct.rps:.0f} | {r.sidecar.rps:.0f} "
            f"| {r.sidecar.rps / r.direct.rps:.2f} | {r.direct.p50:.2f} | {r.sidecar.p50:.2f} "
            f"| {r.sidecar.p99:.2f} |"
        )
    return "\n".join(lines)


def verdict(failures: list[str]) -> str:
    return "met" if not failures else "**not met** (" + "; ".join(failures) + ")"


def render(
    passthrough: list[PassRow],
    rerank: list[RerankRow],
    cache_calls: int,
    memory: MemoryResult | None,
    args: argparse.Namespace,
    engine_version: str,
) -> tuple[str, str]:
    """The tables, and the paragraph that goes above them."""
    lines = [
        "| operation | clients | direct p50 (ms) | direct p99 (ms) | direct req/s "
        "| sidecar p50 (ms) | sidecar p99 (ms) | sidecar req/s | added p50 (ms) "
        "| added p99 (ms) | throughput sidecar/direct | sidecar CPU per request (ms) "
        "| minimal proxy: added p50 (ms) | minimal proxy: CPU per request (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for r in passthrough:
        lines.append(
            f"| {r.operation} | {r.clients} | {r.direct.p50:.2f} | {r.direct.p99:.2f} | "
            f"{r.direct.rps:.0f} | {r.sidecar.p50:.2f} | {r.sidecar.p99:.2f} | "
            f"{r.sidecar.rps:.0f} | {r.added_p50:+.2f} | {r.added_p99:+.2f} | {r.ratio:.0%} | "
            f"{r.sidecar.cpu_ms_per_request:.2f} | {r.minimal_added_p50:+.2f} | "
            f"{r.minimal.cpu_ms_per_request:.2f} |"
        )
    lines += [
        "",
        "| variant | window | clients | direct size=window p50 (ms) | sidecar p50 (ms) "
        "| sidecar p99 (ms) | added p50 (ms) | X-Rerank-Took-Ms median "
        "| sidecar CPU per request (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in rerank:
        lines.append(
            f"| {x.variant} | {x.window} | {x.clients} | {x.direct.p50:.2f} | "
            f"{x.sidecar.p50:.2f} | {x.sidecar.p99:.2f} | {x.added_p50:+.2f} | "
            f"{x.took_median:.1f} | {x.sidecar.cpu_ms_per_request:.2f} |"
        )
    if memory is not None:
        mib = 1024
        lines += [
            "",
            "| requests (half reranked, window 10) | clients | req/s | RSS before (MiB) "
            "| RSS after (MiB) | difference (MiB) | peak RSS (MiB) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {memory.requests} | {memory.clients} | {memory.rps:.0f} | "
            f"{memory.before_kib / mib:.1f} | {memory.after_kib / mib:.1f} | "
            f"{(memory.after_kib - memory.before_kib) / mib:+.1f} | {memory.peak_kib / mib:.1f} |",
        ]
    table = "\n".join(lines)

    def name(r: PassRow) -> str:
        return f"{r.operation} × {r.clients}"

    p50_fail = [
        f"{name(r)}: {r.added_p50:+.2f} ms"
        for r in passthrough
        if r.added_p50 > BUDGET_ADDED_P50_MS
    ]
    p99_fail = [
        f"{name(r)}: {r.added_p99:+.2f} ms"
        for r in passthrough
        if r.added_p99 > BUDGET_ADDED_P99_MS
    ]
    rps_fail = [f"{name(r)}: {r.ratio:.0%}" for r in passthrough if r.ratio < BUDGET_THROUGHPUT]

    def budget_row(variant: str) -> RerankRow | None:
        for x in rerank:
            if x.variant.startswith(variant) and x.window == BUDGET_WINDOW and x.clients == 1:
                return x
        return None

    def rerank_verdict(variant: str, limit: float) -> str:
        row = budget_row(variant)
        if row is None:
            return f"not measured (no window-{BUDGET_WINDOW} row at 1 client)"
        result = "met" if row.added_p50 <= limit else "**not met**"
        took = f"X-Rerank-Took-Ms median {row.took_median:.1f} ms"
        return f"{result} ({row.added_p50:+.2f} ms added p50; {took})"

    searches, bulks = sized(args, "searches"), sized(args, "bulks")
    cores = os.cpu_count() or 1
    shared = ""
    if cores <= 4:
        shared = (
            f" With {cores} cores for the engine, the sidecar and the load generator together, "
            "the concurrent rows are CPU-bound: there the throughput ratio shows the sidecar's "
            "CPU cost per request more than a limit of the proxy."
        )
    memory_text = ""
    if memory is not None:
        memory_text = (
            f" Memory: the sidecar in a process of its own (zero-cost scorer), RSS from "
            f"/proc/<pid>/status after a warm-up and after {memory.requests} more searches at "
            f"{memory.clients} clients, every other one reranked at window 10, each with a query "
            "text of its own (so anything kept per query would show)."
        )
    paragraph = (
        f"Run {datetime.date.today().isoformat()} on {machine()}; OpenSearch {engine_version} "
        f"(test bed, heap {Settings().testbed.heap}, 1 shard), {args.docs} small documents "
        f"(`title`, `description`). The sidecar and the engine share the machine's cores with "
        f"the load generator, a separate process (aiohttp, one keep-alive session, no "
        f"Accept-Encoding); the sidecar runs on loopback in a process of its own, on the "
        f"event loop `rerank-sidecar serve` uses (uvloop), without access logs. Each cell's "
        f"requests are split into "
        f"{args.rounds} rounds alternating direct and sidecar, after a warm-up. "
        f"*Pass-through*: `POST /{SEARCH_INDEX}/_search` with a match query (no rule, no "
        f"`ext.rerank`; {searches} requests per cell) and `POST /{BULK_INDEX}/_bulk` with "
        f"{args.bulk_docs} documents ({bulks} requests per cell); *added* is sidecar minus "
        f"direct; *sidecar CPU per request* is the sidecar process's user + system CPU time "
        f"(/proc/<pid>/stat) over its requests of the cell: its cost per request, which the "
        f"engine's and the load generator's moving share of the cores does not blur as it "
        f"blurs latencies. The *minimal proxy* is the reference beside it in the same cells: "
        f"an aiohttp app of a dozen lines that reads the body, sends it on with its "
        f"Content-Type and answers with the engine's status, Content-Type and body (not "
        f"transparent: other headers are dropped), on the same event loop: what aiohttp "
        f"itself costs per proxied request. Budgets: added p50 ≤ {BUDGET_ADDED_P50_MS} ms: "
        f"{verdict(p50_fail)}; added p99 "
        f"≤ {BUDGET_ADDED_P99_MS} ms: {verdict(p99_fail)}; throughput ≥ "
        f"{BUDGET_THROUGHPUT:.0%} of direct: {verdict(rps_fail)}.{shared} *Rerank path, model time "
        f"excluded*: a size-10 match search with `ext.rerank.window` W "
        f"({sized(args, 'rerank_requests')} requests per row, {QUERIES} query texts), whole "
        f"`_source` scored; *direct* is the same search sent to the engine at size W (the "
        f"engine's own cost of fetching W hits), so *added* is what the sidecar costs beside "
        f"the model: parsing, building the scoring job, merging, and the engine sending W hits "
        f"to it. The *zero-cost scorer* answers in-process at once (a CRC-32 per document); "
        f"*full cache hit* is the real score cache (Redis) in front of it, filled by one pass "
        f"of the same queries first: its scorer was called {cache_calls} times while measured "
        f"(0: every pair came from Redis). Budgets, window {BUDGET_WINDOW}, 1 client: zero-cost "
        f"≤ {BUDGET_RERANK_MS} ms: {rerank_verdict('zero-cost', BUDGET_RERANK_MS)}; full cache "
        f"hit ≤ {BUDGET_CACHE_HIT_MS} ms: {rerank_verdict('full cache', BUDGET_CACHE_HIT_MS)}."
        f"{memory_text}"
    )
    return paragraph, table


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--searches", type=int, help="search requests per pass-through cell")
    parser.add_argument("--bulks", type=int, help="_bulk requests per pass-through cell")
    parser.add_argument("--bulk-docs", type=int, default=50, help="documents per _bulk request")
    parser.add_argument("--clients", default="1,8,32", help="pass-through concurrent clients")
    parser.add_argument("--rerank-requests", type=int, help="requests per rerank row")
    parser.add_argument("--windows", default="10,100,1000", help="rerank windows")
    parser.add_argument("--rerank-clients", default="1", help="rerank concurrent clients")
    parser.add_argument("--requests-memory", type=int, help="requests of the memory run")
    parser.add_argument("--memory-clients", type=int, default=8)
    parser.add_argument("--skip-memory", action="store_true", help="leave the memory run out")
    parser.add_argument("--warmup", type=int, help="warm-up searches before measuring")
    parser.add_argument("--rounds", type=int, default=10, help="direct/sidecar alternations")
    parser.add_argument("--docs", type=int, default=2000, help="documents in the search index")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sidecar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--cache-redis", help=argparse.SUPPRESS)
    parser.add_argument("--minimal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--celery-broker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--publisher", default="direct", help=argparse.SUPPRESS)
    parser.add_argument("--celery-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only-dispatch", action="store_true", help="measure only the dispatch-cost rows"
    )
    parser.add_argument(
        "--celery-clients", default="1,8,32,128", help="clients of the Celery-worker rows"
    )
    parser.add_argument("--celery-requests", type=int, help="requests per Celery-worker row")
    parser.add_argument(
        "--only-celery", action="store_true", help="measure only the Celery-worker rows"
    )
    parser.add_argument(
        "--process-clients", default="8,32", help="clients of the 1- and 2-process rows"
    )
    parser.add_argument(
        "--only-processes", action="store_true", help="measure only the 1- and 2-process rows"
    )
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main()
        return
    if args.serve_sidecar:
        serve_sidecar_main(
            args.upstream, args.cache_redis, args.minimal, args.celery_broker, args.model_path,
            args.publisher, args.celery_cache,
        )  # fmt: skip
        return
    windows = int_list(args.windows)
    if max(windows) > MAX_WINDOW:
        parser.error(f"the sidecar here allows windows up to {MAX_WINDOW}")
    if args.docs < max(windows):
        parser.error(f"--docs {args.docs} cannot fill a window of {max(windows)}")

    warmup = sized(args, "warmup")
    base = Settings()
    spec = engine_specs(base)["opensearch"]
    print(f"starting OpenSearch {spec.version} …", file=sys.stderr)
    engine = start_engine(spec, base)
    memory: MemoryResult | None = None
    try:
        seed(engine.url, args.docs)
        print("dispatch cost: Celery's publisher vs the sidecar's own message …", file=sys.stderr)
        dispatch_text = render_dispatch(measure_dispatch(engine.url, base, args), spec.version)
        print(dispatch_text)
        if not args.no_write:
            write_section(
                f"## Dispatch cost: sidecar CPU per search scored by a Celery worker "
                f"(`bench/proxy.py`)\n\n{dispatch_text}",
                ROOT / "docs" / "benchmarks.md",
                "proxy-dispatch",
            )
        if args.only_dispatch:
            return
        print("1 and 2 sidecar processes …", file=sys.stderr)
        processes_text = render_processes(measure_processes(engine.url, args), args, spec.version)
        print(processes_text)
        if not args.no_write:
            write_section(
                f"## Several sidecar processes on one port (`bench/proxy.py`)\n\n{processes_text}",
                ROOT / "docs" / "benchmarks.md",
                "proxy-processes",
            )
        if args.only_processes:
            return
        print("reranked through a Celery worker …", file=sys.stderr)
        celery_rows, _ = measure_celery(engine.url, base, args)
        celery_text = render_celery(celery_rows, args, spec.version)
        print(celery_text)
        if not args.no_write:
            write_section(
                f"## Reranked searches through a Celery worker (`bench/proxy.py`)\n\n{celery_text}",
                ROOT / "docs" / "benchmarks.md",
                "proxy-celery",
            )
        if args.only_celery:
            return
        # The JVM compiles its hot paths during the first few hundred searches: not in any cell.
        print("warming the engine up …", file=sys.stderr)
        mixed = [*search_bodies(), *search_bodies(size=100), *search_bodies(size=max(windows))]
        loadgen([maker(engine.url, f"/{SEARCH_INDEX}/_search", mixed, 4)(max(300, 3 * warmup))])
        redis_server = start_redis(base)
        try:
            with (
                SidecarProcess(engine.url) as zero,
                SidecarProcess(engine.url, cache_redis=redis_server.url) as cached,
                SidecarProcess(engine.url, minimal=True) as minimal,
            ):
                print("pass-through …", file=sys.stderr)
                clients = int_list(args.clients)
                passthrough = measure_passthrough(engine.url, zero, minimal, args, clients)
                print("rerank path …", file=sys.stderr)
                rerank, cache_calls = measure_rerank(engine.url, zero, cached, args)
                zero.check_alive()
                cached.check_alive()
        finally:
            redis_server.stop()
        if not args.skip_memory:
            print("memory …", file=sys.stderr)
            memory = measure_memory(engine.url, args)
    finally:
        engine.stop()

    paragraph, table = render(passthrough, rerank, cache_calls, memory, args, spec.version)
    print(paragraph + "\n\n" + table)
    if args.no_write:
        return
    markdown = f"## Search proxy overhead (`bench/proxy.py`)\n\n{paragraph}\n\n{table}"
    write_section(markdown, ROOT / "docs" / "benchmarks.md", "proxy")


if __name__ == "__main__":
    main()
