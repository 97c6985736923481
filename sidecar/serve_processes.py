"""Several sidecar processes on one port: a supervisor and N children bound with SO_REUSEPORT.

Each child is a whole sidecar (its own event loop, pools and metrics) that binds the port with
``reuse_port``, so the kernel spreads new connections over the children and no process hands
sockets to another. The supervisor only starts, watches and stops them:

- SIGTERM or SIGINT: it sends SIGTERM to every child, each of which stops accepting, lets its
  requests in flight finish (``server.shutdown_timeout_s``) and closes its pools (aiohttp's
  ``run_app``); a child still alive ``grace_s`` later is killed. The supervisor exits with 0
  when every child did.
- A child that dies on its own is started again (at most once a second), so one crash costs
  the connections it held, not a share of the port.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)

RESTART_EVERY_S = 1.0
POLL_S = 0.2


def serve_processes(count: int, run_child: Callable[[], None], grace_s: float) -> int:
    """Run ``run_child`` in ``count`` processes until SIGTERM/SIGINT; the exit code."""
    context = multiprocessing.get_context("spawn")  # no event loop or pool crosses a fork
    children: list[BaseProcess] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        del frame
        if not stopping:
            log.info("sidecar supervisor: signal %d, stopping %d processes", signum, count)
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(count):
            children.append(_start(context, run_child))
        last_restart = 0.0
        while not stopping:
            time.sleep(POLL_S)
            for i, child in enumerate(children):
                if child.is_alive() or stopping:
                    continue
                wait = RESTART_EVERY_S - (time.monotonic() - last_restart)
                if wait > 0:
                    time.sleep(wait)
                log.error(
                    "sidecar process %s exited with %s; starting another", child.pid, child.exitcode
                )
                children[i] = _start(context, run_child)
                last_restart = time.monotonic()
        return _stop_all(children, grace_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    context: multiprocessing.context.SpawnContext, run_child: Callable[[], None]
) -> BaseProcess:
    child = context.Process(target=run_child, name="rerank-sidecar")
    child.start()
    return child


def _stop_all(children: list[BaseProcess], grace_s: float) -> int:
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    killed = [c for c in children if c.is_alive()]
    for child in killed:
        log.error("sidecar process %s outlived the grace period; killed", child.pid)
        child.kill()
        child.join()
    return 1 if killed else 0
