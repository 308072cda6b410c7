"""Waiting for what real processes do, without timing it: poll until it is so, within a generous bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(check: Callable[[], Any], *, seconds: float = 90.0, what: str = "it", every: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) every ``every`` seconds until it returns something truthy, and return that.

    Fails (naming ``what``) when ``seconds`` pass first: the bound only stops a test that would wait forever.
    """
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there within {seconds:.0f} s")
        await asyncio.sleep(every)
