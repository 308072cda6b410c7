"""Queue-position replies against the real database: patients hear when they become second and next in line, once.

The clock is set by the tests (a Tuesday in 2030, before the morning's visits), as in tests/integration/test_queue.py.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, OutboxMessage, Patient, QueueEntry, Session
from booking_core.domain.actors import Actor
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import conversation, ingest, lifecycle, queue_actions, queue_replies
from devtools.builders import Clinic, add_patient, build_clinic, insert_session

DESK = Actor(kind="staff", name="Reception", role="staff")
DAY = date(2030, 3, 5)  # a Tuesday


def local(clinic: Clinic, hour: int, minute: int = 0) -> datetime:
    return (datetime.combine(DAY, time(hour), ZoneInfo(clinic.branch.tz)) + timedelta(minutes=minute)).astimezone(UTC)


async def patient_on_telegram(db: AsyncSession, name: str) -> tuple[Patient, str]:
    patient = await add_patient(db, name, commit=False)
    patient.language = "en"
    chat_id = str(secrets.randbelow(10**9))
    db.add(ChannelIdentity(patient_id=patient.id, channel="telegram", external_id=chat_id, display_name=name))
    await db.flush()
    return patient, chat_id


async def visit(db: AsyncSession, clinic: Clinic, patient: Patient, starts_at: datetime) -> Session:
    clinic.patients[f"p{patient.id}"] = patient
    session = await insert_session(db, clinic, starts_at=starts_at, patient=f"p{patient.id}", commit=False)
    session.accepted = True
    await db.commit()
    return session


def said(payload: dict[str, Any]) -> str:
    """Which notice a message is: "next", "second" or "place" (the answer to a question about it)."""
    text = str(payload["text"])
    return "next" if text.startswith("You're next!") else "second" if text.startswith("Almost your turn") else "place"


async def notices(sessionmaker: async_sessionmaker[AsyncSession], chat_id: str) -> list[dict[str, Any]]:
    async with sessionmaker() as db:
        rows = await db.execute(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "queue_position", OutboxMessage.recipient == chat_id)
            .order_by(OutboxMessage.id)
        )
        return [row.payload for row in rows.scalars()]


async def test_patients_hear_once_when_they_become_second_and_next_in_line(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    people = [await patient_on_telegram(db, name) for name in ("Ayu", "Budi", "Citra")]
    visits = [await visit(db, clinic, p, local(clinic, 9, 30 * i)) for i, (p, _) in enumerate(people)]
    (_, ayu), (_, budi), (_, citra) = people
    for minutes, session in enumerate(visits):
        async with sessionmaker() as desk, desk.begin():
            await queue_actions.check_in(desk, session.id, actor=DESK, now=local(clinic, 8, 30 + minutes))

    assert [len(await notices(sessionmaker, c)) for c in (ayu, budi, citra)] == [1, 1, 0]
    async with sessionmaker() as desk, desk.begin():  # dr. Andi calls Ayu in: Budi is next, Citra second
        await queue_actions.call_next(
            desk, clinic.branch.id, clinic.doctors["andi"].id, actor=DESK, now=local(clinic, 9)
        )
    async with sessionmaker() as again, again.begin():  # any later look at the same queue tells nobody twice
        assert (
            await queue_replies.queue_changed(again, branch_id=clinic.branch.id, day=DAY, now=local(clinic, 9, 1)) == []
        )

    told = {c: await notices(sessionmaker, c) for c in (ayu, budi, citra)}
    assert {c: [said(n) for n in told[c]] for c in told} == {ayu: ["next"], budi: ["second", "next"], citra: ["second"]}
    assert "A-002" in told[budi][1]["text"] and "about 09:30" in told[budi][1]["text"]
    assert "A-003" in told[citra][0]["text"] and "dr. Andi Wijaya" in told[citra][0]["text"]
    async with sessionmaker() as check:
        entries = (
            await check.execute(select(QueueEntry).where(QueueEntry.session_id.in_([v.id for v in visits])))
        ).scalars()
        assert sorted((e.token, e.notified_position) for e in entries) == [("A-001", 1), ("A-002", 1), ("A-003", 2)]


async def test_a_cancellation_moves_the_patients_behind_up_and_tells_them(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    people = [await patient_on_telegram(db, name) for name in ("Dedi", "Eka", "Fajar")]
    visits = [await visit(db, clinic, p, local(clinic, 10, 30 * i)) for i, (p, _) in enumerate(people)]
    for minutes, session in enumerate(visits):
        async with sessionmaker() as desk, desk.begin():
            await queue_actions.check_in(desk, session.id, actor=DESK, now=local(clinic, 9, minutes))

    async with sessionmaker() as desk, desk.begin():  # Dedi has to leave: Eka is next, Fajar second
        await lifecycle.cancel(desk, visits[0].id, actor=DESK, reason_code="patient_request", now=local(clinic, 9, 10))

    fajar = people[2][1]
    assert [said(n) for n in await notices(sessionmaker, fajar)] == ["second"]
    assert [said(n) for n in await notices(sessionmaker, people[1][1])] == ["second", "next"]


async def test_a_patient_without_a_chat_is_passed_over_and_the_next_one_still_hears(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    walk_in = await add_patient(db, "Pak Harto", commit=False)  # no channel at all
    gita, gita_chat = await patient_on_telegram(db, "Gita")
    first, second = (
        await visit(db, clinic, walk_in, local(clinic, 11)),
        await visit(db, clinic, gita, local(clinic, 11, 30)),
    )
    for minutes, session in enumerate((first, second)):
        async with sessionmaker() as desk, desk.begin():
            await queue_actions.check_in(desk, session.id, actor=DESK, now=local(clinic, 10, minutes))

    assert [said(n) for n in await notices(sessionmaker, gita_chat)] == ["second"]
    async with sessionmaker() as check:
        entry = (await check.execute(select(QueueEntry).where(QueueEntry.session_id == first.id))).scalar_one()
        assert entry.notified_position == 1  # nobody to tell, and nobody tries again


async def test_a_patient_told_their_place_in_chat_is_not_told_it_again(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    people = [await patient_on_telegram(db, name) for name in ("Kiki", "Lina", "Mira")]
    visits = [await visit(db, clinic, p, local(clinic, 15, 30 * i)) for i, (p, _) in enumerate(people)]
    for minutes, session in enumerate(visits):
        async with sessionmaker() as desk, desk.begin():
            await queue_actions.check_in(desk, session.id, actor=DESK, now=local(clinic, 14, minutes))
    mira_chat = people[2][1]
    assert await notices(sessionmaker, mira_chat) == []  # third in line: nothing to announce yet
    async with sessionmaker() as change, change.begin():  # Kiki went in without the queue noticing (no notice ran)
        await change.execute(update(Session).where(Session.id == visits[0].id).values(status="open"))

    now = local(clinic, 14, 5)
    inbound = InboundMessage(
        channel="telegram",
        external_id=f"tg{secrets.token_hex(8)}",
        contact=ContactRef(channel="telegram", external_id=mira_chat, display_name="Mira", language_code="en"),
        received_at=now,
        text="antrian",
    )
    async with sessionmaker() as chat, chat.begin():
        received = await ingest.receive(chat, inbound, now=now)
    async with sessionmaker() as chat, chat.begin():
        replies = await conversation.handle(chat, received.message_id, now=now)
    async with sessionmaker() as later, later.begin():  # the sweep's look at today's queues
        await queue_replies.catch_up(later, now=local(clinic, 14, 6))

    async with sessionmaker() as check:
        answered = (await check.execute(select(OutboxMessage).where(OutboxMessage.id.in_(replies)))).scalars().all()
    assert any("A-003" in row.payload["text"] and "1 patient before you" in row.payload["text"] for row in answered)
    assert await notices(sessionmaker, mira_chat) == []  # what she was just told in chat is not repeated
    assert [said(n) for n in await notices(sessionmaker, people[1][1])] == ["second", "next"]  # Lina is next now
