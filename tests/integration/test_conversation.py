"""The chatbot against the real clinic: messages persisted by ingest, answered by the conversation service.

Every test talks to its own clinic (``build_clinic``) and names its own examination (a unique name), because the
test database holds other tests' clinics too. The clock is fixed on a weekday morning so the clinic is open.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import Conversation, ExaminationBranch, Lead, Message, OutboxMessage, Session, SlotHold
from booking_core.domain.actors import Actor
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import conversation, ingest, queue_actions
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday, unique

DESK = Actor(kind="staff", id=None, name="desk", role="staff")


@dataclass
class Chat:
    """One patient chatting: sends messages through ingest and the dialog, keeps what the bot answered."""

    sessionmaker: async_sessionmaker[AsyncSession]
    now: datetime
    channel: str = "telegram"
    chat_id: str = field(default_factory=lambda: str(secrets.randbelow(10**9)))
    phone: str | None = None
    name: str = "Siti"
    language: str | None = "en"
    message_ids: list[int] = field(default_factory=list)
    conversation_id: int | None = None

    async def send(self, text: str = "", *, button: str | None = None, kind: str = "text") -> list[dict[str, Any]]:
        """Send a message (or press a button); returns the bot's replies as outbox payloads."""
        inbound = InboundMessage(
            channel=self.channel,  # type: ignore[arg-type]
            external_id=f"m{secrets.token_hex(8)}",
            contact=ContactRef(
                channel=self.channel,  # type: ignore[arg-type]
                external_id=self.phone if self.channel == "whatsapp" and self.phone else self.chat_id,
                display_name=self.name,
                phone=self.phone,
                language_code=self.language,
            ),
            received_at=self.now,
            kind="button" if button else kind,  # type: ignore[arg-type]
            text=text,
            button_data=button,
        )
        async with self.sessionmaker() as db, db.begin():
            received = await ingest.receive(db, inbound, now=self.now)
        self.message_ids.append(received.message_id)
        self.conversation_id = received.conversation_id
        async with self.sessionmaker() as db, db.begin():
            ids = await conversation.handle(db, received.message_id, now=self.now)
        return await self.payloads(ids)

    async def payloads(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        async with self.sessionmaker() as db:
            rows = (await db.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).scalars()
            return [row.payload for row in sorted(rows, key=lambda r: r.id)]


def buttons(replies: list[dict[str, Any]]) -> list[str]:
    """The button data of the last reply that has buttons."""
    with_buttons = [r for r in replies if r["buttons"]]
    return [b["data"] for b in with_buttons[-1]["buttons"]] if with_buttons else []


def text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] for r in replies)


def first(data: list[str], prefix: str) -> str:
    return next(d for d in data if d.startswith(prefix))


@pytest.fixture
async def clinic(db: AsyncSession) -> Clinic:
    """A fresh clinic whose examinations carry unique names (other tests' clinics share the database)."""
    built = await build_clinic(db)
    for code, exam in built.examinations.items():
        exam.name = f"{exam.name} {unique(code)}"
    await db.commit()
    return built


@pytest.fixture
def monday_morning() -> datetime:
    """Next week's Monday at 09:00 in Jakarta: the clinic is open, both doctors attend."""
    return next_weekday(0, hour=9)


def chat(sessionmaker: async_sessionmaker[AsyncSession], now: datetime, **kwargs: Any) -> Chat:
    return Chat(sessionmaker=sessionmaker, now=now, **kwargs)


async def _book_until_confirmation(patient: Chat, clinic: Clinic) -> list[dict[str, Any]]:
    replies = await patient.send(clinic.examinations["DENTAL"].name)
    day = first(buttons(replies), "day:")
    replies = await patient.send(button=day)
    time = first(buttons(replies), "t:")
    replies = await patient.send(button=time)
    assert "phone number" in text(replies)
    return await patient.send("0812-3456-7890")


