"""Channel rate limits shared by every worker through Redis (sliding windows, checked and taken atomically).

A sender declares its limits per message (Telegram: 30 messages/s per bot and 1/s per chat; Twilio: 80/s per
sender); ``acquire`` waits until every window has room and takes a place in all of them in one Lua call, using
Redis's clock so that workers on different machines agree. When the provider throttles us anyway (a 429 with
``retry_after``), :meth:`RateLimiter.pause` holds every window of that message shut for as long as it said: no
later message on the channel or chat goes out inside that window.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local paused = redis.call('PTTL', key .. ':pause')
  if paused > wait then wait = paused end
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1] .. ':' .. i)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` sends per ``seconds`` for ``key`` (e.g. "telegram:bot", "telegram:chat:42")."""

    key: str
    count: int
    seconds: float


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, *, margin: float = 0.02) -> None:
        self._redis = redis
        self._prefix = prefix
        self._margin = margin  # a little slack so our window never beats the provider's clock
        self._script = redis.register_script(_SCRIPT)

    async def try_acquire(self, limits: Sequence[Limit], *, token: str | None = None) -> float:
        """Take a place in every window and return 0, or return the seconds to wait (nothing taken).

        ``token`` names the places taken, so that :meth:`release` can give them back unused."""
        if not limits:
            return 0.0
        keys = [f"{self._prefix}:rate:{limit.key}" for limit in limits]
        args: list[str | int] = [token or secrets.token_hex(8)]
        for limit in limits:
            args += [limit.count, int((limit.seconds + self._margin) * 1000)]
        wait_ms = await self._script(keys=keys, args=args)
        return float(wait_ms) / 1000

    async def release(self, limits: Sequence[Limit], token: str) -> None:
        """Give back the places :meth:`try_acquire` took under ``token`` (taken for a message that did not go)."""
        if not limits:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for i, limit in enumerate(limits, start=1):
                pipe.zrem(f"{self._prefix}:rate:{limit.key}", f"{token}:{i}")
            await pipe.execute()

    async def pause(self, limits: Sequence[Limit], seconds: float) -> None:
        """Nobody takes a place in these windows for ``seconds`` (the provider said to wait: a 429's retry_after).
        A longer pause already there is kept."""
        if not limits or seconds <= 0:
            return
        ms = max(1, int(seconds * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for limit in limits:
                key = f"{self._prefix}:rate:{limit.key}:pause"
                pipe.set(key, "1", px=ms, nx=True)
                pipe.pexpire(key, ms, gt=True)
            await pipe.execute()

    async def acquire(self, limits: Sequence[Limit], *, max_wait: float = 30.0) -> float:
        """Wait for room in every window (at most ``max_wait`` seconds); return how long it waited."""
        waited = 0.0
        while True:
            wait = await self.try_acquire(limits)
            if wait <= 0:
                return waited
            if waited + wait > max_wait:
                raise TimeoutError(f"rate limit: no room within {max_wait}s")
            await asyncio.sleep(wait)
            waited += wait
