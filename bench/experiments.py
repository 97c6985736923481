"""Search latency with experiment logging on vs off, and with the UBI cluster slow or down.

    .venv/bin/python bench/experiments.py              # OpenSearch 2.x, Redis, four sidecars
    .venv/bin/python bench/experiments.py --quick --no-write

Starts the test bed's OpenSearch 2.x and a real redis-server, indexes bench/proxy.py's catalog
and runs four sidecar processes side by side, each reranking the same searches (window 20,
bench/proxy.py's zero-cost scorer, so what is measured is the sidecar and the engine, not a
model):

- (a) a rule reranks the index: no experiment, nothing logged (the baseline);
- (b) an A/B experiment on the index (two profiles of the same cost, users from
  ``ext.rerank.user``, a new user per search): every search is assigned and its ``ubi_queries``
  document is written to the engine;
- (c) the same experiment writing UBI to a cluster that accepts connections and never answers
  (a stalled node, writer timeout 2 s);
- (d) the same experiment writing UBI to a port where nothing listens (a stopped cluster).

The rows run interleaved round by round from one load-generator process (bench/proxy.py's),
``--clients`` searches in flight. (c) and (d) must not be slower than (b) beyond noise: the
writer's buffer and timeout keep a sick cluster off the request path. After the run each
sidecar's ``rerank_sidecar_ubi_documents`` counters say what was written and what dropped
(and why); (b) must have written every search, (c) and (d) written none. Prints the table and
replaces the experiments section of docs/benchmarks.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.proxy import (  # noqa: E402
    COMMON,
    SEARCH_INDEX,
    WORDS,
    Measured,
    Phase,
    ZeroCostDispatcher,
    engine_call,
    loadgen,
    percentile,
    seed,
)
from bench.report import machine, write_section  # noqa: E402
from bench.serving import serve_until_stdin_closes  # noqa: E402
from sidecar.app import create_app  # noqa: E402
from sidecar.settings import Settings  # noqa: E402
from sidecar.testbed import engine_specs, start_engine, start_redis  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
WINDOW = 20
UBI_TIMEOUT_S = 2.0
ROWS = {
    "baseline": "(a) reranked, no experiment (nothing logged)",
    "logged": "(b) experiment, UBI written to the engine",
    "stalled": "(c) experiment, UBI cluster stalled (never answers)",
    "stopped": "(d) experiment, UBI cluster stopped (connection refused)",
}
DEFAULTS = {"requests": 400, "rounds": 5, "warmup": 200}
QUICK = {"requests": 60, "rounds": 2, "warmup": 40}


def settings_for(row: str, engine_url: str, redis_url: str, ubi_url: str | None) -> dict[str, Any]:
    """One row's sidecar: the same rerank profile everywhere; an experiment except in (a)."""
    profile = {"window": WINDOW, "fields": {"text": ["description"]}}
    config: dict[str, Any] = {
        "upstream": {"urls": [engine_url]},
        "celery": {"broker_url": redis_url},
        "dispatch": {"cache_enabled": False},
        "rerank": {
            "default_model": "qwen3-reranker-0.6b",
            "profiles": {"a": profile, "b": {**profile, "instruction": "Rank by relevance"}},
            "rules": [{"index": [SEARCH_INDEX], "profile": "a"}],
        },
    }
    if row != "baseline":
        config["experiments"] = [
            {
                "name": "bench",
                "indices": [SEARCH_INDEX],
                "variants": [{"name": "a", "profile": "a"}, {"name": "b", "profile": "b"}],
                "key": "ext.rerank.user",
            }
        ]
        config["ubi"] = {"urls": [ubi_url or engine_url], "request_timeout_s": UBI_TIMEOUT_S}
    return config


def serve_sidecar_main(config_path: str) -> None:
    """Serve the sidecar of ``config_path`` (with the zero-cost scorer) on a free loopback port,
    print the port as JSON; stop when stdin closes."""

    settings = Settings.model_validate(json.loads(Path(config_path).read_text()))

    serve_until_stdin_closes(lambda: create_app(settings, dispatcher=ZeroCostDispatcher()))


