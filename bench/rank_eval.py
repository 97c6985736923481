"""``_rank_eval`` through the sidecar vs the engine's own: same engine, same body, same run.

    .venv/bin/python bench/rank_eval.py              # OpenSearch 2.x, Redis, a Celery worker
    .venv/bin/python bench/rank_eval.py --quick --no-write

Starts the test bed's OpenSearch 2.x (with its rank-eval module), a real redis-server and a real
Celery worker serving the tiny Qwen3 text model, indexes a synthetic catalog of short product
titles, builds rated requests (match queries, 5 to 20 ratings each, taken from the engine's top
30 hits) and times one ``_rank_eval`` body (nDCG@10) five ways, interleaved round by round:

- (a) the engine's own ``_rank_eval``, straight to the engine;
- (b) through the sidecar when it passes through (no rule for the index);
- (c) through the sidecar computing the engine's order itself (``X-Rerank-Eval: sidecar``);
- (d) reranked: the same body on an alias a rule reranks (the tiny model, window 20, through the
  worker), score cache off, so every repeat pays the model;
- (e) the same with the score cache warm (its warm-up run filled it): the sidecar's own cost
  beside the model.

A reference row (r) sends the same searches straight to the engine's ``_search``, as many at
once as ``_rank_eval`` runs them: what the searches cost over HTTP, without any evaluation.
(a) and (c) must give the same ``metric_score`` (and details), and (b) the engine's bytes; if
not, the script says so, writes nothing and exits 1. Each sidecar runs in a process of its
own, on the event loop `rerank-sidecar serve` uses; the client is the bench process, one call
at a time. Prints the table and replaces the rank-eval section of docs/benchmarks.md unless
``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.proxy import engine_call, percentile  # noqa: E402
from bench.report import machine, write_section  # noqa: E402
from bench.serving import serve_until_stdin_closes  # noqa: E402
from sidecar.app import create_app  # noqa: E402
from sidecar.search.options import Fields, Profile  # noqa: E402
from sidecar.settings import (  # noqa: E402
    CelerySettings,
    DispatchSettings,
    RerankRule,
    RerankSettings,
    Settings,
    UpstreamSettings,
)
from sidecar.testbed import engine_specs, start_engine, start_redis, start_worker  # noqa: E402
from workers.contract import ModelSpec  # noqa: E402
from workers.random_models import cached_tiny_model  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
INDEX = "rank-eval"
ALIAS = "rank-eval-reranked"  # the same index; a rule reranks searches written with this name
MODEL = "tiny-text"
PROFILE = "titles"
WINDOW = 20
K = 10
METRIC = {"dcg": {"k": K, "normalize": True}}
CONCURRENT_SEARCHES = 10  # _rank_eval's default max_concurrent_searches, the engine's and ours
WORKER_THREADS = CONCURRENT_SEARCHES  # one task thread per search in flight: all reach the batcher
RATED_FROM = 30  # rated documents are drawn from the engine's top hits of each query
DEFAULTS = {"requests": 100, "repeats": 20, "warmup": 2, "engine_warmup": 5}
QUICK = {"requests": 20, "repeats": 2, "warmup": 1, "engine_warmup": 1}
QUIET_JIT_MS = 20.0  # JIT compiler CPU per second under which the engine counts as warm
QUIET_LIMIT_S = 60.0

COLORS = ["red", "blue", "green", "black", "white", "grey", "navy", "yellow", "brown", "orange"]
MATERIALS = ["wool", "cotton", "leather", "linen", "denim", "fleece", "silk", "suede", "nylon"]
ITEMS = [
    "shoes", "jacket", "scarf", "boots", "socks", "shirt", "gloves", "hat", "bag", "shorts",
    "trousers", "sweater", "coat", "belt", "cap", "dress",
]  # fmt: skip
STYLES = ["running", "trail", "rain", "winter", "summer", "hiking", "casual", "sport", "slim"]


# ---------------------------------------------------------------------------------------------
# The catalog and the rated requests


def document(rng: random.Random) -> dict[str, str]:
    """A short product: always a colour and an item, often a style and a material."""
    color, item = rng.choice(COLORS), rng.choice(ITEMS)
    style = rng.choice(STYLES) if rng.random() < 0.6 else ""
    material = rng.choice(MATERIALS) if rng.random() < 0.6 else ""
    title = " ".join(w for w in (style, color, material, item) if w)
    description = f"{rng.choice(['light', 'warm', 'soft', 'sturdy'])} {item}, {color}"
    return {"title": title, "description": description}


def seed(engine_url: str, count: int) -> list[dict[str, str]]:
    """``INDEX`` (one shard, one segment) with ``count`` documents, and ``ALIAS`` on it."""
    rng = random.Random(20261202)
    docs = [document(rng) for _ in range(count)]
    body = {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "description": {"type": "text"}}},
        "aliases": {ALIAS: {}},
    }
    engine_call(engine_url, "PUT", f"/{INDEX}", body)
    for start in range(0, count, 1000):
        lines = "".join(
            json.dumps({"index": {"_index": INDEX, "_id": str(i)}}) + "\n" + json.dumps(d) + "\n"
            for i, d in enumerate(docs[start : start + 1000], start)
        )
        answer = engine_call(engine_url, "POST", "/_bulk", ndjson=lines.encode())
        if answer.get("errors"):
            raise RuntimeError(f"seeding {INDEX} failed: {str(answer)[:500]}")
    engine_call(engine_url, "POST", f"/{INDEX}/_refresh")
    engine_call(engine_url, "POST", f"/{INDEX}/_forcemerge?max_num_segments=1")
    found = engine_call(engine_url, "POST", f"/{INDEX}/_count")["count"]
    if found != count:
        raise RuntimeError(f"{INDEX} holds {found} documents, not {count}")
    return docs


def query_texts(count: int) -> list[str]:
    """``count`` distinct queries of two or three of a product's words."""
    rng = random.Random(7)
    texts: list[str] = []
    while len(texts) < count:
        words = [rng.choice(COLORS), rng.choice(ITEMS)]
        if rng.random() < 0.5:
            words.insert(0, rng.choice(STYLES + MATERIALS))
        text = " ".join(words)
        if text not in texts:
            texts.append(text)
    return texts


