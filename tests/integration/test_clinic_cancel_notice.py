"""When the clinic cancels a visit, the patient hears about it on their own channel, once, in their language.

Staff cancel through the API, the appointments "reject" and the lifecycle service the queue board and session
page use. A patient who cancels themselves (in the chat, on the confirmation link) is answered there: no second
message. Every test books its own visit in its own clinic, for a patient who first wrote on Telegram.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, ChannelIdentity, Message, OutboxMessage, Patient, Session
from booking_core.domain.actors import Actor
from booking_core.domain.links import link_expires_at
from booking_core.services import appointments, confirmation, lifecycle, message_texts, messages, visit_link
from devtools.builders import Clinic, add_patient, insert_session, next_weekday
from tests.conftest import TEST_SECRET
from tests.integration.test_conversation import Chat, buttons, text

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]
DESK = Actor(kind="staff", name="desk", role="staff")
INTERNAL_NOTE = "Owes Rp 2.000.000 from the last visit, do not rebook"


@pytest.fixture
def tuesday_ten() -> datetime:
    """Next week's Tuesday at 10:00 in Jakarta: dr. Andi attends."""
    return next_weekday(1, hour=10)


async def telegram_patient(sessionmaker: Sessions, *, language: str = "en", name: str = "Dewi Anggraini") -> Chat:
    """A patient who said hello to the clinic's Telegram bot (so the clinic knows their chat and language), on the
    Monday morning before the coming Tuesday's visits, whatever day the suite runs."""
    monday_nine = next_weekday(1, hour=9) - timedelta(days=1)
    patient = Chat(sessionmaker=sessionmaker, now=monday_nine, name=name, language=language)
    await patient.send("hello")
    return patient


async def visit_for(
    db: AsyncSession, clinic: Clinic, chat: Chat | None, starts_at: datetime, *, patient: Patient | None = None
) -> Session:
    """A booked GP visit with dr. Andi for the chatting patient (or ``patient``)."""
    if patient is None:
        assert chat is not None
        patient = await patient_of(db, chat)
    clinic.patients[patient.name] = patient
    return await insert_session(db, clinic, starts_at=starts_at, patient=patient.name)


async def patient_of(db: AsyncSession, chat: Chat) -> Patient:
    identity = (
        await db.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == chat.chat_id))
    ).scalar_one()
    patient = await db.get(Patient, identity.patient_id)
    assert patient is not None
    return patient


async def notices(sessionmaker: Sessions, session_id: int) -> list[OutboxMessage]:
    async with sessionmaker() as fresh:
        rows = await fresh.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "cancelled_by_clinic").order_by(OutboxMessage.id)
        )
        return [r for r in rows.scalars() if r.dedupe_key == f"cancelled_by_clinic:{session_id}"]


async def cancelled_audit(sessionmaker: Sessions, session_id: int) -> AuditEntry:
    async with sessionmaker() as fresh:
        rows = await fresh.execute(
            select(AuditEntry).where(
                AuditEntry.entity == "session",
                AuditEntry.entity_id == session_id,
                AuditEntry.action == "session.cancelled",
            )
        )
        (entry,) = rows.scalars()
        return entry


async def api_cancel(client: Client, headers: dict[str, str], session_id: int, **body: str) -> Any:
    return await client.post(f"/api/v1/sessions/{session_id}/cancel", json=body, headers=headers)


# --- staff cancel: the patient is told ---------------------------------------------------------------------


