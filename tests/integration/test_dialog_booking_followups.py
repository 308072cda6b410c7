"""A visit the chatbot books directly (the clinic lets it) gets what a lead staff convert gets: its reminders with
the booking and its confirmation link right after the "you're booked" reply, in the same transaction.

The clinic setting is clinic-wide, so these tests run against a database of their own (``isolated_env``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import ChannelIdentity, ClinicSetting, Lead, OutboxMessage, Patient, Reminder, Session
from booking_core.domain.links import confirm_buttons
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import conversation, ingest, visit_link
from devtools.builders import Clinic, build_clinic, next_weekday
from tests.conftest import TEST_SECRET

Sessions = async_sessionmaker[AsyncSession]
BASE_URL = "https://klinik-sehat.example"


@pytest.fixture
async def sessions(isolated_env: dict[str, str]) -> AsyncIterator[Sessions]:
    engine = make_engine(isolated_env["DATABASE_URL"], pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@dataclass
class Patient_:
    """A known patient chatting on Telegram; messages go through ingest and the dialog as the worker runs them."""

    sessions: Sessions
    now: datetime
    chat_id: str = field(default_factory=lambda: str(700_000_000 + secrets.randbelow(10**8)))
    replies: list[OutboxMessage] = field(default_factory=list)

    async def says(self, text: str = "", *, button: str | None = None) -> list[OutboxMessage]:
        inbound = InboundMessage(
            channel="telegram",
            external_id=f"{self.chat_id}:{secrets.token_hex(6)}",
            contact=ContactRef(channel="telegram", external_id=self.chat_id, display_name="Ayu", language_code="en"),
            received_at=self.now,
            kind="button" if button else "text",
            text=text,
            button_data=button,
        )
        async with self.sessions() as db, db.begin():
            received = await ingest.receive(db, inbound, now=self.now)
        async with self.sessions() as db, db.begin():
            ids = await conversation.handle(
                db, received.message_id, now=self.now, secret=TEST_SECRET, base_url=BASE_URL
            )
        async with self.sessions() as db:
            rows = (await db.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).scalars()
            self.replies = sorted(rows, key=lambda r: r.id)
        return self.replies

    def buttons(self) -> list[str]:
        with_buttons = [r for r in self.replies if r.payload["buttons"]]
        return [b["data"] for b in with_buttons[-1].payload["buttons"]] if with_buttons else []

    def first(self, prefix: str) -> str:
        return next(d for d in self.buttons() if d.startswith(prefix))


async def _known_patient(sessions: Sessions, *, books_directly: bool) -> tuple[Clinic, Patient_, int]:
    async with sessions() as db:
        clinic = await build_clinic(db)
        db.add(ClinicSetting(key="dialog_books_directly", value=books_directly))
        ayu = Patient(name="Ayu Lestari", phone_e164=f"+62811{secrets.randbelow(10**8):08d}", language="en")
        db.add(ayu)
        await db.flush()
        chat = Patient_(sessions, next_weekday(0, hour=9, weeks=2))  # reminders a day and 2 h ahead
        db.add(ChannelIdentity(patient_id=ayu.id, channel="telegram", external_id=chat.chat_id, display_name="Ayu"))
        await db.commit()
    return clinic, chat, ayu.id


async def _book_dental_check_up(chat: Patient_, clinic: Clinic) -> list[OutboxMessage]:
    """Answer the chatbot's questions the way a hurried patient does, up to the final "yes"."""
    await chat.says(clinic.examinations["DENTAL"].name)
    for _ in range(8):
        data = chat.buttons()
        if "cf:yes" in data:
            return await chat.says(button="cf:yes")
        pick = next((d for prefix in ("br:", "dr:", "day:", "t:") for d in data if d.startswith(prefix)), None)
        if pick is not None:
            await chat.says(button=pick)
        elif "phone" in chat.replies[-1].payload["text"].lower():
            await chat.says("0812-3456-7890")
        else:
            await chat.says("Ayu Lestari")
    raise AssertionError(f"the chatbot never asked for the final yes: {chat.replies[-1].payload['text']!r}")


async def test_a_visit_the_chat_books_directly_gets_its_confirmation_link_after_the_reply_and_its_reminders(
    sessions: Sessions,
) -> None:
    clinic, chat, ayu = await _known_patient(sessions, books_directly=True)

    booked, link = await _book_dental_check_up(chat, clinic)

    async with sessions() as db:
        visit = (await db.execute(select(Session).where(Session.patient_id == ayu))).scalar_one()
        lead = (await db.execute(select(Lead).where(Lead.identity_id == link.identity_id))).scalar_one()
        reminders = (await db.execute(select(Reminder).where(Reminder.session_id == visit.id))).scalars().all()
    assert "You're booked" in booked.payload["text"] and visit.booking_code in booked.payload["text"]
    assert (link.kind, link.dedupe_key, link.recipient) == ("confirmation", f"confirm:{visit.id}", chat.chat_id)
    assert visit.booking_code in link.payload["text"]
    assert tuple(b["data"] for b in link.payload["buttons"]) == confirm_buttons(visit.id)
    token = link.payload["text"].split(f"{BASE_URL}/c/", 1)[1].split()[0]
    claim = visit_link.read_link(TEST_SECRET, token)
    assert claim is not None and (claim.session_id, claim.booking_code) == (visit.id, visit.booking_code)
    assert (lead.status, visit.lead_id, visit.status) == ("converted", lead.id, "waiting")
    assert {(r.kind, r.status) for r in reminders} == {("24h", "scheduled"), ("2h", "scheduled")}


async def test_a_chat_booking_staff_still_have_to_convert_gets_no_confirmation_yet(sessions: Sessions) -> None:
    clinic, chat, ayu = await _known_patient(sessions, books_directly=False)

    replies = await _book_dental_check_up(chat, clinic)

    assert [r.kind for r in replies] == ["reply"] and "Our staff will confirm it" in replies[0].payload["text"]
    async with sessions() as db:
        visits = await db.scalar(select(func.count()).select_from(Session).where(Session.patient_id == ayu))
        confirmations = await db.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "confirmation")
        )
    assert (visits, confirmations) == (0, 0)
