"""Debian's nginx running deploy/nginx/rerank-sidecar.conf on loopback, for the edge tests.

The routing file is used as shipped but for two lines a deployment sets too: the port it
listens on and where its access log goes. The upstream addresses come from a generated
upstreams.conf (the file a deployment edits; deploy/nginx/upstreams.conf is compose's).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidecar.testbed.ports import free_port
from tests.deploy.tools import ROOT

ROUTING = ROOT / "deploy" / "nginx" / "rerank-sidecar.conf"
LISTEN = "    listen 9200;\n"
ACCESS_LOG = "/var/log/nginx/rerank-edge.log"


@dataclass
class RunningEdge:
    url: str
    access_log: Path

    def records(self) -> list[dict[str, Any]]:
        """The access log's JSON records (the rerank_edge format), oldest first."""
        if not self.access_log.exists():
            return []
        # nginx may be half-way through writing a record: only whole lines are records yet.
        whole, _, _ = self.access_log.read_text().rpartition("\n")
        return [json.loads(line) for line in whole.splitlines() if line]

    def records_after(self, seen: int, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The ``count`` records after the first ``seen``: nginx writes a request's record once
        it has answered (its log phase), so a client can read the answer before the record."""
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.records()[seen:]
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.01)


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def render(directory: Path, port: int, cluster: Sequence[str], sidecars: Sequence[str]) -> Path:
    """Write nginx.conf, upstreams.conf and the routing file into ``directory``."""
    routing = ROUTING.read_text()
    assert routing.count(LISTEN) == 1 and routing.count(ACCESS_LOG) == 1, "the file changed"
    routing = routing.replace(LISTEN, f"    listen 127.0.0.1:{port};\n")
    routing = routing.replace(ACCESS_LOG, str(directory / "edge.log"))
    (directory / "rerank-sidecar.conf").write_text(routing)

    def upstream(name: str, urls: Sequence[str]) -> str:
        servers = "".join(f"    server {_hostport(url)};\n" for url in urls)
        return f"upstream {name} {{\n{servers}    keepalive 8;\n}}\n"

    (directory / "upstreams.conf").write_text(
        upstream("rerank_cluster", cluster) + upstream("rerank_sidecar", sidecars)
    )
    temp = ""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "temp" / name).mkdir(parents=True, exist_ok=True)
        temp += f"    {name}_temp_path {directory / 'temp' / name};\n"
    # As root the workers would run as nobody, who cannot enter pytest's private tmp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} notice;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {directory / 'access.log'};\n{temp}"
        f"    include {directory / 'upstreams.conf'};\n"
        f"    include {directory / 'rerank-sidecar.conf'};\n"
        "}\n"
    )
    return conf


@contextmanager
def run_edge(
    nginx: Path, directory: Path, cluster: Sequence[str], sidecars: Sequence[str]
) -> Iterator[RunningEdge]:
    port = free_port()
    conf = render(directory, port, cluster, sidecars)
    command = [str(nginx), "-p", str(directory), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen within 15 s"
                time.sleep(0.05)
        yield RunningEdge(f"http://127.0.0.1:{port}", directory / "edge.log")
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