async def test_a_visit_the_clinic_cancels_is_explained_to_the_patient_on_telegram(
    client: Client, sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await api_cancel(client, headers, visit.id, reason_code="doctor_unavailable", note=INTERNAL_NOTE)

    assert response.status == 200, await response.text()
    (notice,) = await notices(sessionmaker, visit.id)
    assert (notice.channel, notice.recipient, notice.status) == ("telegram", dewi.chat_id, "pending")
    said = notice.payload["text"]
    assert said.startswith("Hello Dewi, we are sorry: we have had to cancel your visit " + visit.booking_code)
    assert "General consultation with dr. Andi Wijaya" in said and "10:00" in said and "Klinik Sehat Test" in said
    assert "Reason: the doctor is not available at that time." in said
    assert 'reply "book" here' in said
    assert INTERNAL_NOTE not in said and "Owes" not in said
    assert [b["data"] for b in notice.payload["buttons"]] == ["menu:book"]
    entry = await cancelled_audit(sessionmaker, visit.id)
    assert entry.data["notified"] is True and entry.data["channel"] == "telegram"
    assert entry.data["note"] == INTERNAL_NOTE  # staff keep the note; the patient never sees it
    # The message is in the patient's conversation history, and "book" starts a new booking.
    async with sessionmaker() as fresh:
        history = await fresh.scalar(select(Message).where(Message.outbox_id == notice.id))
        assert history is not None and history.conversation_id == dewi.conversation_id and history.author == "staff"
    again = await dewi.send("book")
    assert any(data.startswith("ex:") for data in buttons(again)), text(again)


async def test_an_indonesian_conversation_is_told_in_indonesian_when_an_appointment_is_rejected(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    budi = await telegram_patient(sessionmaker, language="id", name="Budi Santoso")
    visit = await visit_for(db, clinic, budi, tuesday_ten)

    async with sessionmaker() as desk, desk.begin():
        await appointments.reject(desk, visit.id, actor=DESK, reason_code="clinic_closed", note=INTERNAL_NOTE)

    (notice,) = await notices(sessionmaker, visit.id)
    assert (notice.channel, notice.recipient) == ("telegram", budi.chat_id)
    said = notice.payload["text"]
    assert said.startswith("Halo Budi, mohon maaf, kunjungan Anda " + visit.booking_code)
    assert "terpaksa kami batalkan" in said and "Sel" in said and "10:00" in said
    assert "Alasan: klinik tutup pada hari itu." in said
    assert 'balas "daftar" di sini' in said
    assert INTERNAL_NOTE not in said
    assert [b["label"] for b in notice.payload["buttons"]] == ["Buat janji"]


async def test_a_patient_known_only_by_whatsapp_is_told_there_in_their_own_language(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    siti = clinic.patients["siti"]  # Indonesian, a WhatsApp number, never chatted
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)

    async with sessionmaker() as desk, desk.begin():
        await lifecycle.cancel(
            desk, visit.id, actor=DESK, reason_code="duplicate", booking_link="https://klinik.example/book"
        )

    (notice,) = await notices(sessionmaker, visit.id)
    assert (notice.channel, notice.recipient) == ("whatsapp", siti.phone_e164)
    said = notice.payload["text"]
    assert "Alasan: kunjungan ini tercatat dua kali; booking Anda yang lain tetap berlaku." in said
    assert said.endswith("atau isi formulir booking: https://klinik.example/book")


async def test_a_patient_who_phoned_to_cancel_is_told_it_is_done_as_they_asked(
    client: Client, sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await api_cancel(client, headers, visit.id, reason_code="patient_request", note="Called the desk")

    assert response.status == 200, await response.text()
    (notice,) = await notices(sessionmaker, visit.id)
    said = notice.payload["text"]
    assert said.startswith(f"Hello Dewi, as you asked, we have cancelled your visit {visit.booking_code}")
    assert "sorry" not in said and "Reason" not in said and "Called the desk" not in said


async def test_an_internal_reason_and_its_note_never_reach_the_patient(
    client: Client, sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await api_cancel(client, headers, visit.id, reason_code="other", note=INTERNAL_NOTE)

    assert response.status == 200, await response.text()
    (notice,) = await notices(sessionmaker, visit.id)
    said = notice.payload["text"]
    assert visit.booking_code in said and "we are sorry" in said
    assert "Reason" not in said  # "other" means nothing to a patient: no reason line at all
    assert said.splitlines()[1:] == [
        'To book another time, reply "book" here or use the booking form: http://testserver.local/book'
    ]  # the API passes the public booking form's address
    for word in INTERNAL_NOTE.split():
        if len(word) > 3:
            assert word not in said
    assert (await cancelled_audit(sessionmaker, visit.id)).data["note"] == INTERNAL_NOTE


# --- once, and only when the clinic cancelled ---------------------------------------------------------------


async def test_cancelling_twice_still_sends_one_message(
    client: Client, sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    first = await api_cancel(client, headers, visit.id, reason_code="doctor_unavailable")
    second = await api_cancel(client, headers, visit.id, reason_code="doctor_unavailable")

    assert first.status == 200, await first.text()
    assert second.status == 409 and (await second.json())["error"]["code"] == "invalid_transition"
    assert len(await notices(sessionmaker, visit.id)) == 1


async def test_a_patient_who_cancels_in_the_chat_gets_only_the_chat_answer(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)

    choose = await dewi.send(button="menu:cancel")
    assert f"s:{visit.id}" in buttons(choose)
    reasons = await dewi.send(button=f"s:{visit.id}")
    assert "rs:cant_come" in buttons(reasons)
    done = await dewi.send(button="rs:cant_come")

    assert visit.booking_code in text(done) and "cancelled" in text(done)
    async with sessionmaker() as fresh:
        stored = await fresh.get(Session, visit.id)
        assert stored is not None and stored.status == "cancelled"
    assert await notices(sessionmaker, visit.id) == []
    assert "notified" not in (await cancelled_audit(sessionmaker, visit.id)).data


async def test_a_patient_who_cancels_on_the_confirmation_link_gets_no_message_from_the_clinic(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    token = visit_link.link_token(TEST_SECRET, visit.id, visit.booking_code, expires_at=link_expires_at(visit.ends_at))
    claim = visit_link.read_link(TEST_SECRET, token)
    assert claim is not None

    async with sessionmaker() as page, page.begin():
        await confirmation.cancel_by_link(page, claim, reason="patient_request", note=None)

    assert await notices(sessionmaker, visit.id) == []
    entry = await cancelled_audit(sessionmaker, visit.id)
    assert entry.actor_kind == "patient" and "notified" not in entry.data


async def test_a_patient_with_no_channel_is_recorded_as_not_notified(
    client: Client, sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn, tuesday_ten: datetime
) -> None:
    walk_in = await add_patient(db, "Rina Walk-in")  # booked at the desk: no chat, no WhatsApp
    visit = await visit_for(db, clinic, None, tuesday_ten, patient=walk_in)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await api_cancel(client, headers, visit.id, reason_code="clinic_closed")

    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "cancelled"
    assert await notices(sessionmaker, visit.id) == []
    entry = await cancelled_audit(sessionmaker, visit.id)
    assert entry.data["notified"] is False and entry.data["not_notified"] == "no channel to reach the patient"


async def test_a_no_show_is_recorded_without_telling_the_patient_the_visit_was_cancelled(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic
) -> None:
    dewi = await telegram_patient(sessionmaker)
    tuesday_nine = next_weekday(1, hour=9)
    visit = await visit_for(db, clinic, dewi, tuesday_nine)

    async with sessionmaker() as desk, desk.begin():
        await lifecycle.cancel(desk, visit.id, actor=DESK, reason_code="no_show", now=tuesday_nine + timedelta(hours=1))

    assert await notices(sessionmaker, visit.id) == []
    assert (await cancelled_audit(sessionmaker, visit.id)).data["notified"] is False


async def test_the_clinics_own_text_for_the_notice_is_used(
    sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    dewi = await telegram_patient(sessionmaker)
    visit = await visit_for(db, clinic, dewi, tuesday_ten)
    own = "Maaf {{ name }}, visit {{ code }} is off.{% if reason == 'clinic_closed' %} We are closed.{% endif %}"
    owner = Actor(kind="staff", name="owner", role="owner")
    try:
        async with sessionmaker() as office, office.begin():
            await message_texts.save_message_text(office, "en", "cancelled_by_clinic", own, actor=owner)
        messages.forget_overrides()
        async with sessionmaker() as desk, desk.begin():
            await lifecycle.cancel(desk, visit.id, actor=DESK, reason_code="clinic_closed")
    finally:
        async with sessionmaker() as office, office.begin():
            await message_texts.reset_message_text(office, "en", "cancelled_by_clinic", actor=owner)
        messages.forget_overrides()

    (notice,) = await notices(sessionmaker, visit.id)
    assert notice.payload["text"] == f"Maaf Dewi, visit {visit.booking_code} is off. We are closed."
