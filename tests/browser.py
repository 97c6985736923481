"""A real browser for tests that look at HTML: Debian's headless Chromium, driven over the
Chrome DevTools Protocol (its websocket, with aiohttp).

``look_at(path)`` loads a page and returns a full-page screenshot, every console error,
uncaught exception and failed load the page caused, and what a few page-side checks found.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.waiting import wait_for

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((p for name in CHROMIUM_NAMES if (p := shutil.which(name))), None)


@dataclass
class PageLook:
    screenshot: bytes
    errors: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.loaded.set()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            out.append(f"load failed: {params.get('errorText')}")
    return out


CHECKS = """({
  images: document.images.length,
  imagesLoaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
  plots: Array.from(document.querySelectorAll('figure img'))
    .filter(i => i.naturalWidth > 200 && i.naturalHeight > 100).length,
  title: document.title,
  height: document.documentElement.scrollHeight,
})"""


async def _look(url: str, port: int, width: int, height: int) -> PageLook:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            target = await response.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            pump = asyncio.create_task(session.pump())
            try:
                for domain in ("Runtime", "Log", "Page", "Network"):
                    await session.call(f"{domain}.enable")
                await session.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width, height=height, deviceScaleFactor=1, mobile=False,
                )  # fmt: skip
                session.loaded.clear()
                await session.call("Page.navigate", url=url)
                await asyncio.wait_for(session.loaded.wait(), 60)
                evaluated = await session.call(
                    "Runtime.evaluate", expression=CHECKS, returnByValue=True
                )
                checks = evaluated["result"]["value"]
                shot = await session.call(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True
                )
                return PageLook(base64.b64decode(shot["data"]), _errors(session.events), checks)
            finally:
                pump.cancel()


def look_at(path: Path, width: int = 1280, height: int = 900) -> PageLook:
    """Open ``path`` in headless Chromium and look at it."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("no chromium: scripts/bootstrap.sh installs Debian's chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = subprocess.Popen(
            [
                binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            wait_for(
                lambda: port_file.is_file() and port_file.read_text().strip(),
                timeout_s=60,
                what="chromium's DevTools port",
            )
            port = int(port_file.read_text().split()[0])
            return asyncio.run(_look(path.resolve().as_uri(), port, width, height))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
