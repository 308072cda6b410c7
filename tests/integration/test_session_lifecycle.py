"""A visit's lifecycle through the API: waiting → open → completed, or cancelled; and deleting one for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.queries.clinic import put_setting
from booking_core.db.tables import (
    AuditEntry,
    Invoice,
    InvoiceLine,
    Occupancy,
    QueueEntry,
    Session,
    SessionLine,
    Staff,
)
from booking_core.domain.actors import SYSTEM
from booking_core.domain.lifecycle import NOT_ACCEPTED_MESSAGE, START_DAYS_SETTING
from booking_core.services import invoicing, lifecycle
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday, today_at, unique
from tests.integration.queue_pages import setting_kept

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]

ACTIONS: dict[str, dict[str, Any] | None] = {
    "start": None,
    "complete": None,
    "cancel": {"reason_code": "patient_request", "note": "Rescheduling after Lebaran"},
}
# (status before, action) -> status after; anything missing is refused.
ALLOWED = {
    ("waiting", "start"): "open",
    ("waiting", "cancel"): "cancelled",
    ("open", "complete"): "completed",
    ("open", "cancel"): "cancelled",
}
TABLE = [(before, action) for before in ("waiting", "open", "completed", "cancelled") for action in ACTIONS]


async def _act(client: Client, session_id: int, action: str, headers: dict[str, str]) -> Any:
    body = ACTIONS[action]
    return await client.post(f"/api/v1/sessions/{session_id}/{action}", json=body, headers=headers)


async def _audit(db: AsyncSession, session_id: int) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.entity == "session", AuditEntry.entity_id == session_id)
    return list((await db.execute(query.order_by(AuditEntry.id))).scalars())


async def waiting_on_a_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Return once another connection of this test database is blocked on a row lock (polls pg_stat_activity)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with sessionmaker() as watcher:
        for _ in range(2000):
            if await watcher.scalar(query):
                return
            await watcher.rollback()  # a fresh snapshot of pg_stat_activity on the next read
            await asyncio.sleep(0.005)
    raise AssertionError("the second transaction never waited on the first one's lock")


async def _fresh(sessionmaker: async_sessionmaker[AsyncSession], session_id: int) -> Session | None:
    async with sessionmaker() as fresh:
        return await fresh.get(Session, session_id)


async def _occupancy_active(sessionmaker: async_sessionmaker[AsyncSession], occupancy_id: int | None) -> bool | None:
    async with sessionmaker() as fresh:
        return await fresh.scalar(select(Occupancy.active).where(Occupancy.id == occupancy_id))


@pytest.mark.parametrize(("before", "action"), TABLE, ids=[f"{b}-{a}" for b, a in TABLE])
async def test_the_lifecycle_allows_only_its_transitions(
    client: Client,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clinic: Clinic,
    sign_in: SignIn,
    before: str,
    action: str,
) -> None:
    # An accepted visit of today: only the transition table decides (acceptance and the day are tested below).
    session = await insert_session(db, clinic, starts_at=today_at(10), status=before, accepted=True)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    response = await _act(client, session.id, action, headers)
    after = ALLOWED.get((before, action))
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None
    if after is None:
        assert response.status == 409, await response.text()
        assert (await response.json())["error"]["code"] == "invalid_transition"
        assert stored.status == before
        assert await _audit(db, session.id) == []
        return
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == after == stored.status
    stamp = {"open": stored.started_at, "completed": stored.ended_at, "cancelled": stored.cancelled_at}[after]
    assert stamp is not None and abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)
    # Leaving the active statuses frees the doctor's and the room's time; opening keeps it.
    assert await _occupancy_active(sessionmaker, session.occupancy_id) is (after == "open")
    [entry] = await _audit(db, session.id)
    assert entry.action == {"open": "session.started", "completed": "session.completed",
                            "cancelled": "session.cancelled"}[after]  # fmt: skip
    assert (entry.data["from"], entry.data["to"], entry.actor_kind) == (before, after, "staff")


async def test_a_cancelled_slot_can_be_booked_again(
    client: Client, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    monday_10 = next_weekday(0, hour=10)
    session = await insert_session(db, clinic, starts_at=monday_10)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    response = await _act(client, session.id, "cancel", headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["cancel_reason"], body["cancel_note"]) == ("patient_request", "Rescheduling after Lebaran")
    # The same doctor and room at the same time: the exclusion constraint would refuse it if the claim were active.
    again = await insert_session(db, clinic, starts_at=monday_10)
    assert again.id != session.id


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"reason_code": "bored"}, "invalid_reason"),
        ({"reason_code": "other"}, "invalid_reason"),  # "other" says nothing by itself: a note is required
        ({"reason_code": "other", "note": "   "}, "invalid_reason"),
        ({"reason_code": "no_show", "note": "x" * 501}, "invalid_reason"),
        ({"note": "no reason"}, "invalid_body"),
        ({}, "invalid_body"),
    ],
    ids=["unknown reason", "other without a note", "other with a blank note", "note too long", "no reason", "empty"],
)
async def test_a_cancellation_needs_a_reason_from_the_clinic_list(
    client: Client,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clinic: Clinic,
    sign_in: SignIn,
    body: dict[str, Any],
    code: str,
) -> None:
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    response = await client.post(f"/api/v1/sessions/{session.id}/cancel", json=body, headers=headers)
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["code"] == code
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and stored.status == "waiting"
    assert await _occupancy_active(sessionmaker, session.occupancy_id) is True


async def test_the_cancel_reasons_come_from_the_clinic_settings(client: Client, sign_in: SignIn) -> None:
    headers = await sign_in("doctor")
    response = await client.get("/api/v1/settings/cancel-reasons", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert "patient_request" in body["reasons"] and "no_show" in body["reasons"]
    assert body["requires_note"] == ["other"]


async def test_complete_and_cancel_at_once_exactly_one_wins(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    session = await insert_session(db, clinic, starts_at=today_at(10), status="open")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    completed, cancelled = await asyncio.gather(
        _act(client, session.id, "complete", headers), _act(client, session.id, "cancel", headers)
    )
    assert sorted([completed.status, cancelled.status]) == [200, 409]
    loser = cancelled if completed.status == 200 else completed
    assert (await loser.json())["error"]["code"] == "invalid_transition"
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None
    assert stored.status == ("completed" if completed.status == 200 else "cancelled")
    assert (stored.ended_at is None) != (stored.cancelled_at is None)
    assert len(await _audit(db, session.id)) == 1


async def test_a_cancel_queued_behind_a_completion_sees_it_and_is_refused(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    session = await insert_session(db, clinic, starts_at=today_at(10), status="open")

    async def cancel() -> None:
        async with sessionmaker() as second, second.begin():
            await lifecycle.cancel(second, session.id, actor=SYSTEM, reason_code="no_show")

    async with sessionmaker() as first, first.begin():
        await lifecycle.complete(first, session.id, actor=SYSTEM)
        queued = asyncio.create_task(cancel())
        await waiting_on_a_lock(sessionmaker)  # the cancel reads the session only after this commit
    with pytest.raises(Conflict) as refused:
        await queued
    assert refused.value.code == "invalid_transition"
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and (stored.status, stored.cancel_reason) == ("completed", None)


async def test_completing_records_the_doctor_and_manager_commission(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    gp, facial = clinic.examinations["GP"], clinic.examinations["FACIAL"]
    gp.doctor_commission_kind, gp.doctor_commission_value = "percent", Decimal("30")
    gp.manager_commission_kind, gp.manager_commission_value = "fixed", Decimal("10000")
    facial.doctor_commission_kind, facial.doctor_commission_value = "percent", Decimal("20")
    facial.manager_commission_kind, facial.manager_commission_value = "percent", Decimal("5")
    session = await insert_session(db, clinic, starts_at=today_at(10), status="open")
    db.add(SessionLine(session_id=session.id, kind="examination", examination_id=facial.id, name=facial.name,
                       unit_price=facial.price, quantity=1, taxable=True, position=1))  # fmt: skip
    await db.commit()
    owner = await sign_in("owner")
    response = await _act(client, session.id, "complete", owner)
    assert response.status == 200, await response.text()
    body = await response.json()
    # Doctor: 30 % of GP 150,000 = 45,000 + 20 % of FACIAL 350,000 = 70,000 -> 115,000.
    # Manager: fixed 10,000 per GP + 5 % of 350,000 = 17,500 -> 27,500.
    assert (body["doctor_commission"], body["manager_commission"]) == ("115000", "27500")
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and stored.doctor_commission == Decimal("115000")
    # The invoice is final: 150,000 + 350,000 + 11 % tax on 350,000 (38,500) = 538,500.
    assert (body["invoice"]["status"], body["invoice"]["patient_pays"]) == ("final", "538500")
    staff = await sign_in("staff", branch_id=clinic.branch.id)
    shown = await (await client.get(f"/api/v1/sessions/{session.id}", headers=staff)).json()
    assert shown["doctor_commission"] is None  # only owners and admins see what doctors earn


async def test_the_session_detail_shows_who_where_when_and_the_invoice(
    client: Client, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    await client.post(f"/api/v1/sessions/{session.id}/lines", headers=headers,
                      json={"consumable": {"name": "Bandage", "unit_price": "5000"}})  # fmt: skip
    response = await client.get(f"/api/v1/sessions/{session.id}", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert body["booking_code"] == session.booking_code and body["status"] == "waiting"
    assert body["patient"]["name"] == "Siti Rahmawati"
    assert (body["doctor"]["name"], body["room"]["name"]) == ("dr. Andi Wijaya", "Consultation 1")
    assert [(line["name"], line["unit_price"]) for line in body["lines"]] == [
        ("General consultation", "150000"),
        ("Bandage", "5000"),
    ]
    assert (body["invoice"]["status"], body["invoice"]["patient_pays"]) == ("draft", "155000")
    assert datetime.fromisoformat(body["starts_at"]) == session.starts_at


async def test_a_doctor_starts_and_completes_only_their_own_sessions(
    client: Client, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    own = await insert_session(db, clinic, starts_at=today_at(10), accepted=True)
    someone_elses = await insert_session(db, clinic, starts_at=today_at(11), doctor="sari", room="dental",
                                         examination="DENTAL", accepted=True)  # fmt: skip
    name = unique("dr. Andi")
    db.add(Staff(name=name, role="doctor", branch_id=clinic.branch.id, doctor_id=clinic.doctors["andi"].id))
    await db.commit()
    andi = await sign_in("doctor", branch_id=clinic.branch.id, name=name)
    assert (await _act(client, own.id, "start", andi)).status == 200
    assert (await _act(client, own.id, "complete", andi)).status == 200
    refused = await _act(client, someone_elses.id, "start", andi)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "not_your_session"
    assert (await _act(client, someone_elses.id, "cancel", andi)).status == 403  # the front desk cancels


async def test_branch_staff_get_404_for_another_branch_session(
    client: Client, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    elsewhere = await build_clinic(db)
    session = await insert_session(db, elsewhere, starts_at=next_weekday(0, hour=10))
    headers = await sign_in("admin", branch_id=clinic.branch.id)
    assert (await client.get(f"/api/v1/sessions/{session.id}", headers=headers)).status == 404
    assert (await _act(client, session.id, "start", headers)).status == 404
    assert (await client.get("/api/v1/sessions/987654321", headers=headers)).status == 404


async def test_a_visit_booked_entirely_in_the_past_is_completed_by_the_sweep(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    yesterday = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    past = await insert_session(db, clinic, starts_at=yesterday, accepted=True)  # staff entered it: accepted
    # A patient's own booking nobody accepted did not take place because its time passed: staff decide on it.
    unaccepted = await insert_session(db, clinic, starts_at=yesterday, doctor="sari", room="dental",
                                      examination="DENTAL")  # fmt: skip
    running = await insert_session(db, clinic, starts_at=datetime.now(UTC) - timedelta(minutes=10), doctor="sari",
                                   room="dental", examination="DENTAL")  # fmt: skip
    coming = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    async with sessionmaker() as sweep, sweep.begin():
        done = await lifecycle.auto_complete_past(sweep, now=datetime.now(UTC), branch_id=clinic.branch.id)
    assert done == 1
    stored = await _fresh(sessionmaker, past.id)
    assert stored is not None and stored.status == "completed"
    assert (stored.started_at, stored.ended_at) == (past.starts_at, past.ends_at)  # the booked times
    assert await _occupancy_active(sessionmaker, past.occupancy_id) is False
    for untouched in (running, coming, unaccepted):
        again = await _fresh(sessionmaker, untouched.id)
        assert again is not None and again.status == "waiting"
    async with sessionmaker() as fresh:
        invoice = (await fresh.execute(select(Invoice).where(Invoice.session_id == past.id))).scalar_one()
        assert (invoice.status, invoice.patient_pays) == ("final", Decimal("150000"))
    [entry] = await _audit(db, past.id)
    assert (entry.action, entry.actor_kind) == ("session.auto_completed", "system")
    async with sessionmaker() as sweep, sweep.begin():
        assert await lifecycle.auto_complete_past(sweep, now=datetime.now(UTC), branch_id=clinic.branch.id) == 0


# ------------------------------------------------------------------------------------------ permanent delete


async def _billed_session(db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic) -> Session:
    session = await insert_session(db, clinic, starts_at=today_at(10), status="open")
    async with sessionmaker() as work, work.begin():
        await invoicing.refresh_session_invoice(work, session.id, actor=SYSTEM)
        await lifecycle.complete(work, session.id, actor=SYSTEM)
    return session


async def test_an_owner_deletes_a_session_for_good_and_its_invoice_stays_readable(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    session = await _billed_session(db, sessionmaker, clinic)
    async with sessionmaker() as fresh:
        invoice_id = await fresh.scalar(select(Invoice.id).where(Invoice.session_id == session.id))
    owner = await sign_in("owner")
    phrase = f"DELETE {session.booking_code}"
    response = await client.delete(f"/api/v1/sessions/{session.id}", json={"confirm": phrase}, headers=owner)
    assert response.status == 200, await response.text()
    assert (await response.json())["invoice_id"] == invoice_id

    async with sessionmaker() as fresh:
        assert await fresh.get(Session, session.id) is None
        assert await fresh.scalar(select(func.count()).where(SessionLine.session_id == session.id)) == 0
        assert await fresh.get(Occupancy, session.occupancy_id) is None
        invoice = await fresh.get(Invoice, invoice_id)
        assert invoice is not None
        assert (invoice.session_id, invoice.status, invoice.patient_pays) == (None, "final", Decimal("150000"))
        assert invoice.archived_at is not None
        assert invoice.snapshot["booking_code"] == session.booking_code
        assert invoice.snapshot["patient"]["name"] == "Siti Rahmawati"
        assert invoice.snapshot["doctor"]["name"] == "dr. Andi Wijaya"
        assert invoice.snapshot["examinations"][0]["name"] == "General consultation"
        assert await fresh.scalar(select(func.count()).where(InvoiceLine.invoice_id == invoice_id)) == 1

    archive = await client.get("/api/v1/invoices/archive", headers=owner)
    assert archive.status == 200
    [shown] = [i for i in (await archive.json())["invoices"] if i["id"] == invoice_id]
    assert shown["snapshot"]["booking_code"] == session.booking_code
    assert shown["totals"]["patient_pays"] == "150000" and shown["lines"][0]["name"] == "General consultation"

    [entry] = [e for e in await _audit(db, session.id) if e.action == "session.deleted"]
    assert entry.actor_kind == "staff" and entry.actor_id is not None
    assert entry.data["snapshot"]["booking_code"] == session.booking_code
    assert entry.data["invoice_id"] == invoice_id


async def test_deleting_also_removes_the_queue_entry(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    arrived = session.starts_at - timedelta(minutes=15)
    db.add(QueueEntry(session_id=session.id, branch_id=clinic.branch.id, doctor_id=session.doctor_id,
                      day=arrived.date(), number=1, token="A-001", arrived_at=arrived, rank=1))  # fmt: skip
    await db.commit()
    owner = await sign_in("owner")
    body = {"confirm": f"DELETE {session.booking_code}"}
    assert (await client.delete(f"/api/v1/sessions/{session.id}", json=body, headers=owner)).status == 200
    async with sessionmaker() as fresh:
        assert await fresh.scalar(select(func.count()).where(QueueEntry.session_id == session.id)) == 0


@pytest.mark.parametrize(
    "body",
    [None, {}, {"confirm": "yes"}, {"confirm": "DELETE"}, {"confirm": "delete {code}"}, {"confirm": "DELETE XXXXXXXX"}],
    ids=["no body", "empty", "yes", "no code", "lower case", "another code"],
)
async def test_a_delete_without_the_exact_confirmation_is_refused_and_says_what_to_type(
    client: Client,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clinic: Clinic,
    sign_in: SignIn,
    body: dict[str, str] | None,
) -> None:
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    if body and "{code}" in body.get("confirm", ""):
        body = {"confirm": body["confirm"].format(code=session.booking_code)}
    owner = await sign_in("owner")
    response = await client.delete(f"/api/v1/sessions/{session.id}", json=body, headers=owner)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "confirmation_required"
    assert f"DELETE {session.booking_code}" in error["message"]
    assert await _fresh(sessionmaker, session.id) is not None


async def test_only_an_owner_may_delete_a_session(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    body = {"confirm": f"DELETE {session.booking_code}"}
    for role in ("admin", "staff", "doctor"):
        headers = await sign_in(role)
        response = await client.delete(f"/api/v1/sessions/{session.id}", json=body, headers=headers)
        assert response.status == 403, role
    assert await _fresh(sessionmaker, session.id) is not None
    archive = await client.get("/api/v1/invoices/archive", headers=await sign_in("staff"))
    assert archive.status == 403


async def test_an_owner_of_one_branch_gets_404_for_another_branch_session(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    elsewhere = await build_clinic(db)
    session = await insert_session(db, elsewhere, starts_at=next_weekday(0, hour=10))
    owner = await sign_in("owner", branch_id=clinic.branch.id)
    body = {"confirm": f"DELETE {session.booking_code}"}
    response = await client.delete(f"/api/v1/sessions/{session.id}", json=body, headers=owner)
    assert response.status == 404
    assert await _fresh(sessionmaker, session.id) is not None


# ------------------------------------------------------------------------------ the visit's own rules (issue 13)


async def test_an_unaccepted_visit_is_neither_started_nor_completed_until_accepted(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    session = await insert_session(db, clinic, starts_at=today_at(10))  # a patient's booking, not accepted
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    refused = await _act(client, session.id, "start", headers)
    assert refused.status == 409
    assert (await refused.json())["error"] == {"code": "not_accepted", "message": NOT_ACCEPTED_MESSAGE}
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and (stored.status, stored.started_at) == ("waiting", None)
    assert await _audit(db, session.id) == []
    # An open visit nobody accepted (started before this rule) is not completed either.
    opened = await insert_session(db, clinic, starts_at=today_at(14), status="open", accepted=False)
    refused = await _act(client, opened.id, "complete", headers)
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "not_accepted"
    await db.execute(text("UPDATE sessions SET accepted = true WHERE id = :id"), {"id": session.id})
    await db.commit()
    assert (await _act(client, session.id, "start", headers)).status == 200
    assert (await _act(client, session.id, "complete", headers)).status == 200


async def test_an_accepted_visit_two_days_away_is_not_started_before_its_day(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    in_two_days = today_at(10) + timedelta(days=2)
    session = await insert_session(db, clinic, starts_at=in_two_days, accepted=True)
    opened = await insert_session(db, clinic, starts_at=in_two_days + timedelta(hours=3), status="open")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    refused = await _act(client, session.id, "start", headers)
    assert refused.status == 409
    error = (await refused.json())["error"]
    assert error["code"] == "not_its_day" and "it can be started on its day" in error["message"]
    refused = await _act(client, opened.id, "complete", headers)
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "not_its_day"
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and stored.status == "waiting"
    # A clinic may let visits be started a few days early (setting visit_start_days_ahead).
    async with setting_kept(db, START_DAYS_SETTING):
        await put_setting(db, START_DAYS_SETTING, 2)
        await db.commit()
        assert (await _act(client, session.id, "start", headers)).status == 200


async def test_a_past_visit_is_entered_back_dated_only_explicitly_with_a_reason(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, sign_in: SignIn
) -> None:
    yesterday = today_at(10) - timedelta(days=1)
    session = await insert_session(db, clinic, starts_at=yesterday)  # never accepted, its time has passed
    coming = await insert_session(db, clinic, starts_at=today_at(10) + timedelta(days=2), doctor="sari",
                                  room="dental", examination="DENTAL")  # fmt: skip
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    url = f"/api/v1/sessions/{session.id}"
    plain = await client.post(f"{url}/start", headers=headers)
    assert plain.status == 409 and (await plain.json())["error"]["code"] == "not_accepted"
    no_reason = await client.post(f"{url}/start", json={"backdated": True, "reason": "  "}, headers=headers)
    assert no_reason.status == 422 and (await no_reason.json())["error"]["code"] == "reason_required"
    ahead = await client.post(f"/api/v1/sessions/{coming.id}/start", json={"backdated": True, "reason": "x"},
                              headers=headers)  # fmt: skip
    assert ahead.status == 409 and (await ahead.json())["error"]["code"] == "not_in_the_past"
    started = await client.post(f"{url}/start", json={"backdated": True, "reason": "From the paper day sheet"},
                                headers=headers)  # fmt: skip
    assert started.status == 200, await started.text()
    # Entering it vouches for it: it completes like any accepted visit, at the booked times when back-dated.
    completed = await client.post(f"{url}/complete", json={"backdated": True, "reason": "From the paper day sheet"},
                                  headers=headers)  # fmt: skip
    assert completed.status == 200, await completed.text()
    stored = await _fresh(sessionmaker, session.id)
    assert stored is not None and stored.status == "completed" and stored.accepted
    assert (stored.started_at, stored.ended_at) == (session.starts_at, session.ends_at)
    entries = await _audit(db, session.id)
    assert [(e.action, e.data["backdated"], e.data["reason"]) for e in entries] == [
        ("session.started", True, "From the paper day sheet"),
        ("session.completed", True, "From the paper day sheet"),
    ]
    assert entries[0].data["accepted"] is True
