"""The event loop our processes run on: uvloop when it is installed (a faster loop and transports), else asyncio's."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; it has no Windows build
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