def rated_body(engine_url: str, docs: list[dict[str, str]], count: int) -> dict[str, Any]:
    """The ``_rank_eval`` body: ``count`` match queries on ``title``, each with 5 to 20 rated
    documents drawn from its top ``RATED_FROM`` hits (the rest of its top 10 stays unrated),
    rated by how many of the query's words the title holds (0 to 3)."""
    texts = query_texts(count)
    searches = "".join(
        json.dumps({"index": INDEX})
        + "\n"
        + json.dumps({"query": {"match": {"title": t}}, "size": RATED_FROM, "_source": False})
        + "\n"
        for t in texts
    ).encode()
    answers = engine_call(engine_url, "POST", "/_msearch", ndjson=searches)["responses"]
    rng = random.Random(11)
    requests = []
    for n, (text, answer) in enumerate(zip(texts, answers, strict=True)):
        ids = [hit["_id"] for hit in answer["hits"]["hits"]]
        chosen = rng.sample(ids, min(len(ids), rng.randint(5, 20)))
        words = set(text.split())
        ratings = [
            {"_index": INDEX, "_id": i, "rating": len(words & set(docs[int(i)]["title"].split()))}
            for i in chosen
        ]
        requests.append(
            {
                "id": f"q{n:03d}",
                "request": {"query": {"match": {"title": text}}},
                "ratings": ratings,
            }
        )
    return {"requests": requests, "metric": METRIC}


# ---------------------------------------------------------------------------------------------
# The sidecar in a process of its own (--serve-sidecar), as `rerank-sidecar serve` runs it


