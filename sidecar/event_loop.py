"""The event loop the sidecar serves on: uvloop where installed (a faster loop and socket layer
for a proxy that spends its time moving bytes), the standard loop otherwise."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
