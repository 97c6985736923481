"""Shared by the bench scripts: serve an app in a child process the way `rerank-sidecar serve`
does (its event loop, its runner options), on a free loopback port, until stdin closes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

from aiohttp import web

from sidecar.app import RUNNER_OPTIONS, runner_options
from sidecar.event_loop import new_event_loop
from sidecar.settings import ServerSettings


def serve_until_stdin_closes(
    build_app: Callable[[], web.Application], answer: Callable[[], str] | None = None
) -> None:
    """Build the app on the serving loop, print ``{"port": N}``; each line read on stdin is
    answered with ``answer()`` (when given); stop when stdin closes."""

    async def serve() -> None:
        app = build_app()
        options = app.get(RUNNER_OPTIONS) or runner_options(ServerSettings())
        runner = web.AppRunner(app, **options, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        loop = asyncio.get_running_loop()
        try:
            while await loop.run_in_executor(None, sys.stdin.readline):
                if answer is not None:
                    print(answer(), flush=True)
        finally:
            await runner.cleanup()

    loop = new_event_loop()  # the loop `rerank-sidecar serve` runs on
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()
