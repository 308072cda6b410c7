"""Channel rate limits are shared through Redis: a window full for one key never takes a place in the others."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from infra.ratelimit import Limit, RateLimiter
from infra.settings import Settings


@pytest.fixture
async def limiter(settings: Settings) -> AsyncIterator[RateLimiter]:
    client = Redis.from_url(settings.REDIS_URL or "")
    yield RateLimiter(client, f"{settings.FRONTDESK_REDIS_PREFIX}:{secrets.token_hex(4)}")
    await client.aclose()


async def test_a_bot_sends_thirty_messages_a_second_and_the_thirty_first_waits(limiter: RateLimiter) -> None:
    bot = [Limit("telegram:bot", 30, 1.0)]
    waits = [await limiter.try_acquire(bot) for _ in range(31)]
    assert waits[:30] == [0.0] * 30
    assert 0 < waits[30] <= 1.1


async def test_one_chat_gets_one_message_a_second_while_other_chats_go_on(limiter: RateLimiter) -> None:
    def limits(chat: int) -> list[Limit]:
        return [Limit("telegram:bot", 30, 1.0), Limit(f"telegram:chat:{chat}", 1, 1.0)]

    assert await limiter.try_acquire(limits(1)) == 0
    assert await limiter.try_acquire(limits(1)) > 0  # the same chat must wait
    for chat in range(2, 31):
        assert await limiter.try_acquire(limits(chat)) == 0  # 29 other chats: the refused try took no bot place
    assert await limiter.try_acquire(limits(99)) > 0  # now the bot's 30 are used


async def test_acquire_waits_for_room_instead_of_failing(limiter: RateLimiter) -> None:
    chat = [Limit("telegram:chat:7", 1, 0.2)]
    assert await limiter.acquire(chat) == 0
    waited = await limiter.acquire(chat)
    assert waited > 0
