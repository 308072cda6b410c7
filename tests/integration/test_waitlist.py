"""The waitlist against the real database: staff put patients on it, a cancelled visit's time is offered over chat,
the first to accept books it and the others hear it has gone."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import (
    ChannelIdentity,
    OutboxMessage,
    Patient,
    Reminder,
    Session,
    WaitlistEntry,
    WaitlistOffer,
)
from booking_core.domain.actors import Actor
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import booking, conversation, followups, ingest, lifecycle, waitlist
from devtools.builders import Clinic, add_patient, build_clinic, next_weekday

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]
DESK = Actor(kind="staff", name="Reception", role="staff")


async def chatting_patient(db: AsyncSession, name: str, channel: str = "telegram") -> tuple[Patient, str]:
    """A patient who chats with the clinic (English), and their chat id (the E.164 number on WhatsApp)."""
    patient = await add_patient(db, name, commit=False)
    patient.language = "en"
    external = patient.phone_e164 if channel == "whatsapp" else str(secrets.randbelow(10**9))
    assert external is not None
    db.add(
        ChannelIdentity(
            patient_id=patient.id,
            channel=channel,
            external_id=external,
            display_name=name,
            last_inbound_at=datetime.now(UTC),
        )
    )
    await db.commit()
    return patient, external


async def say(
    sessionmaker: async_sessionmaker[AsyncSession],
    channel: str,
    chat: str,
    *,
    text: str = "",
    button: str | None = None,
    links: tuple[str | None, str | None] = (None, None),
) -> list[dict[str, Any]]:
    """The patient writes (or presses a button) in their chat; returns the bot's replies to them.

    ``links`` = (SECRET_KEY, PUBLIC_BASE_URL), as the worker passes them, for confirmation links."""
    inbound = InboundMessage(
        channel=channel,  # type: ignore[arg-type]
        external_id=f"in{secrets.token_hex(8)}",
        contact=ContactRef(channel=channel, external_id=chat, phone=chat if channel == "whatsapp" else None),  # type: ignore[arg-type]
        received_at=datetime.now(UTC),
        kind="button" if button else "text",
        text=text,
        button_data=button,
    )
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, inbound)
    async with sessionmaker() as db, db.begin():
        ids = await conversation.handle(db, received.message_id, secret=links[0], base_url=links[1])
    async with sessionmaker() as db:
        rows = (await db.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).scalars()
        return [{**row.payload, "kind": row.kind} for row in sorted(rows, key=lambda r: r.id) if row.recipient == chat]


async def sent_to(sessionmaker: async_sessionmaker[AsyncSession], chat: str, kind: str) -> list[dict[str, Any]]:
    async with sessionmaker() as db:
        rows = await db.execute(
            select(OutboxMessage)
            .where(OutboxMessage.recipient == chat, OutboxMessage.kind == kind)
            .order_by(OutboxMessage.id)
        )
        return [row.payload for row in rows.scalars()]


async def join_over_api(
    client: Client, headers: dict[str, str], clinic: Clinic, patient: Patient, day: date, exam: str = "GP"
) -> dict[str, Any]:
    body = {
        "patient_id": patient.id,
        "branch_id": clinic.branch.id,
        "examination_id": clinic.examinations[exam].id,
        "day": day.isoformat(),
    }
    response = await client.post("/api/v1/waitlist", json=body, headers=headers)
    assert response.status == 201, await response.text()
    entry: dict[str, Any] = await response.json()
    return entry


async def book_over_api(
    client: Client, headers: dict[str, str], clinic: Clinic, patient: Patient, start: datetime
) -> dict[str, Any]:
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": patient.id,
        "examination_ids": [clinic.examinations["GP"].id],
        "start": start.isoformat(),
        "doctor_id": clinic.doctors["andi"].id,
    }
    response = await client.post("/api/v1/sessions", json=body, headers=headers)
    assert response.status == 201, await response.text()
    session: dict[str, Any] = await response.json()
    return session


def tuesday_at(hour: int) -> datetime:
    return next_weekday(1, hour=hour, weeks=2)


def local_day(clinic: Clinic, instant: datetime) -> date:
    return instant.astimezone(ZoneInfo(clinic.branch.tz)).date()


async def test_a_freed_slot_is_offered_to_everyone_waiting_and_the_first_to_accept_books_it(
    client: Client, sign_in: SignIn, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    headers = await sign_in("staff")
    start = tuesday_at(10)
    ayu, ayu_chat = await chatting_patient(db, "Ayu")
    budi, budi_chat = await chatting_patient(db, "Budi")
    other_day, other_chat = await chatting_patient(db, "Citra")
    await join_over_api(client, headers, clinic, ayu, local_day(clinic, start))
    await join_over_api(client, headers, clinic, budi, local_day(clinic, start))
    await join_over_api(client, headers, clinic, other_day, local_day(clinic, start) + timedelta(days=1))
    visit = await book_over_api(client, headers, clinic, clinic.patients["siti"], start)

    cancelled = await client.post(
        f"/api/v1/sessions/{visit['id']}/cancel", json={"reason_code": "patient_request"}, headers=headers
    )
    assert cancelled.status == 200, await cancelled.text()

    [to_ayu], [to_budi] = (
        await sent_to(sessionmaker, ayu_chat, "waitlist_offer"),
        await sent_to(sessionmaker, budi_chat, "waitlist_offer"),
    )
    assert await sent_to(sessionmaker, other_chat, "waitlist_offer") == []  # waiting for another day
    assert to_ayu["buttons"] == to_budi["buttons"] and to_ayu["buttons"][0]["label"] == "Accept"
    accept = to_ayu["buttons"][0]["data"]
    assert accept.startswith("wl:") and "dr. Andi Wijaya" in to_ayu["text"]

    replies = await say(sessionmaker, "telegram", ayu_chat, button=accept)

    async with sessionmaker() as check:
        booked = (await check.execute(select(Session).where(Session.patient_id == ayu.id))).scalar_one()
        offer = await check.get(WaitlistOffer, int(accept.removeprefix("wl:")))
        entries = {
            e.patient_id: e.status
            for e in (await check.execute(select(WaitlistEntry).where(WaitlistEntry.branch_id == clinic.branch.id)))
            .scalars()
            .all()
        }
        reminders = (await check.execute(select(Reminder).where(Reminder.session_id == booked.id))).scalars().all()
    assert (booked.starts_at, booked.doctor_id, booked.status) == (start, clinic.doctors["andi"].id, "waiting")
    assert replies[0]["text"].startswith("It's yours!") and booked.booking_code in replies[0]["text"]
    assert offer is not None and (offer.status, offer.session_id) == ("taken", booked.id)
    assert entries == {ayu.id: "booked", budi.id: "waiting", other_day.id: "waiting"}
    assert {r.kind for r in reminders} == {"24h", "2h"}  # booked like any other visit
    [gone] = await sent_to(sessionmaker, budi_chat, "waitlist_gone")
    assert gone["text"].startswith("Sorry, the place on")

    too_late = await say(sessionmaker, "telegram", budi_chat, button=accept)
    assert len(too_late) == 1 and too_late[0]["text"].startswith("Sorry, the place")
    async with sessionmaker() as check:
        assert (await check.execute(select(Session).where(Session.patient_id == budi.id))).first() is None
    again = await say(sessionmaker, "telegram", ayu_chat, button=accept)  # a second tap changes nothing
    assert booked.booking_code in again[0]["text"]


async def test_two_patients_accepting_at_once_make_one_booking(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    start = tuesday_at(11)
    day = local_day(clinic, start)
    (dewi, _), (eko, _) = await chatting_patient(db, "Dewi"), await chatting_patient(db, "Eko")
    async with sessionmaker() as desk, desk.begin():
        for patient in (dewi, eko):
            await waitlist.join(
                desk, actor=DESK, patient_id=patient.id, branch_id=clinic.branch.id,
                examination_id=clinic.examinations["GP"].id, day=day,
            )  # fmt: skip
        visit = await booking.book(
            desk, actor=DESK, branch_id=clinic.branch.id, patient_id=clinic.patients["siti"].id,
            examination_ids=[clinic.examinations["GP"].id], start=start, doctor_id=clinic.doctors["andi"].id,
        )  # fmt: skip
    async with sessionmaker() as desk, desk.begin():
        cancelled = await lifecycle.cancel(desk, visit.id, actor=DESK, reason_code="no_show")
        await followups.run(desk, cancelled.follow_ups)
    async with sessionmaker() as look:
        offer = (
            await look.execute(select(WaitlistOffer).where(WaitlistOffer.branch_id == clinic.branch.id))
        ).scalar_one()
    assert cancelled.session.status == "cancelled" and offer.status == "open"

    async def accept(patient: Patient) -> str:
        async with sessionmaker() as own, own.begin():
            actor = Actor(kind="patient", id=patient.id, name=patient.name)
            return (await waitlist.accept(own, offer.id, patient_id=patient.id, actor=actor)).outcome

    outcomes = await asyncio.gather(accept(dewi), accept(eko))

    assert sorted(outcomes) == ["booked", "gone"]
    async with sessionmaker() as check:
        booked = (await check.execute(select(Session).where(Session.patient_id.in_([dewi.id, eko.id])))).scalars().all()
    assert len(booked) == 1 and booked[0].starts_at == start


async def test_a_whatsapp_patient_accepts_by_replying_with_the_options_number(
    client: Client, sign_in: SignIn, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    headers = await sign_in("staff")
    start = tuesday_at(14)
    fitri, phone = await chatting_patient(db, "Fitri", channel="whatsapp")
    await join_over_api(client, headers, clinic, fitri, local_day(clinic, start))
    visit = await book_over_api(client, headers, clinic, clinic.patients["siti"], start)
    async with sessionmaker() as desk, desk.begin():
        cancelled = await lifecycle.cancel(desk, visit["id"], actor=DESK, reason_code="patient_request")
        await followups.run(desk, cancelled.follow_ups)
    [offer] = await sent_to(sessionmaker, phone, "waitlist_offer")

    replies = await say(sessionmaker, "whatsapp", phone, text="1")

    assert replies[0]["text"].startswith("It's yours!")
    async with sessionmaker() as check:
        booked = (await check.execute(select(Session).where(Session.patient_id == fitri.id))).scalar_one()
    assert booked.starts_at == start and booked.booking_code in replies[0]["text"]
    assert offer["buttons"][0]["data"] == f"wl:{(await _offer_of(sessionmaker, clinic)).id}"


async def _offer_of(sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic) -> WaitlistOffer:
    async with sessionmaker() as look:
        query = select(WaitlistOffer).where(WaitlistOffer.branch_id == clinic.branch.id)
        return (await look.execute(query)).scalar_one()


async def test_a_cancellation_nobody_waits_for_offers_nothing_and_a_stranger_cannot_take_an_offer(
    client: Client, sign_in: SignIn, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    headers = await sign_in("staff")
    lonely = await book_over_api(client, headers, clinic, clinic.patients["siti"], tuesday_at(9))
    async with sessionmaker() as desk, desk.begin():
        cancelled = await lifecycle.cancel(desk, lonely["id"], actor=DESK, reason_code="patient_request")
        await followups.run(desk, cancelled.follow_ups)
    async with sessionmaker() as look:
        query = select(WaitlistOffer).where(WaitlistOffer.branch_id == clinic.branch.id)
        assert (await look.execute(query)).first() is None

    gita, gita_chat = await chatting_patient(db, "Gita")
    _, stranger_chat = await chatting_patient(db, "Hadi")  # not on the list
    await join_over_api(client, headers, clinic, gita, local_day(clinic, tuesday_at(15)))
    visit = await book_over_api(client, headers, clinic, clinic.patients["siti"], tuesday_at(15))
    async with sessionmaker() as desk, desk.begin():
        cancelled = await lifecycle.cancel(desk, visit["id"], actor=DESK, reason_code="patient_request")
        await followups.run(desk, cancelled.follow_ups)
    offer = await _offer_of(sessionmaker, clinic)

    replies = await say(sessionmaker, "telegram", stranger_chat, button=f"wl:{offer.id}")

    assert replies[0]["text"].startswith("Sorry, that offer is not for you")
    assert (await _offer_of(sessionmaker, clinic)).status == "open"
    mine = await say(sessionmaker, "telegram", gita_chat, button=f"wl:{offer.id}")
    assert mine[0]["text"].startswith("It's yours!")


async def test_staff_manage_the_waitlist_and_bad_requests_are_refused(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    day = local_day(clinic, tuesday_at(10))
    first = await join_over_api(client, headers, clinic, clinic.patients["siti"], day)
    again = await join_over_api(client, headers, clinic, clinic.patients["siti"], day)
    assert again["id"] == first["id"] and first["status"] == "waiting"

    listed = await client.get("/api/v1/waitlist", params={"branch_id": clinic.branch.id}, headers=headers)
    assert [e["id"] for e in (await listed.json())["entries"]] == [first["id"]]

    other = await build_clinic(db)
    base = {"patient_id": clinic.patients["siti"].id, "examination_id": clinic.examinations["GP"].id}
    refusals = [
        ({**base, "branch_id": other.branch.id, "day": day.isoformat()}, headers, 404),
        ({**base, "branch_id": clinic.branch.id, "day": "2020-01-01"}, headers, 422),
        ({**base, "branch_id": clinic.branch.id, "day": day.isoformat(), "patient_id": 2**31 - 1}, headers, 404),
        ({**base, "branch_id": clinic.branch.id, "day": day.isoformat(), "extra": 1}, headers, 422),
        ({**base, "branch_id": clinic.branch.id, "day": "tuesday"}, headers, 422),
        (
            {
                **base,
                "branch_id": clinic.branch.id,
                "day": day.isoformat(),
                "examination_id": other.examinations["GP"].id,
            },
            headers,
            404,
        ),
        ({**base, "branch_id": clinic.branch.id, "day": day.isoformat()}, await sign_in("doctor"), 403),
    ]
    for body, who, status in refusals:
        response = await client.post("/api/v1/waitlist", json=body, headers=who)
        assert response.status == status, (body, await response.text())
        assert "error" in await response.json()

    left = await client.delete(f"/api/v1/waitlist/{first['id']}", headers=headers)
    assert left.status == 200 and (await left.json())["status"] == "cancelled"
    elsewhere = await sign_in("staff", branch_id=other.branch.id)
    assert (await client.delete(f"/api/v1/waitlist/{first['id']}", headers=elsewhere)).status == 404


async def test_two_desks_putting_the_same_patient_on_the_list_at_once_make_one_entry(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    patient, _ = await chatting_patient(db, "Intan")
    day = local_day(clinic, tuesday_at(10))

    async def join() -> int:
        async with sessionmaker() as desk, desk.begin():
            entry = await waitlist.join(
                desk, actor=DESK, patient_id=patient.id, branch_id=clinic.branch.id,
                examination_id=clinic.examinations["DENTAL"].id, day=day,
            )  # fmt: skip
            return entry.id

    ids = await asyncio.gather(*(join() for _ in range(4)))

    async with sessionmaker() as check:
        rows = (await check.execute(select(WaitlistEntry).where(WaitlistEntry.patient_id == patient.id))).scalars()
        assert [row.id for row in rows] == [ids[0]] and len(set(ids)) == 1


async def test_a_visit_taken_from_a_waitlist_offer_gets_its_confirmation_link(
    client: Client, sign_in: SignIn, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    headers = await sign_in("staff")
    start = tuesday_at(11)
    ayu, ayu_chat = await chatting_patient(db, "Ayu")
    await join_over_api(client, headers, clinic, ayu, local_day(clinic, start))
    visit = await book_over_api(client, headers, clinic, clinic.patients["siti"], start)
    cancelled = await client.post(
        f"/api/v1/sessions/{visit['id']}/cancel", json={"reason_code": "patient_request"}, headers=headers
    )
    assert cancelled.status == 200, await cancelled.text()
    [offer] = await sent_to(sessionmaker, ayu_chat, "waitlist_offer")

    replies = await say(
        sessionmaker, "telegram", ayu_chat, button=offer["buttons"][0]["data"], links=("s3cret", "https://klinik.test")
    )

    assert [r["kind"] for r in replies] == ["reply", "confirmation"]  # "It's yours!", then the link
    assert replies[0]["text"].startswith("It's yours!")
    assert "https://klinik.test/c/" in replies[1]["text"]
