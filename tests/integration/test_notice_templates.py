"""A patient who has not written on WhatsApp for a day gets the clinic's approved template instead of the text, with
its values numbered as the template was approved ({{1}}, {{2}}, …).

Siti (the test clinic's WhatsApp patient) never wrote, so she is outside WhatsApp's 24-hour window: every notice to
her goes out as the template the clinic configured for its kind (likewise a patient whose last message is two days
old). Each test plans notices through their own services, delivers them through the real WhatsApp adapter to the
fake Twilio API and reads what Twilio received.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, OutboxMessage, Session
from booking_core.domain.actors import Actor
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import ingest, lead_actions, lifecycle, notify, outbox, staff_replies, visit_messages
from channels.whatsapp.adapter import WhatsAppAdapter
from devtools.builders import Clinic, insert_session, next_weekday
from devtools.fakes.twilio_api import running_fake_twilio
from tests.conftest import TEST_SECRET
from tests.integration.test_reminders import Put, clinic_settings

__all__ = ["clinic_settings"]  # a fixture, used by name

Sessions = async_sessionmaker[AsyncSession]
ACCOUNT_SID, AUTH_TOKEN = "AC" + "5" * 32, "notice-test-token"
BASE_URL = "http://clinic.test"
DESK = Actor(kind="staff", name="desk", role="staff")
TEMPLATES = {
    kind: "HX" + f"{number:02d}" * 16
    for number, kind in enumerate(
        ("confirmation", "checkin_qr", "thank_you", "cancelled_by_clinic", "lead_accepted", "staff_reply"), start=1
    )
}


@pytest.fixture(autouse=True)
async def templates(clinic_settings: Put) -> None:
    await clinic_settings(notify.TEMPLATES_SETTING, TEMPLATES)


async def sent_to_siti(sessionmaker: Sessions, clinic: Clinic, outbox_ids: list[int]) -> list[dict[str, str]]:
    return await sent_on_whatsapp(sessionmaker, clinic.patients["siti"].phone_e164, outbox_ids)


async def sent_on_whatsapp(sessionmaker: Sessions, phone: str, outbox_ids: list[int]) -> list[dict[str, str]]:
    """Deliver the rows to the fake Twilio API; the template sid and numbered variables of each message it got."""
    async with running_fake_twilio(accounts={ACCOUNT_SID: AUTH_TOKEN}) as twilio:
        adapter = WhatsAppAdapter(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, sender="whatsapp:+14155238886",
                                  api_url=twilio.base_url, public_base_url="https://clinic.example")  # fmt: skip
        try:
            for outbox_id in outbox_ids:
                async with sessionmaker() as send:
                    assert (
                        await outbox.deliver(send, outbox_id, outbox.Sending({"whatsapp": adapter}))
                    ).status == "sent"
        finally:
            await adapter.close()
        received = twilio.sent_messages(f"whatsapp:{phone}")
    assert all("Body" not in message.params for message in received)
    return [
        {"sid": message.params["ContentSid"], **json.loads(message.params.get("ContentVariables", "{}"))}
        for message in received
    ]


async def text_of(sessionmaker: Sessions, outbox_id: int) -> str:
    async with sessionmaker() as db:
        row = (await db.execute(select(OutboxMessage).where(OutboxMessage.id == outbox_id))).scalar_one()
        return str(row.payload["text"])


async def sitis_visit(db: AsyncSession, clinic: Clinic, **kwargs: object) -> Session:
    return await insert_session(db, clinic, starts_at=next_weekday(1, hour=10), **kwargs)  # type: ignore[arg-type]


async def test_the_confirmation_template_carries_first_name_booking_code_and_link(
    db: AsyncSession, clinic: Clinic, sessionmaker: Sessions
) -> None:
    visit = await sitis_visit(db, clinic)
    async with sessionmaker() as work, work.begin():
        ids = await visit_messages.send_confirmation(work, visit.id, secret=TEST_SECRET, base_url=BASE_URL)

    [received] = await sent_to_siti(sessionmaker, clinic, ids)

    assert received.keys() == {"sid", "1", "2", "3"}
    assert received["sid"] == TEMPLATES["confirmation"]
    assert (received["1"], received["2"]) == ("Siti", visit.booking_code)
    assert received["3"].startswith(f"{BASE_URL}/c/") and received["3"] in await text_of(sessionmaker, ids[0])


async def test_the_check_in_and_thank_you_templates_carry_first_name_and_booking_code(
    db: AsyncSession, clinic: Clinic, sessionmaker: Sessions
) -> None:
    accepted = await sitis_visit(db, clinic, accepted=True)
    done = await insert_session(db, clinic, starts_at=datetime.now(UTC) - timedelta(hours=3), status="completed")
    async with sessionmaker() as work, work.begin():
        ids = await visit_messages.send_checkin_qr(work, accepted.id)
        ids += await visit_messages.send_thank_you(work, done.id)

    received = await sent_to_siti(sessionmaker, clinic, ids)

    assert received == [
        {"sid": TEMPLATES["checkin_qr"], "1": "Siti", "2": accepted.booking_code, "3": ""},
        {"sid": TEMPLATES["thank_you"], "1": "Siti", "2": done.booking_code, "3": ""},
    ]


async def test_the_clinics_cancellation_template_carries_the_whole_notice_on_one_line(
    db: AsyncSession, clinic: Clinic, sessionmaker: Sessions
) -> None:
    visit = await sitis_visit(db, clinic)
    async with sessionmaker() as work, work.begin():
        await lifecycle.cancel(
            work, visit.id, actor=DESK, reason_code="doctor_unavailable", booking_link="https://klinik.example/book"
        )
    async with sessionmaker() as read:
        outbox_id = (
            await read.execute(
                select(OutboxMessage.id).where(OutboxMessage.dedupe_key == f"cancelled_by_clinic:{visit.id}")
            )
        ).scalar_one()

    [received] = await sent_to_siti(sessionmaker, clinic, [outbox_id])

    text = await text_of(sessionmaker, outbox_id)
    assert visit.booking_code in text
    assert received == {"sid": TEMPLATES["cancelled_by_clinic"], "1": " ".join(text.split())}


async def test_staff_replies_and_the_leads_acceptance_carry_their_whole_text(sessionmaker: Sessions) -> None:
    phone = f"+62811{secrets.randbelow(10**8):08d}"
    contact = ContactRef(channel="whatsapp", external_id=phone, display_name="Rina", phone=phone, language_code="en")
    inbound = InboundMessage(
        channel="whatsapp", external_id=f"SM{secrets.token_hex(16)}", contact=contact,
        received_at=datetime.now(UTC), text="Can I see a doctor on Tuesday?",
    )  # fmt: skip
    async with sessionmaker() as work, work.begin():
        lead_id = (await ingest.receive(work, inbound)).lead_id
        assert lead_id is not None
        identity = (
            await work.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == phone))
        ).scalar_one()
        identity.last_inbound_at = datetime.now(UTC) - timedelta(days=2)  # she wrote two days ago
    async with sessionmaker() as work, work.begin():
        reply = await staff_replies.staff_reply(work, lead_id, actor=DESK, text="Yes:\nTuesday from 9 to 17.")
        accepted = await lead_actions.accept(work, lead_id, actor=DESK)
    assert reply.outbox_id is not None and accepted.outbox_id is not None

    received = await sent_on_whatsapp(sessionmaker, phone, [reply.outbox_id, accepted.outbox_id])

    assert received == [
        {"sid": TEMPLATES["staff_reply"], "1": "Yes:\nTuesday from 9 to 17."},
        {"sid": TEMPLATES["lead_accepted"], "1": await text_of(sessionmaker, accepted.outbox_id)},
    ]
