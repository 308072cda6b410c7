"""Group commit: messages from known chats that arrive together are stored in one transaction, each exactly once.

Real PostgreSQL through the gateway's own asyncpg pool; every chat is first made known through the full path
(``ingest.receive``), as its first message would be.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.raw import RawDb, make_raw_pool
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import ingest
from gateway.group_ingest import GroupIngest
from infra.settings import Settings


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[RawDb]:
    assert settings.async_database_url is not None
    pool = await make_raw_pool(settings.async_database_url, max_size=4)
    yield pool
    await pool.close()


def message(chat: str, text: str, *, update: str | None = None, raw: dict[str, object] | None = None) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        external_id=update or f"{chat}:{secrets.randbelow(10**12)}",
        contact=ContactRef(channel="telegram", external_id=chat, display_name="Siti", language_code="id"),
        received_at=datetime.now(UTC),
        text=text,
        raw=raw or {},
    )


async def known_chats(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    """``count`` chats that have written once (patient, open conversation and lead exist)."""
    chats = [str(10**11 + secrets.randbelow(10**11)) for _ in range(count)]
    for chat in chats:
        async with sessionmaker() as db, db.begin():
            await ingest.receive(db, message(chat, "Halo"))
    return chats


async def stored(sessionmaker: async_sessionmaker[AsyncSession], ids: list[int]) -> list[tuple[int, str, int]]:
    """(id, text, the inserting transaction's id) of the given messages, by id."""
    async with sessionmaker() as db:
        rows = await db.execute(
            text("SELECT id, text, xmin::text::bigint FROM messages WHERE id = ANY(:ids) ORDER BY id"), {"ids": ids}
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def test_messages_that_arrive_together_are_stored_in_one_transaction_each_once(
    sessionmaker: async_sessionmaker[AsyncSession], raw: RawDb
) -> None:
    chats = await known_chats(sessionmaker, 3)
    group = GroupIngest(raw, lanes=1)
    sent = [message(chat, f"pesan {n} dari {chat}") for n in range(4) for chat in chats]

    received = await asyncio.gather(*(group.receive(each) for each in sent))

    assert all(r is not None and not r.duplicate for r in received)
    ids = [r.message_id for r in received if r is not None]
    rows = await stored(sessionmaker, ids)
    assert sorted(text for _, text, _ in rows) == sorted(each.text for each in sent)
    assert len({transaction for _, _, transaction in rows}) == 1  # one commit for all twelve
    for chat in chats:  # each chat's messages keep the order they came in
        theirs = [
            r.message_id for r, each in zip(received, sent, strict=True) if r and each.contact.external_id == chat
        ]
        assert theirs == sorted(theirs)


async def test_a_retry_in_the_same_group_is_recognised_and_stored_once(
    sessionmaker: async_sessionmaker[AsyncSession], raw: RawDb
) -> None:
    [chat] = await known_chats(sessionmaker, 1)
    group = GroupIngest(raw, lanes=1)
    first = message(chat, "Jam buka hari Sabtu?", update=f"{chat}:77")
    retry = message(chat, "Jam buka hari Sabtu?", update=f"{chat}:77")

    one, two = await asyncio.gather(group.receive(first), group.receive(retry))

    assert one is not None and two is not None
    assert (one.duplicate, two.duplicate) == (False, True)
    assert one.message_id == two.message_id
    assert len(await stored(sessionmaker, [one.message_id])) == 1


async def test_a_first_message_is_left_to_the_full_path(
    sessionmaker: async_sessionmaker[AsyncSession], raw: RawDb
) -> None:
    [known] = await known_chats(sessionmaker, 1)
    group = GroupIngest(raw, lanes=1)
    newcomer = str(10**11 + secrets.randbelow(10**11))

    from_known, from_newcomer = await asyncio.gather(
        group.receive(message(known, "Halo lagi")), group.receive(message(newcomer, "Halo"))
    )

    assert from_known is not None and not from_known.duplicate
    assert from_newcomer is None


async def test_a_message_the_database_refuses_does_not_cost_the_messages_stored_with_it(
    sessionmaker: async_sessionmaker[AsyncSession], raw: RawDb
) -> None:
    chats = await known_chats(sessionmaker, 2)
    group = GroupIngest(raw, lanes=1)
    # JSON has no NaN: PostgreSQL refuses the payload, and with it the whole transaction of the group.
    spoiled = message(chats[0], "Halo", raw={"reading": float("nan")})
    good = [message(chat, "Bisa periksa besok?") for chat in chats]

    results = await asyncio.gather(
        *(group.receive(each) for each in [good[0], spoiled, good[1]]), return_exceptions=True
    )

    assert isinstance(results[1], Exception)
    stored_ids = [r.message_id for r in (results[0], results[2]) if isinstance(r, ingest.Received)]
    assert len(await stored(sessionmaker, stored_ids)) == 2