def sidecar_settings(engine_url: str, broker: str, model_path: str, cache: bool) -> Settings:
    """The sidecar as deployed: a rule reranks ``ALIAS`` with the tiny Qwen3 text model on the
    titles, scoring jobs through Redis to the Celery worker; the score cache on or off. The
    deadline is long enough that no evaluation degrades on a slow machine."""
    profile = Profile(model=MODEL, window=WINDOW, fields=Fields(text=["title"]))
    return Settings(
        upstream=UpstreamSettings(urls=[engine_url]),
        celery=CelerySettings(broker_url=broker),
        models={MODEL: ModelSpec(path=model_path, kind="qwen3", device="cpu")},
        dispatch=DispatchSettings(cache_enabled=cache),
        rerank=RerankSettings(
            profiles={PROFILE: profile},
            rules=[RerankRule(index=[ALIAS], profile=PROFILE)],
            timeout_ms=120_000,
            max_timeout_ms=120_000,
        ),
    )


def serve_sidecar_main(upstream: str, broker: str, model_path: str, cache: bool) -> None:
    """Serve the sidecar on a free loopback port and print the port as JSON; stop when stdin
    closes."""

    serve_until_stdin_closes(
        lambda: create_app(sidecar_settings(upstream, broker, model_path, cache))
    )


class SidecarProcess:
    """A ``--serve-sidecar`` child in a session (and process group) of its own: its URL and pid."""

    def __init__(self, upstream: str, broker: str, model_path: str, cache: bool) -> None:
        command = [sys.executable, SCRIPT, "--serve-sidecar", "--upstream", upstream]
        command += ["--broker", broker, "--model-path", model_path]
        if cache:
            command.append("--cache")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.pid = self.process.pid
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.__exit__()
            raise RuntimeError(f"the sidecar process did not start:\n{self.log_tail()}")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"

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
        if not self.process.stdin.closed:
            self.process.stdin.close()  # the sidecar stops when its stdin closes
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def group_cpu_ms(groups: dict[str, int]) -> dict[str, float]:
    """User + system CPU time so far, in ms, of each process group (every test-bed server and
    each sidecar leads its own, so a server's forks and the engine's JVM under its start script
    count for it), and as ``jit`` the engine's JIT compiler threads (``C1 CompilerThre``, ``C2
    CompilerThre``). /proc/<pid>/stat, fields 5 (pgrp), 14 and 15; /proc/<pid>/task/*/comm."""
    names = {pgid: name for name, pgid in groups.items()}
    totals = dict.fromkeys(groups, 0.0)
    if "engine" in groups:
        totals["jit"] = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited meanwhile
            continue
        name = names.get(int(fields[2]))
        if name is not None:
            totals[name] += (int(fields[11]) + int(fields[12])) / tick * 1000
        if name == "engine":
            totals["jit"] += jit_cpu_ms(entry.path, tick)
    return totals