class Sidecar:
    """A ``--serve-sidecar`` child serving one row's settings."""

    def __init__(self, config: dict[str, Any]) -> None:
        import select
        import subprocess

        self._config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        json.dump(config, self._config)
        self._config.close()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        command = [sys.executable, SCRIPT, "--serve-sidecar", self._config.name]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"a sidecar did not start:\n{self.log_tail()}")
        self.pid = self.process.pid
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"

    def ubi_documents(self) -> dict[str, float]:
        """``rerank_sidecar_ubi_documents`` of ubi_queries, by outcome."""
        with urllib.request.urlopen(f"{self.url}/_rerank/metrics", timeout=30) as response:
            text = response.read().decode()
        found: dict[str, float] = {}
        pattern = r"^rerank_sidecar_ubi_documents_total\{([^}]*)\} (\S+)$"
        for labels, value in re.findall(pattern, text, re.MULTILINE):
            if 'index="ubi_queries"' in labels:
                outcome = re.search(r'outcome="([^"]+)"', labels)
                if outcome:
                    found[outcome.group(1)] = float(value)
        return found

    def log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-3000:].decode(errors="replace")

    def close(self) -> None:
        import subprocess

        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        Path(self._config.name).unlink(missing_ok=True)


class StalledNode:
    """A TCP port that accepts connections and never answers: a node stuck in a long GC."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def refused_url() -> str:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def bodies() -> list[str]:
    """Match queries on the common word plus one more; ``__N__`` makes each search's user new."""
    return [
        json.dumps(
            {
                "query": {"match": {"description": f"{COMMON} {word}"}},
                "size": 10,
                "ext": {"rerank": {"user": "user-__N__"}},
            }
        )
        for word in WORDS[:10]
    ]


@dataclass
class Row:
    key: str
    measured: Measured
    cpu_ms: float
    ubi: dict[str, float]

    @property
    def p95(self) -> float:
        return percentile(self.measured.latencies, 0.95) * 1000


def measure(sidecars: dict[str, Sidecar], args: argparse.Namespace) -> dict[str, Row]:
    texts = bodies()
    requests, rounds = sized(args, "requests"), sized(args, "rounds")

    def phase(sidecar: Sidecar, total: int, record: bool = True) -> Phase:
        return Phase(
            sidecar.url,
            f"/{SEARCH_INDEX}/_search",
            texts,
            total,
            args.clients,
            record=record,
            unique=True,
            cpu_pid=sidecar.pid,
        )

    # Warm-up: the JVM's hot paths, each sidecar's pools and the UBI indices' creation.
    loadgen([phase(s, sized(args, "warmup"), record=False) for s in sidecars.values()])
    plan = [(key, phase(s, requests)) for _ in range(rounds) for key, s in sidecars.items()]
    results = loadgen([p for _, p in plan])
    rows: dict[str, Row] = {}
    for key, sidecar in sidecars.items():
        parts = [m for (k, _), m in zip(plan, results, strict=True) if k == key]
        merged = Measured.merge(parts)
        ubi = wait_for_ubi(sidecar, key, expected=sized(args, "warmup") + requests * rounds)
        rows[key] = Row(key, merged, merged.cpu_ms_per_request, ubi)
    return rows


def wait_for_ubi(sidecar: Sidecar, key: str, expected: int) -> dict[str, float]:
    """The row's UBI counters once every logged search is accounted for (written or dropped);
    the stalled row's last batches wait out the writer's timeout first."""
    deadline = time.monotonic() + 30 + 4 * UBI_TIMEOUT_S
    counts = sidecar.ubi_documents()
    while key != "baseline" and sum(counts.values()) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        counts = sidecar.ubi_documents()
    return counts


def checks(rows: dict[str, Row], logged_searches: int) -> list[str]:
    failures = []
    if rows["baseline"].ubi:
        failures.append("(a) logged UBI documents without an experiment")
    if rows["logged"].ubi.get("written", 0) != logged_searches:
        failures.append(
            f"(b) wrote {rows['logged'].ubi.get('written', 0):.0f} of {logged_searches} searches"
        )
    for key in ("stalled", "stopped"):
        if rows[key].ubi.get("written", 0):
            failures.append(f"({key}) wrote documents to a cluster that is not there")
        if sum(rows[key].ubi.values()) < logged_searches:
            failures.append(f"({key}) lost track of documents: {rows[key].ubi}")
    return failures


