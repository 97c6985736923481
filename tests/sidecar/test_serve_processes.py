"""`rerank-sidecar serve --workers 2`: two real sidecar processes share one port, a killed one is
replaced, and SIGTERM lets a request in flight finish before everything exits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.ports import free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SLOW_S = 2.0
IN_FLIGHT = 8


class Arrivals:
    """How many requests reached the stand-in engine."""

    def __init__(self) -> None:
        self.count = 0


def slow_engine(arrived: Arrivals) -> web.Application:
    """A stand-in cluster whose ``/slow`` answers after ``SLOW_S``."""

    async def slow(request: web.Request) -> web.Response:
        arrived.count += 1
        await asyncio.sleep(SLOW_S)
        return web.json_response({"slow": True})

    async def root(request: web.Request) -> web.Response:
        return web.json_response({"version": {"number": "2.19.0", "distribution": "opensearch"}})

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_route("*", "/", root)
    return app


def process_of(url: str) -> str | None:
    try:
        # A new connection each time: the kernel picks the process per connection.
        answer = httpx.get(f"{url}/_rerank/health", timeout=2, headers={"Connection": "close"})
    except httpx.HTTPError:
        return None
    return answer.headers.get("X-Rerank-Process") if answer.status_code == 200 else None


@pytest.mark.timeout(120)
def test_two_processes_share_the_port_and_stop_gracefully(tmp_path: Path) -> None:
    arrived = Arrivals()
    with serve_in_thread(slow_engine(arrived)) as engine:
        port = free_port()
        config = tmp_path / "sidecar.yaml"
        config.write_text("server: {shutdown_timeout_s: 10}\n", encoding="utf-8")
        command = [sys.executable, "-m", "sidecar", "serve", "--workers", "2", "--port", str(port)]
        command += ["--upstream", engine, "--config", str(config)]
        supervisor = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            seen: set[str] = set()

            def both_answer() -> bool:
                assert supervisor.poll() is None, supervisor.stderr.read()  # type: ignore[union-attr]
                pid = process_of(url)
                if pid is not None:
                    seen.add(pid)
                return len(seen) == 2

            wait_for(both_answer, 60, "both sidecar processes to answer on the port")
            assert str(supervisor.pid) not in seen  # the supervisor serves nothing itself

            # A process that dies is replaced; the port keeps answering meanwhile.
            victim = sorted(seen)[0]
            os.kill(int(victim), signal.SIGKILL)
            wait_for(
                lambda: (pid := process_of(url)) is not None and pid not in seen,
                60,
                "a replacement process",
            )

            # SIGTERM with requests in flight (spread over the processes): every one finishes.
            results: list[httpx.Response] = []
            clients = [
                threading.Thread(
                    target=lambda: results.append(
                        httpx.get(f"{url}/slow", timeout=30, headers={"Connection": "close"})
                    )
                )
                for _ in range(IN_FLIGHT)
            ]
            for client in clients:
                client.start()
            wait_for(lambda: arrived.count >= IN_FLIGHT, 20, "every slow request at the engine")
            supervisor.send_signal(signal.SIGTERM)
            for client in clients:
                client.join(30)
            assert [r.status_code for r in results] == [200] * IN_FLIGHT
            assert all(r.json() == {"slow": True} for r in results)
            assert supervisor.wait(timeout=30) == 0
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/_rerank/health", timeout=2)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
            supervisor.communicate(timeout=30)