def jit_cpu_ms(process: str, tick: int) -> float:
    total = 0.0
    for thread in os.scandir(f"{process}/task"):
        try:
            if not Path(thread.path, "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                continue
            fields = Path(thread.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick * 1000
    return total


async def until_quiet(groups: dict[str, int], limit_s: float) -> float:
    """Wait (at most ``limit_s``) until the engine's JIT compilers are done with the backlog the
    warm-up left: a second in which they used under ``QUIET_JIT_MS``. Returns the seconds
    waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = group_cpu_ms(groups)["jit"]
        await asyncio.sleep(1)
        if group_cpu_ms(groups)["jit"] - before < QUIET_JIT_MS:
            break
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Variant:
    key: str
    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    evaluated_by: str | None = None  # the X-Rerank-Eval the answer must carry (None: absent)
    reranked: bool = False  # every rated request's X-Rerank-Status must be "applied"
    searches: list[bytes] | None = None  # the reference: these to url, CONCURRENT_SEARCHES at once
    sidecar_pid: int | None = None  # the sidecar process that serves this row


@dataclass
class Call:
    seconds: float
    cpu_ms: dict[str, float]
    body: bytes


@dataclass
class Row:
    variant: Variant
    calls: list[Call]

    @property
    def median_ms(self) -> float:
        return statistics.median(c.seconds for c in self.calls) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile([c.seconds for c in self.calls], 0.95) * 1000

    def cpu_ms(self, group: str) -> float | None:
        if group not in self.calls[0].cpu_ms:
            return None
        # The mean, not the median: /proc counts in clock ticks (10 ms), a call's share is a
        # few ticks, and only the sum over the repeats resolves it.
        return statistics.fmean(c.cpu_ms[group] for c in self.calls)

    def metric_scores(self) -> list[Any]:
        return [json.loads(c.body)["metric_score"] for c in self.calls if c.body]


async def call_once(
    session: aiohttp.ClientSession, variant: Variant, body: bytes, groups: dict[str, int]
) -> Call:
    headers = {"Content-Type": "application/json", **variant.headers}
    if variant.sidecar_pid is not None:
        groups = {**groups, "sidecar": variant.sidecar_pid}
    before = group_cpu_ms(groups)
    if variant.searches is not None:
        gate = asyncio.Semaphore(CONCURRENT_SEARCHES)

        async def search(data: bytes) -> None:
            async with gate, session.post(variant.url, data=data, headers=headers) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{variant.url}: HTTP {response.status}: {answer[:300]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(search(s) for s in variant.searches))
        seconds = time.perf_counter() - started
        return Call(seconds, diff(group_cpu_ms(groups), before), b"")
    started = time.perf_counter()
    async with session.post(variant.url, data=body, headers=headers) as response:
        data = await response.read()
    seconds = time.perf_counter() - started
    cpu = diff(group_cpu_ms(groups), before)
    problem = check_answer(variant, response.status, response.headers, data)
    if problem:
        raise RuntimeError(f"({variant.key}) {variant.label}: {problem}")
    return Call(seconds, cpu, data)


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


def check_answer(variant: Variant, status: int, headers: Any, data: bytes) -> str:
    """What is wrong with an answer (empty: nothing)."""
    if status != 200:
        return f"HTTP {status}: {data[:500]!r}"
    if headers.get("X-Rerank-Eval") != variant.evaluated_by:
        return f"X-Rerank-Eval {headers.get('X-Rerank-Eval')!r}, wanted {variant.evaluated_by!r}"
    if variant.reranked:
        statuses = set((headers.get("X-Rerank-Status") or "").split(", "))
        if statuses != {"applied"}:
            return f"not every rated request was reranked: X-Rerank-Status {statuses}"
    failures = json.loads(data).get("failures")
    if failures:
        return f"failures: {json.dumps(failures)[:500]}"
    return ""


def build_variants(
    engine_url: str, plain: SidecarProcess, cached: SidecarProcess, searches: list[bytes]
) -> list[Variant]:
    """The rows, in the order each round runs them; (a) first, the baseline."""
    evaluated = {"X-Rerank-Eval": "sidecar"}
    reranked: dict[str, Any] = {"evaluated_by": "sidecar", "reranked": True}
    return [
        Variant("a", "engine's own `_rank_eval`", f"{engine_url}/{INDEX}/_rank_eval"),
        Variant(
            "b", "sidecar, pass-through", f"{plain.url}/{INDEX}/_rank_eval", sidecar_pid=plain.pid
        ),
        Variant(
            "c",
            "sidecar computes the engine's order (`X-Rerank-Eval: sidecar`)",
            f"{plain.url}/{INDEX}/_rank_eval",
            evaluated,
            "sidecar",
            sidecar_pid=plain.pid,
        ),
        Variant(
            "d",
            f"sidecar, reranked (window {WINDOW}), score cache off",
            f"{plain.url}/{ALIAS}/_rank_eval",
            sidecar_pid=plain.pid,
            **reranked,
        ),
        Variant(
            "e",
            f"sidecar, reranked (window {WINDOW}), score cache warm",
            f"{cached.url}/{ALIAS}/_rank_eval",
            sidecar_pid=cached.pid,
            **reranked,
        ),
        Variant(
            "r",
            f"reference: the {len(searches)} searches straight to `_search`",
            f"{engine_url}/{INDEX}/_search",
            searches=searches,
        ),
    ]


async def measure(
    variants: list[Variant],
    body: bytes,
    warm_searches: list[list[bytes]],
    groups: dict[str, int],
    args: argparse.Namespace,
) -> tuple[list[Row], Warmth]:
    """Rounds of one call of every variant in turn (a b c d e r a b …); a slow spell of the
    machine falls on every variant alike. Before them: the engine warmed up (the rated searches
    straight to it in both shapes the sidecar sends, and its own ``_rank_eval``), ``warmup``
    rounds that are not kept, a wait until the JVM's compilers are quiet, and what each
    process group spends doing nothing for ``IDLE_S`` (the floor under the CPU columns)."""
    rows = [Row(v, []) for v in variants]
    engine = variants[0]
    shapes = [
        Variant("w", "warm-up", engine.url.removesuffix("_rank_eval") + "_search", searches=s)
        for s in warm_searches
    ]
    async with aiohttp.ClientSession(
        # No Accept-Encoding: the engine answers uncompressed to every variant alike.
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        timeout=aiohttp.ClientTimeout(total=600),
    ) as session:
        print("warming the engine up …", file=sys.stderr)
        for _ in range(sized(args, "engine_warmup")):
            for warm in (*shapes, engine):
                await call_once(session, warm, body, groups)
        for _ in range(sized(args, "warmup")):
            for row in rows:
                await call_once(session, row.variant, body, groups)
        waited = await until_quiet(groups, QUIET_LIMIT_S)
        before = group_cpu_ms(groups)
        await asyncio.sleep(IDLE_S)
        idle = {k: v / IDLE_S for k, v in diff(group_cpu_ms(groups), before).items()}
        sidecars = {v.sidecar_pid for v in variants if v.sidecar_pid is not None}
        ours = {**groups, **{f"sidecar {pid}": pid for pid in sidecars}}
        machine_before, ours_before = busy_ms(), ours_cpu_ms(ours)
        started = time.perf_counter()
        repeats = sized(args, "repeats")
        for n in range(repeats):
            print(f"round {n + 1}/{repeats} …", file=sys.stderr)
            for row in rows:
                row.calls.append(await call_once(session, row.variant, body, groups))
        elapsed = time.perf_counter() - started
        others = (busy_ms() - machine_before) - (ours_cpu_ms(ours) - ours_before)
    return rows, Warmth(waited, idle, others / elapsed)


def busy_ms() -> float:
    """CPU time the whole machine has spent in user and system mode so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system = (int(x) for x in fields[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK") * 1000


def ours_cpu_ms(groups: dict[str, int]) -> float:
    """The CPU time of the bench's own processes so far: the servers, the sidecars, this one."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = group_cpu_ms(groups)
    cpu.pop("jit", None)  # already counted in the engine's
    return sum(cpu.values()) + (usage.ru_utime + usage.ru_stime) * 1000


@dataclass
class Warmth:
    waited_s: float  # how long the JIT compilers took to go quiet after the warm-up
    idle: dict[str, float]  # CPU ms per second of each group, idle
    others: float  # CPU ms per second that other processes used during the measured rounds


def window_searches(body: dict[str, Any]) -> list[bytes]:
    """The rated searches as the reranked path sends them: the window, with the titles."""
    return [
        dumps_bytes({**q["request"], "size": WINDOW, "_source": {"includes": ["title"]}})
        for q in body["requests"]
    ]


def dumps_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---------------------------------------------------------------------------------------------
# Checks and report


def like_with_like(rows: dict[str, Row]) -> list[str]:
    """Why the numbers would not compare like with like (empty: they do)."""
    problems = []
    engine = rows["a"].calls[0].body
    expected = json.loads(engine)
    for call in rows["c"].calls:
        got = json.loads(call.body)
        if got["metric_score"] != expected["metric_score"]:
            problems.append(
                f"(c) metric_score {got['metric_score']!r} != the engine's "
                f"{expected['metric_score']!r}"
            )
            break
        if got["details"] != expected["details"]:
            problems.append("(c) details differ from the engine's")
            break
    if any(c.body != engine for c in rows["a"].calls + rows["b"].calls):
        problems.append("(b) or a repeat of (a) is not byte for byte the first answer of (a)")
    return problems


def tiny_model(path: str) -> str:
    config = json.loads((Path(path) / "config.json").read_text())
    return (
        f"tiny random-weight Qwen3 text model (hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers, the real Qwen tokenizer), fp32"
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


GROUPS = ("engine", "jit", "sidecar", "worker", "redis")
IDLE_S = 3.0


def cpu_cell(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.0f}"


def render(
    rows: list[Row],
    body: dict[str, Any],
    args: argparse.Namespace,
    engine_version: str,
    model: str,
    warmth: Warmth,
    problems: list[str],
) -> tuple[str, str]:
    """The table, and the paragraph that goes above it."""
    by_key = {r.variant.key: r for r in rows}
    count = len(body["requests"])
    a, c, d, e, ref = (by_key[k] for k in "acder")
    lines = [
        "| run | median (ms) | p95 (ms) | per rated request (ms) | added to (a), median (ms) "
        "| added per rated request (ms) | engine CPU (ms) | of which JIT compilers (ms) "
        "| sidecar CPU (ms) | worker CPU (ms) | Redis CPU (ms) | metric_score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        added = r.median_ms - a.median_ms
        added_cells = "– | –" if r is a else f"{added:+.1f} | {added / count:+.2f}"
        scores = sorted(set(r.metric_scores()))
        score = "–" if not scores else " / ".join(f"{s:.6f}" for s in scores)
        cells = " | ".join(cpu_cell(r.cpu_ms(g)) for g in GROUPS)
        lines.append(
            f"| ({r.variant.key}) {r.variant.label} | {r.median_ms:.1f} | {r.p95_ms:.1f} | "
            f"{r.median_ms / count:.2f} | {added_cells} | {cells} | {score} |"
        )
    table = "\n".join(lines)

    def cpu(row: Row, group: str) -> float:
        return row.cpu_ms(group) or 0.0

    ratings = [len(q["ratings"]) for q in body["requests"]]
    repeats, warmup = sized(args, "repeats"), sized(args, "warmup")
    pairs = count * WINDOW
    if problems:
        checks = "**failed**: " + "; ".join(problems)
    else:
        checks = (
            "(c)'s `metric_score` is the engine's to the last bit and its `details` equal, in "
            "every repeat; (b) is the engine's answer byte for byte"
        )
    checks += "; every rated request of (d) and (e) was reranked (`X-Rerank-Status: applied`)."
    d_scores = sorted(set(d.metric_scores()))
    if len(d_scores) > 1:
        spread = max(d_scores) - min(d_scores)
        checks += (
            f" (d)'s `metric_score` took {len(d_scores)} values over its {repeats} repeats "
            f"(spread {spread:.1e}): with the cache off, each repeat's pairs are batched "
            "differently, fp32 scores of a padded batch differ in their last bits (within "
            "the 1e-5 the scorer is held to), and that is enough to swap hits the tiny random "
            "model scores almost alike; (e) keeps the scores its warm-up computed."
        )
    idle = ", ".join(f"{g} {warmth.idle[g]:.0f}" for g in GROUPS if g in warmth.idle)
    paragraph = (
        f"Run {datetime.date.today().isoformat()} on {machine()} ({cpu_model()}; no GPU); "
        f"OpenSearch {engine_version} (test bed, heap {Settings().testbed.heap}, its rank-eval "
        f"module from Maven Central), one shard of {args.docs} short product titles. One "
        f"`_rank_eval` body: {count} rated requests (match queries of 2–3 words on `title`), "
        f"{min(ratings)}–{max(ratings)} ratings each ({sum(ratings)} in all, drawn from each "
        f"query's top {RATED_FROM}, so some of the top {K} are unrated), metric "
        f"`{json.dumps(METRIC)}`, `max_concurrent_searches` the default "
        f"{CONCURRENT_SEARCHES}. Every row sends that same body; a row's time is the whole "
        f"`_rank_eval` call as the client sees it (the bench process, one call at a time, "
        f"keep-alive, no Accept-Encoding): median and p95 (nearest rank) of {repeats} repeats, "
        f"the rows interleaved round by round, after {plural(warmup, 'warm-up round')}. Before "
        f"those, the engine was warmed up ({plural(sized(args, 'engine_warmup'), 'pass')} of the "
        f"rated searches "
        f"in both shapes the sidecar sends and of its own `_rank_eval`), and the bench waited "
        f"{warmth.waited_s:.0f} s, until a second in which its JIT compilers used under "
        f"{QUIET_JIT_MS:.0f} ms. The sidecars run in "
        f"processes of their own on the event loop `rerank-sidecar serve` uses, without access "
        f"logs. (b) and (c) go to `/{INDEX}`, which no rule names; (d) and (e) to `/{ALIAS}`, "
        f"an alias of the same index that a rule reranks on the titles with the {model}, window "
        f"{WINDOW} (each rated request's top {WINDOW} scored, its top {K} evaluated), through "
        f"Redis to a real Celery worker ({WORKER_THREADS} task threads, one batcher, CPU): (d) "
        f"with the score cache off, so every repeat scores {pairs} pairs; (e) a second sidecar "
        f"with the cache on, which its warm-up rounds filled. (r) is a reference, not an "
        f"evaluation: the same {count} searches (size {K}, no `_source`) straight to the "
        f"engine's `_search`, {CONCURRENT_SEARCHES} at once, from the bench's client. The CPU "
        f"columns are each process group's user + system time during a call (/proc, mean over "
        f"the repeats): the engine's JVM (and, of it, its C1/C2 JIT compiler threads), the "
        f"sidecar that served the row, the Celery worker, Redis; idle, they spend (ms per "
        f"second) {idle}. The engine, Redis, the worker and the sidecar share the machine's "
        f"cores; processes outside the bench used {warmth.others:.0f} ms of CPU per second "
        f"during the measured rounds. Checks, in this run: {checks} Where the time goes: the "
        f"sidecar's own evaluation (c) adds {c.median_ms - a.median_ms:+.1f} ms to the engine's "
        f"{a.median_ms:.1f} ms, while the same searches alone over HTTP (r) take "
        f"{ref.median_ms:.1f} ms: the engine runs a rated request's search inside itself, the "
        f"sidecar sends each over HTTP and parses its answer ({cpu(c, 'sidecar'):.0f} ms of "
        f"sidecar CPU per call, and the engine's CPU goes from {cpu(a, 'engine'):.0f} to "
        f"{cpu(c, 'engine'):.0f} ms). Reranked with the cache off (d), the model's share is "
        f"(d) − (e) = {d.median_ms - e.median_ms:.0f} ms, the worker's CPU "
        f"{cpu(d, 'worker'):.0f} ms per call ({cpu(d, 'worker') / pairs:.2f} ms per pair); "
        f"sending the {count} scoring jobs through Celery and awaiting them costs the sidecar "
        f"{cpu(d, 'sidecar') - cpu(e, 'sidecar'):.0f} ms of CPU more than the cache hits of "
        f"(e) ({(cpu(d, 'sidecar') - cpu(e, 'sidecar')) / count:.1f} ms per job). With the "
        f"cache warm (e), reranking adds {e.median_ms - c.median_ms:+.1f} ms to (c) "
        f"({(e.median_ms - c.median_ms) / count:+.2f} ms per rated request; "
        f"{cpu(e, 'sidecar') - cpu(c, 'sidecar'):+.0f} ms of sidecar CPU: each window of "
        f"{WINDOW} hits fetched with its titles and parsed, {pairs} score-cache lookups, the "
        f"merge)."
    )
    return paragraph, table


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('s') else 's'}"


def sized(args: argparse.Namespace, name: str) -> int:
    value: int | None = getattr(args, name)
    if value is not None:
        return value
    return (QUICK if args.quick else DEFAULTS)[name]


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--requests", type=int, help="rated requests in the body")
    parser.add_argument("--repeats", type=int, help="measured calls per row")
    parser.add_argument("--warmup", type=int, help="rounds before measuring")
    parser.add_argument("--engine-warmup", type=int, help="engine _rank_evals before that")
    parser.add_argument("--docs", type=int, default=3000, help="documents in the index")
    parser.add_argument("--serve-sidecar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sidecar:
        serve_sidecar_main(args.upstream, args.broker, args.model_path, args.cache)
        return

    started = time.monotonic()
    base = Settings()
    spec = engine_specs(base)["opensearch"]
    model_path = str(cached_tiny_model("qwen3", base.cache_dir))
    threads = base.model_copy(
        update={"testbed": base.testbed.model_copy(update={"worker_concurrency": WORKER_THREADS})}
    )
    print(f"starting OpenSearch {spec.version} …", file=sys.stderr)
    engine = start_engine(spec, base)
    try:
        docs = seed(engine.url, args.docs)
        body = rated_body(engine.url, docs, sized(args, "requests"))
        data = json.dumps(body).encode()
        searches = [
            dumps_bytes({**q["request"], "size": K, "_source": False}) for q in body["requests"]
        ]
        redis_server = start_redis(base)
        try:
            print("starting the Celery worker …", file=sys.stderr)
            models = {MODEL: ModelSpec(path=model_path, kind="qwen3", device="cpu")}
            worker = start_worker(threads, redis_server.url, models=models)
            try:
                with (
                    SidecarProcess(engine.url, redis_server.url, model_path, False) as plain,
                    SidecarProcess(engine.url, redis_server.url, model_path, True) as cached,
                ):
                    variants = build_variants(engine.url, plain, cached, searches)
                    groups = {
                        "engine": engine.process.pid,
                        "worker": worker.process.pid,
                        "redis": redis_server.process.pid,
                    }
                    rows, warmth = asyncio.run(
                        measure(variants, data, [searches, window_searches(body)], groups, args)
                    )
                    plain.check_alive()
                    cached.check_alive()
            finally:
                worker.stop()
        finally:
            redis_server.stop()
    finally:
        engine.stop()

    problems = like_with_like({r.variant.key: r for r in rows})
    model = tiny_model(model_path)
    paragraph, table = render(rows, body, args, spec.version, model, warmth, problems)
    print(paragraph + "\n\n" + table)
    print(f"(the whole run took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if problems:
        for problem in problems:
            print(f"WARNING: {problem}", file=sys.stderr)
        print("the rows do not compare like with like: nothing written", file=sys.stderr)
        sys.exit(1)
    if args.no_write:
        return
    markdown = (
        f"## `_rank_eval` through the sidecar (`bench/rank_eval.py`)\n\n{paragraph}\n\n{table}"
    )
    write_section(markdown, ROOT / "docs" / "benchmarks.md", "rank-eval")


if __name__ == "__main__":
    main()
