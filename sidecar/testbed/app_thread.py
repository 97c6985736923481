"""Serving an aiohttp application on loopback from a background thread (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


@contextmanager
def serve_in_thread(
    app: web.Application, host: str = "127.0.0.1", access_log: logging.Logger | None = None
) -> Iterator[str]:
    """Run ``app`` on a free port of ``host`` in its own event-loop thread; yield its base URL.

    Handlers are cancelled when their client disconnects, as ``rerank-sidecar serve`` does;
    with ``access_log``, requests are logged there as ``serve`` logs them.
    """
    from sidecar.access_log import JsonAccessLogger
    from sidecar.app import RUNNER_OPTIONS, runner_options
    from sidecar.event_loop import new_event_loop
    from sidecar.settings import ServerSettings

    loop = new_event_loop()
    runner = web.AppRunner(
        app,
        # A sidecar app carries its options; any other app (a stand-in server) gets the defaults.
        **(app.get(RUNNER_OPTIONS) or runner_options(ServerSettings())),
        access_log=access_log,
        access_log_class=JsonAccessLogger,
        # Within the 30 s the cleanup below waits: a handler still running when the test ends
        # (a client that kept a request open) is cancelled instead of holding the teardown.
        shutdown_timeout=10.0,
    )
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, host, 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="serve-in-thread", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