def render(
    rows: dict[str, Row], args: argparse.Namespace, version: str, failures: list[str]
) -> str:
    base = rows["baseline"].measured
    lines = [
        f"{datetime.date.today().isoformat()}, {machine()}; OpenSearch {version}, redis-server; "
        f"{args.clients} searches in flight, {sized(args, 'rounds')} interleaved rounds of "
        f"{sized(args, 'requests')} searches per row, window {WINDOW}, zero-cost scorer (no "
        f"model: the sidecar and the engine are what is measured); UBI writer timeout "
        f"{UBI_TIMEOUT_S:g} s, buffer 10000, flush every 1 s. Sidecar CPU is the sidecar "
        f"process's user + system time per search.",
        "",
        "| row | searches/s | p50 ms | p95 ms | p99 ms | Δ p50 vs (a) | sidecar CPU ms/search "
        "| ubi_queries written | dropped (reason) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, label in ROWS.items():
        row = rows[key]
        m = row.measured
        dropped = ", ".join(
            f"{n:.0f} ({outcome.removeprefix('dropped_')})"
            for outcome, n in sorted(row.ubi.items())
            if outcome.startswith("dropped") and n
        )
        written = row.ubi.get("written", 0)
        lines.append(
            f"| {label} | {m.rps:.0f} | {m.p50:.2f} | {row.p95:.2f} | {m.p99:.2f} "
            f"| {m.p50 - base.p50:+.2f} | {row.cpu_ms:.2f} "
            f"| {'—' if key == 'baseline' else f'{written:.0f}'} | {dropped or '—'} |"
        )
    lines.append("")
    if failures:
        lines.append("**Checks failed:** " + "; ".join(failures))
    else:
        lines.append(
            "Every search of (b) was written to `ubi_queries`; (c) and (d) wrote nothing and "
            "counted every document they dropped; warm-up searches included in the counts."
        )
    return "\n".join(lines)


def sized(args: argparse.Namespace, name: str) -> int:
    value = getattr(args, name)
    if value is not None:
        return int(value)
    return (QUICK if args.quick else DEFAULTS)[name]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--requests", type=int, help="searches per row and round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, help="warm-up searches per row")
    parser.add_argument("--clients", type=int, default=8, help="searches in flight")
    parser.add_argument("--docs", type=int, default=2000, help="documents in the index")
    parser.add_argument("--serve-sidecar", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sidecar:
        serve_sidecar_main(args.serve_sidecar)
        return

    base = Settings()
    spec = engine_specs(base)["opensearch"]
    print(f"starting OpenSearch {spec.version} and redis-server …", file=sys.stderr)
    engine = start_engine(spec, base)
    redis_server = start_redis(base)
    stalled = StalledNode()
    sidecars: dict[str, Sidecar] = {}
    try:
        seed(engine.url, args.docs)
        ubi_urls = {"logged": None, "stalled": stalled.url, "stopped": refused_url()}
        for key in ROWS:
            config = settings_for(key, engine.url, redis_server.url, ubi_urls.get(key))
            sidecars[key] = Sidecar(config)
        print("measuring …", file=sys.stderr)
        rows = measure(sidecars, args)
        engine_call(engine.url, "POST", "/ubi_queries/_refresh")
        stored = int(engine_call(engine.url, "POST", "/ubi_queries/_count")["count"])
    finally:
        for sidecar in sidecars.values():
            sidecar.close()
        stalled.close()
        redis_server.stop()
        engine.stop()

    logged = sized(args, "warmup") + sized(args, "requests") * sized(args, "rounds")
    failures = checks(rows, logged)
    if stored != logged:
        failures.append(f"ubi_queries holds {stored} documents, not the {logged} of (b)")
    text = render(rows, args, spec.version, failures)
    print(text)
    if failures:
        sys.exit(1)
    if not args.no_write:
        write_section(
            f"## Experiment logging on the search path (`bench/experiments.py`)\n\n{text}",
            ROOT / "docs" / "benchmarks.md",
            "experiments",
        )


if __name__ == "__main__":
    main()