async def test_a_full_booking_conversation_ends_with_a_held_slot_on_the_lead(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, monday_morning: datetime
) -> None:
    patient = chat(sessionmaker, monday_morning)
    welcome = await patient.send("hello")
    assert "menu:book" in buttons(welcome)
    summary = await _book_until_confirmation(patient, clinic)
    assert "Please check your booking" in text(summary) and "+6281234567890" in text(summary)
    assert buttons(summary) == ["cf:yes", "cf:change", "cf:no"]
    received = await patient.send("yes")
    assert "Our staff will confirm it" in text(received)
    async with sessionmaker() as db:
        lead = (await db.execute(select(Lead).where(Lead.conversation_id == patient.conversation_id))).scalar_one()
        hold = await db.get(SlotHold, lead.hold_id)
        assert hold is not None and hold.status == "active" and hold.conversation_id == patient.conversation_id
        assert lead.branch_id == clinic.branch.id and lead.examination_id == clinic.examinations["DENTAL"].id
        assert lead.requested_start == hold.starts_at and lead.doctor_id == clinic.doctors["sari"].id
        assert lead.contact_phone == "+6281234567890" and lead.status == "new"


async def test_a_slot_taken_meanwhile_offers_the_next_free_times(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, monday_morning: datetime
) -> None:
    patient = chat(sessionmaker, monday_morning)
    replies = await patient.send(clinic.examinations["DENTAL"].name)
    replies = await patient.send(button=first(buttons(replies), "day:"))
    chosen = first(buttons(replies), "t:")
    async with sessionmaker() as db:  # another patient books that very time at the desk
        await insert_session(
            db, clinic, starts_at=datetime.fromisoformat(chosen.removeprefix("t:")).astimezone(UTC),
            examination="DENTAL", doctor="sari", room="dental",
        )  # fmt: skip
    await patient.send(button=chosen)
    offered = await patient.send("0812 3456 7890")
    assert "has just been taken" in text(offered)
    alternatives = [d for d in buttons(offered) if d.startswith("t:") and d != "t:more"]
    assert alternatives and chosen not in alternatives
    async with sessionmaker() as db:
        holds = await db.execute(select(func.count()).where(SlotHold.conversation_id == patient.conversation_id))
        assert holds.scalar_one() == 0


async def test_a_patient_cancels_a_booked_visit_with_a_reason(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, monday_morning: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=monday_morning + timedelta(days=1, hours=1))
    siti = chat(sessionmaker, monday_morning, channel="whatsapp", phone=clinic.patients["siti"].phone_e164,
                language=None)  # fmt: skip
    replies = await siti.send("batal")
    assert f"s:{visit.id}" in buttons(replies)
    reasons = await siti.send(button=f"s:{visit.id}")
    assert "rs:cant_come" in buttons(reasons)
    done = await siti.send(button="rs:cant_come")
    assert visit.booking_code in text(done)
    async with sessionmaker() as check:
        cancelled = await check.get(Session, visit.id)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert cancelled.cancel_reason == "patient_request"


async def test_a_patient_reschedules_a_visit_and_the_old_one_is_cancelled(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, monday_morning: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=monday_morning + timedelta(days=1, hours=1))
    siti = chat(sessionmaker, monday_morning, channel="whatsapp", phone=clinic.patients["siti"].phone_e164,
                language="en")  # fmt: skip
    replies = await siti.send("I need to reschedule")
    replies = await siti.send(button=f"s:{visit.id}")
    replies = await siti.send(button=first(buttons(replies), "day:"))
    replies = await siti.send(button=first(buttons(replies), "t:"))
    assert "Move your visit" in text(replies) and visit.booking_code in text(replies)
    done = await siti.send(button="cf:yes")
    assert "new booking code" in text(done)
    async with sessionmaker() as check:
        old = await check.get(Session, visit.id)
        assert old is not None and old.status == "cancelled" and old.cancel_reason == "patient_request"
        new = (
            await check.execute(
                select(Session).where(Session.patient_id == clinic.patients["siti"].id, Session.status == "waiting")
            )
        ).scalar_one()
        assert new.doctor_id == visit.doctor_id and new.booking_code in text(done)


