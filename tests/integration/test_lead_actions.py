"""Staff accept, reject or convert a lead in one click; the patient hears about it on their own channel."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from rq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import (
    AuditEntry,
    ChannelIdentity,
    Invoice,
    Lead,
    Occupancy,
    OutboxMessage,
    Patient,
    Session,
    SlotHold,
)
from booking_core.domain.actors import SYSTEM, Actor
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import appointments, booking, ingest
from devtools.builders import Clinic, build_clinic, next_weekday
from infra import job_names

SignIn = Callable[..., Awaitable[dict[str, str]]]
DESK_STAFF = Actor(kind="staff", name="Reception", role="staff")
Sessions = async_sessionmaker[AsyncSession]


def _telegram_chat() -> str:
    return str(5_000_000_000 + secrets.randbelow(10**9))


async def _chat_lead(
    sessionmaker: Sessions,
    *,
    channel: str = "telegram",
    language: str = "en",
    name: str = "Dewi Anggraini",
    external: str | None = None,
    phone: str | None = None,
) -> ingest.Received:
    """A patient writes to the clinic: their message becomes a new lead in the inbox."""
    contact = ContactRef(
        channel=channel,  # type: ignore[arg-type]
        external_id=external or _telegram_chat(),
        display_name=name,
        phone=phone,
        language_code=language,
    )
    inbound = InboundMessage(
        channel=channel,  # type: ignore[arg-type]
        external_id=f"{channel}-{secrets.token_hex(8)}",
        contact=contact,
        received_at=datetime.now(UTC),
        text="I would like a check-up please",
    )
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, inbound)
    assert received.lead_id is not None
    return received


async def _hold_for_lead(
    sessionmaker: Sessions, clinic: Clinic, lead_id: int, start: datetime, *, minutes: int = 30
) -> int:
    """The chat held a GP slot with dr. Andi for the lead (as the dialog does when the patient picks a time)."""
    async with sessionmaker() as db, db.begin():
        held = await booking.hold(
            db,
            actor=SYSTEM,
            branch_id=clinic.branch.id,
            examination_id=clinic.examinations["GP"].id,
            start=start,
            doctor_id=clinic.doctors["andi"].id,
            minutes=minutes,
        )
        lead = await db.get(Lead, lead_id)
        assert lead is not None
        lead.branch_id, lead.examination_id, lead.doctor_id = clinic.branch.id, held.examination_id, held.doctor_id
        lead.requested_start, lead.hold_id = held.starts_at, held.id
        return held.id


async def _row(sessionmaker: Sessions, model: Any, row_id: int) -> Any:
    async with sessionmaker() as db:
        return await db.get(model, row_id)


async def _outbox_of_lead(sessionmaker: Sessions, lead_id: int) -> list[OutboxMessage]:
    async with sessionmaker() as db:
        rows = await db.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"lead-{lead_id}-%")))
        return list(rows.scalars())


async def _audit(sessionmaker: Sessions, action: str, entity: str, entity_id: int) -> list[AuditEntry]:
    async with sessionmaker() as db:
        rows = await db.execute(
            select(AuditEntry).where(
                AuditEntry.action == action, AuditEntry.entity == entity, AuditEntry.entity_id == entity_id
            )
        )
        return list(rows.scalars())


async def _sessions_of_lead(sessionmaker: Sessions, lead_id: int) -> int:
    async with sessionmaker() as db:
        return int((await db.execute(select(func.count()).where(Session.lead_id == lead_id))).scalar_one())


# --- accept / reject ---


async def test_accepting_a_lead_tells_the_patient_on_telegram_in_indonesian(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    clinic: Clinic,
    sign_in: SignIn,
    sync_redis: SyncRedis,
) -> None:
    chat = _telegram_chat()
    received = await _chat_lead(sessionmaker, language="id", external=chat, name="Dewi")
    await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(1, hour=10))
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await client.post(f"/api/v1/leads/{received.lead_id}/accept", headers=headers)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["changed"], body["notified"]) == ("accepted", True, True)
    (message,) = await _outbox_of_lead(sessionmaker, received.lead_id or 0)
    assert (message.channel, message.recipient, message.kind) == ("telegram", chat, "lead_accepted")
    assert "kabar baik" in message.payload["text"] and "General consultation" in message.payload["text"]
    assert "dr. Andi Wijaya" in message.payload["text"] and "10:00" in message.payload["text"]
    assert Job.fetch(f"deliver-{message.id}", connection=sync_redis).func_name == job_names.DELIVER
    assert len(await _audit(sessionmaker, "lead.accepted", "lead", received.lead_id or 0)) == 1

    again = await client.post(f"/api/v1/leads/{received.lead_id}/accept", headers=headers)
    assert again.status == 200
    assert (await again.json())["changed"] is False
    assert len(await _outbox_of_lead(sessionmaker, received.lead_id or 0)) == 1  # told once


async def test_rejecting_a_lead_gives_its_held_slot_back_and_tells_the_patient_why(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    phone = f"+62857{secrets.randbelow(10**8):08d}"
    received = await _chat_lead(sessionmaker, channel="whatsapp", language="en", external=phone, phone=phone)
    hold_id = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(2, hour=11))
    headers = await sign_in("admin")

    response = await client.post(
        f"/api/v1/leads/{received.lead_id}/reject",
        json={"reason": "  dr. Andi is away that morning  "},
        headers=headers,
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["reject_reason"], body["hold_released"]) == (
        "rejected",
        "dr. Andi is away that morning",
        True,
    )
    held = await _row(sessionmaker, SlotHold, hold_id)
    assert held.status == "released"
    async with sessionmaker() as db:
        claims = (await db.execute(select(Occupancy.active).where(Occupancy.id == held.occupancy_id))).all()
    assert all(not active for (active,) in claims)
    (message,) = await _outbox_of_lead(sessionmaker, received.lead_id or 0)
    assert (message.channel, message.recipient, message.kind) == ("whatsapp", phone, "lead_rejected")
    assert "we are sorry" in message.payload["text"] and "dr. Andi is away that morning" in message.payload["text"]
    lead = await _row(sessionmaker, Lead, received.lead_id or 0)
    assert (lead.status, lead.reject_reason) == ("rejected", "dr. Andi is away that morning")

    again = await client.post(f"/api/v1/leads/{received.lead_id}/reject", json={"reason": "again"}, headers=headers)
    assert (await again.json())["changed"] is False
    assert len(await _outbox_of_lead(sessionmaker, received.lead_id or 0)) == 1


async def test_a_rejection_needs_a_reason(
    client: TestClient[object, object], sessionmaker: Sessions, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    headers = await sign_in("staff")
    for body in ({}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "busy", "notify": False}):
        response = await client.post(f"/api/v1/leads/{received.lead_id}/reject", json=body, headers=headers)
        assert response.status == 422, body
    assert (await _row(sessionmaker, Lead, received.lead_id or 0)).status == "new"


# --- convert ---


async def test_converting_a_lead_turns_its_hold_into_a_session_with_an_invoice(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    clinic: Clinic,
    sign_in: SignIn,
    sync_redis: SyncRedis,
) -> None:
    received = await _chat_lead(sessionmaker)
    start = next_weekday(1, hour=9, minute=30)
    hold_id = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, start)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    response = await client.post(f"/api/v1/leads/{received.lead_id}/convert", json={}, headers=headers)

    assert response.status == 200, await response.text()
    body = await response.json()
    visit = body["session"]
    assert body["created"] is True and body["patient_id"] == received.patient_id
    assert datetime.fromisoformat(visit["starts_at"]) == start
    assert (visit["doctor_id"], visit["doctor_name"], visit["status"]) == (
        clinic.doctors["andi"].id,
        "dr. Andi Wijaya",
        "waiting",
    )
    assert visit["room_name"] and len(visit["booking_code"]) >= 6
    assert (await _row(sessionmaker, SlotHold, hold_id)).status == "converted"
    lead = await _row(sessionmaker, Lead, received.lead_id or 0)
    assert (lead.status, lead.patient_id) == ("converted", received.patient_id)
    async with sessionmaker() as db:
        invoice = (await db.execute(select(Invoice).where(Invoice.session_id == visit["id"]))).scalar_one()
        session = await db.get(Session, visit["id"])
    assert invoice.gross == clinic.examinations["GP"].price
    assert session is not None and session.lead_id == received.lead_id
    async with sessionmaker() as db:  # the confirmation link, planned with the booking (no Redis needed)
        link = (
            await db.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == f"confirm:{visit['id']}"))
        ).scalar_one()
    assert link.kind == "confirmation" and visit["booking_code"] in link.payload["text"]
    assert Job.exists(f"deliver-{link.id}", connection=sync_redis)  # and handed to the workers after commit
    assert len(await _audit(sessionmaker, "lead.converted", "lead", received.lead_id or 0)) == 1


async def test_staff_can_book_another_time_than_the_one_held_and_the_hold_is_given_back(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    held_at = next_weekday(3, hour=10)
    hold_id = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, held_at)
    headers = await sign_in("owner")
    picked = held_at + timedelta(minutes=15)  # overlaps the held half hour: only free once the hold is let go

    response = await client.post(
        f"/api/v1/leads/{received.lead_id}/convert",
        json={"start": picked.isoformat(), "doctor_id": clinic.doctors["andi"].id},
        headers=headers,
    )

    assert response.status == 200, await response.text()
    visit = (await response.json())["session"]
    assert datetime.fromisoformat(visit["starts_at"]) == picked
    assert (await _row(sessionmaker, SlotHold, hold_id)).status == "released"
    assert (await _row(sessionmaker, Lead, received.lead_id or 0)).status == "converted"


async def test_a_chat_lead_without_a_request_is_booked_at_the_time_staff_pick(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    headers = await sign_in("staff")
    url = f"/api/v1/leads/{received.lead_id}/convert"

    nothing = await client.post(url, json={}, headers=headers)
    assert nothing.status == 422
    assert (await nothing.json())["error"]["code"] == "branch_required"
    naive = await client.post(url, json={"start": "2030-01-07T10:00:00"}, headers=headers)
    assert naive.status == 422

    start = next_weekday(4, hour=14)
    picked = {
        "branch_id": clinic.branch.id,
        "examination_ids": [clinic.examinations["DENTAL"].id],
        "start": start.isoformat(),
    }
    response = await client.post(url, json=picked, headers=headers)
    assert response.status == 200, await response.text()
    visit = (await response.json())["session"]
    assert (visit["doctor_id"], visit["room_id"]) == (clinic.doctors["sari"].id, clinic.rooms["dental"].id)
    assert (await _row(sessionmaker, Lead, received.lead_id or 0)).branch_id == clinic.branch.id


async def test_a_form_lead_without_a_patient_creates_one_from_its_phone(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    async with sessionmaker() as db, db.begin():
        lead = Lead(channel="webform", status="new", contact_name="Rudi Hartono", contact_phone="0813-1111-2222")
        db.add(lead)
        await db.flush()
        lead_id = lead.id
    headers = await sign_in("staff")
    picked = {
        "branch_id": clinic.branch.id,
        "examination_ids": [clinic.examinations["GP"].id],
        "start": next_weekday(0, hour=13).isoformat(),
    }
    response = await client.post(f"/api/v1/leads/{lead_id}/convert", json=picked, headers=headers)
    assert response.status == 200, await response.text()
    patient = await _row(sessionmaker, Patient, (await response.json())["patient_id"])
    assert (patient.name, patient.phone_e164) == ("Rudi Hartono", "+6281311112222")
    assert len(await _audit(sessionmaker, "patient.created", "patient", patient.id)) == 1


async def test_a_slot_taken_meanwhile_is_refused_with_alternatives_and_nothing_is_half_written(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    siti = clinic.patients["siti"]
    received = await _chat_lead(sessionmaker, name="Siti R")
    start = next_weekday(2, hour=15)
    hold_id = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, start, minutes=5)
    async with sessionmaker() as db, db.begin():
        # The patient typed Siti's number in the chat: converting would merge the two records...
        await db.execute(update(Lead).where(Lead.id == received.lead_id).values(contact_phone=siti.phone_e164))
        # ...but the hold lapsed and someone else booked dr. Andi at that time.
        past = datetime.now(UTC) - timedelta(minutes=1)
        held = await db.get(SlotHold, hold_id)
        assert held is not None
        held.expires_at = past
        await db.execute(update(Occupancy).where(Occupancy.id == held.occupancy_id).values(expires_at=past))
    async with sessionmaker() as db, db.begin():
        await booking.book(
            db,
            actor=SYSTEM,
            branch_id=clinic.branch.id,
            patient_id=siti.id,
            examination_ids=[clinic.examinations["GP"].id],
            start=start,
            doctor_id=clinic.doctors["andi"].id,
        )
    headers = await sign_in("staff")

    response = await client.post(f"/api/v1/leads/{received.lead_id}/convert", json={}, headers=headers)

    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "slot_taken"
    alternatives = error["details"]["alternatives"]
    assert alternatives and all(datetime.fromisoformat(a["start"]) > start for a in alternatives)
    lead = await _row(sessionmaker, Lead, received.lead_id or 0)
    assert (lead.status, lead.patient_id) == ("new", received.patient_id)
    assert await _sessions_of_lead(sessionmaker, received.lead_id or 0) == 0
    chat_patient = await _row(sessionmaker, Patient, received.patient_id or 0)
    assert chat_patient.merged_into_id is None  # the merge was rolled back with the rest
    assert await _audit(sessionmaker, "lead.converted", "lead", received.lead_id or 0) == []

    retry = await client.post(
        f"/api/v1/leads/{received.lead_id}/convert", json={"start": alternatives[0]["start"]}, headers=headers
    )
    assert retry.status == 200, await retry.text()
    assert (await retry.json())["patient_id"] == siti.id


async def test_converting_twice_returns_the_same_session(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(0, hour=11))
    headers = await sign_in("staff")
    url = f"/api/v1/leads/{received.lead_id}/convert"

    first = await (await client.post(url, json={}, headers=headers)).json()
    second = await (await client.post(url, json={}, headers=headers)).json()

    assert (first["created"], second["created"]) == (True, False)
    assert second["session"] == first["session"]
    assert await _sessions_of_lead(sessionmaker, received.lead_id or 0) == 1


async def test_ten_receptionists_converting_one_lead_at_once_make_one_session(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(4, hour=9))
    headers = [await sign_in("staff") for _ in range(10)]
    url = f"/api/v1/leads/{received.lead_id}/convert"

    async def click(auth: dict[str, str]) -> dict[str, Any]:
        response = await client.post(url, json={}, headers=auth)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    results = await asyncio.gather(*(click(auth) for auth in headers))

    assert len({r["session"]["id"] for r in results}) == 1
    assert sum(r["created"] for r in results) == 1
    assert await _sessions_of_lead(sessionmaker, received.lead_id or 0) == 1
    assert len(await _audit(sessionmaker, "lead.converted", "lead", received.lead_id or 0)) == 1


async def test_converting_merges_the_chat_patient_with_the_patient_who_has_that_phone(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    siti = clinic.patients["siti"]  # known from WhatsApp, with her phone number
    received = await _chat_lead(sessionmaker, name="Siti on Telegram")  # a new chat: a new record
    assert received.patient_id != siti.id
    await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(1, hour=16))
    async with sessionmaker() as db, db.begin():
        await db.execute(update(Lead).where(Lead.id == received.lead_id).values(contact_phone=siti.phone_e164))
    headers = await sign_in("staff")

    response = await client.post(f"/api/v1/leads/{received.lead_id}/convert", json={}, headers=headers)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["patient_id"] == siti.id and body["session"]["patient_id"] == siti.id
    folded = await _row(sessionmaker, Patient, received.patient_id or 0)
    assert folded.merged_into_id == siti.id
    telegram = await _row(sessionmaker, ChannelIdentity, received.identity_id or 0)
    assert telegram.patient_id == siti.id  # Siti is now reachable on both channels
    merged = await _audit(sessionmaker, "patient.merged", "patient", siti.id)
    assert [entry.data["merged"] for entry in merged] == [received.patient_id]
    assert (await _row(sessionmaker, Lead, received.lead_id or 0)).patient_id == siti.id


async def test_a_rejected_lead_cannot_be_converted_nor_a_converted_one_rejected(
    client: TestClient[object, object], sessionmaker: Sessions, clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    rejected = await _chat_lead(sessionmaker)
    await client.post(f"/api/v1/leads/{rejected.lead_id}/reject", json={"reason": "duplicate"}, headers=headers)
    converted = await _chat_lead(sessionmaker)
    await _hold_for_lead(sessionmaker, clinic, converted.lead_id or 0, next_weekday(3, hour=14))
    assert (await client.post(f"/api/v1/leads/{converted.lead_id}/convert", json={}, headers=headers)).status == 200

    cases = [
        (f"/api/v1/leads/{rejected.lead_id}/convert", {}, "lead_rejected"),
        (f"/api/v1/leads/{rejected.lead_id}/accept", None, "lead_rejected"),
        (f"/api/v1/leads/{converted.lead_id}/reject", {"reason": "changed mind"}, "already_converted"),
        (f"/api/v1/leads/{converted.lead_id}/accept", None, "already_converted"),
    ]
    for url, body, code in cases:
        response = (
            await client.post(url, json=body, headers=headers)
            if body is not None
            else await client.post(url, headers=headers)
        )
        assert response.status == 409, url
        assert (await response.json())["error"]["code"] == code
    assert await _sessions_of_lead(sessionmaker, rejected.lead_id or 0) == 0
    assert (await _row(sessionmaker, Lead, converted.lead_id or 0)).status == "converted"


async def test_another_branchs_lead_is_404_and_doctors_cannot_decide_on_leads(
    client: TestClient[object, object], sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    received = await _chat_lead(sessionmaker)
    await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(0, hour=15))
    elsewhere = await build_clinic(db)
    other_staff = await sign_in("staff", branch_id=elsewhere.branch.id)
    doctor = await sign_in("doctor")
    for action, body in (("accept", None), ("reject", {"reason": "no"}), ("convert", {})):
        url = f"/api/v1/leads/{received.lead_id}/{action}"
        assert (await client.post(url, json=body, headers=other_staff)).status == 404, action
        assert (await client.post(url, json=body, headers=doctor)).status == 403, action
        assert (await client.post(url, json=body)).status == 401, action
    assert (await client.post("/api/v1/leads/999999999/accept", headers=other_staff)).status == 404
    assert (await _row(sessionmaker, Lead, received.lead_id or 0)).status == "new"


async def test_one_accept_the_lead_then_its_visit_needs_none_and_awaits_nobody(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    clinic: Clinic,
    sign_in: SignIn,
) -> None:
    received = await _chat_lead(sessionmaker)
    lead_id = received.lead_id or 0
    await _hold_for_lead(sessionmaker, clinic, lead_id, next_weekday(2, hour=10))
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    assert (await client.post(f"/api/v1/leads/{lead_id}/accept", headers=headers)).status == 200
    converted = await client.post(f"/api/v1/leads/{lead_id}/convert", json={}, headers=headers)

    assert converted.status == 200, await converted.text()
    visit_id = (await converted.json())["session"]["id"]
    shown = await (await client.get(f"/api/v1/sessions/{visit_id}", headers=headers)).json()
    assert shown["accepted"] is True  # booked by staff: accepted by booking it
    async with sessionmaker() as db:
        waiting_for_acceptance = await appointments.new_appointments(db, actor=DESK_STAFF, branch_id=clinic.branch.id)
    assert visit_id not in [a.id for a in waiting_for_acceptance]
    assert await _audit(sessionmaker, "session.accepted", "session", visit_id) == []  # no second accept step
    (booked,) = await _audit(sessionmaker, "session.booked", "session", visit_id)
    assert booked.data["accepted"] is True


async def test_a_patients_own_booking_still_waits_for_the_front_desk(sessionmaker: Sessions, clinic: Clinic) -> None:
    received = await _chat_lead(sessionmaker)
    hold_id = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, next_weekday(2, hour=11))
    patient = Actor(kind="patient", id=received.patient_id, name="Dewi Anggraini")
    async with sessionmaker() as db, db.begin():
        session = await booking.convert_hold(db, hold_id, actor=patient, patient_id=received.patient_id or 0)
        visit_id = session.id
    async with sessionmaker() as db:
        listed = await appointments.new_appointments(db, actor=DESK_STAFF, branch_id=clinic.branch.id)
        stored = await db.get(Session, visit_id)
    assert stored is not None and stored.accepted is False
    assert visit_id in [a.id for a in listed]