async def test_a_checked_in_patient_asks_for_their_place_in_the_queue(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, monday_morning: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=monday_morning + timedelta(minutes=30), accepted=True)
    async with sessionmaker() as desk, desk.begin():
        ticket = await queue_actions.check_in(desk, visit.id, actor=DESK, now=monday_morning)
    siti = chat(sessionmaker, monday_morning, channel="whatsapp", phone=clinic.patients["siti"].phone_e164)
    replies = await siti.send("antrian")
    assert ticket.token in text(replies)
    assert "dr. Andi Wijaya" in text(replies)


async def test_asking_for_staff_pauses_the_bot_until_staff_hand_it_back(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, monday_morning: datetime
) -> None:
    patient = chat(sessionmaker, monday_morning)
    replies = await patient.send("talk to staff")
    assert "staff" in text(replies)
    silent = await patient.send("hello? anyone?")
    assert silent == []
    async with sessionmaker() as db:
        talk = await db.get(Conversation, patient.conversation_id)
        assert talk is not None and talk.bot_paused
        last = await db.get(Message, patient.message_ids[-1])
        assert last is not None and last.processed_at is not None


async def test_handling_the_same_message_twice_writes_nothing_the_second_time(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, monday_morning: datetime
) -> None:
    patient = chat(sessionmaker, monday_morning)
    first_replies = await patient.send("hello")
    assert first_replies
    async with sessionmaker() as db:
        before = (await db.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        state = (await db.get(Conversation, patient.conversation_id)).dialog_state  # type: ignore[union-attr]
    async with sessionmaker() as db, db.begin():
        again = await conversation.handle(db, patient.message_ids[-1], now=monday_morning)
    assert again == []
    async with sessionmaker() as db:
        after = (await db.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        assert after == before
        assert (await db.get(Conversation, patient.conversation_id)).dialog_state == state  # type: ignore[union-attr]


async def test_an_earlier_unanswered_message_of_the_chat_is_answered_first(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, monday_morning: datetime
) -> None:
    patient = chat(sessionmaker, monday_morning)
    ids = []
    for words in ("hello", clinic.examinations["DENTAL"].name):
        inbound = InboundMessage(
            channel="telegram", external_id=f"m{secrets.token_hex(8)}",
            contact=ContactRef(channel="telegram", external_id=patient.chat_id, display_name="Siti",
                               language_code="en"),
            received_at=monday_morning, text=words,
        )  # fmt: skip
        async with sessionmaker() as db, db.begin():
            ids.append((await ingest.receive(db, inbound, now=monday_morning)).message_id)
    async with sessionmaker() as db, db.begin():  # the later message's step runs first
        answered = await conversation.handle(db, ids[1], now=monday_morning)
    replies = await patient.payloads(answered)
    assert "assistant" in replies[0]["text"] and any(d.startswith("day:") for d in buttons(replies))
    async with sessionmaker() as db, db.begin():
        assert await conversation.handle(db, ids[0], now=monday_morning) == []


async def test_the_bot_offers_an_examination_only_where_one_of_its_doctors_works(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, monday_morning: datetime
) -> None:
    """A branch that lists the examination but where none of its doctors ever works is not offered: the patient
    would pick it and find no time in the next two weeks (issue 13, part 8)."""
    elsewhere = await build_clinic(db)  # its own doctors; this clinic's dr. Andi never works there
    gp = clinic.examinations["GP"]
    db.add(ExaminationBranch(examination_id=gp.id, branch_id=elsewhere.branch.id))
    await db.commit()
    patient = chat(sessionmaker, monday_morning)
    replies = await patient.send(gp.name)
    assert f"br:{elsewhere.branch.id}" not in buttons(replies)
    assert any(b.startswith("day:") for b in buttons(replies)), text(replies)  # straight to dr. Andi's days
