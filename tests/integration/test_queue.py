"""The waiting room against the real database: tokens, the board, reordering, calling patients in, a patient's place.

API tests run in a branch whose local time is about midday right now (a fixed-offset zone picked per run), so the
real clock always falls on the same local day as the morning's visits. Service tests pass ``now`` themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.queries.clinic import put_setting
from booking_core.db.tables import AuditEntry, QueueCounter, QueueEntry, Session, Staff
from booking_core.domain.actors import Actor
from booking_core.domain.lifecycle import NOT_ACCEPTED_MESSAGE
from booking_core.services import queue, queue_actions
from booking_core.services.errors import Conflict
from booking_core.services.queue_actions import CheckInOutcome
from devtools.builders import Clinic, add_patient, build_clinic, insert_session, unique

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]

DESK = Actor(kind="staff", name="Reception", role="staff")
DAY = date(2030, 3, 5)  # a Tuesday, for service tests that set the clock themselves


def midday_zone() -> str:
    """A fixed-offset zone where it is now between 12:00 and 12:59 (POSIX signs: Etc/GMT-7 is UTC+7)."""
    offset = 12 - datetime.now(UTC).hour
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def local(clinic: Clinic, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(clinic.branch.tz)).astimezone(UTC)


def today(clinic: Clinic) -> date:
    return datetime.now(ZoneInfo(clinic.branch.tz)).date()


async def midday_clinic(db: AsyncSession, *, token_prefix: str = "A") -> Clinic:
    return await build_clinic(db, tz=midday_zone(), token_prefix=token_prefix)


async def visit(
    db: AsyncSession,
    clinic: Clinic,
    starts_at: datetime,
    *,
    doctor: str = "andi",
    name: str | None = None,
    accepted: bool = True,
    status: str = "waiting",
) -> Session:
    """A booked GP visit for a new patient (dr. Andi sees patients in Consultation 1, drg. Sari in 2)."""
    patient = await add_patient(db, name or unique("Pasien"), commit=False)
    key = f"patient-{patient.id}"
    clinic.patients[key] = patient
    room = "consult-1" if doctor == "andi" else "consult-2"
    session = await insert_session(
        db, clinic, starts_at=starts_at, doctor=doctor, room=room, patient=key, status=status, commit=False
    )
    session.accepted = accepted
    await db.commit()
    return session


async def check_in_over_api(
    client: Client, headers: dict[str, str], session: Session, arrived_at: datetime | None = None
) -> dict[str, Any]:
    body: dict[str, object] = {"session_id": session.id}
    if arrived_at is not None:
        body["arrived_at"] = arrived_at.isoformat()
    response = await client.post("/api/v1/queue/check-in", json=body, headers=headers)
    assert response.status == 201, await response.text()
    ticket: dict[str, Any] = await response.json()
    return ticket


async def board_over_api(
    client: Client, headers: dict[str, str], clinic: Clinic, sort: str | None = None
) -> dict[str, Any]:
    params = {"branch_id": str(clinic.branch.id)} | ({"sort": sort} if sort else {})
    response = await client.get("/api/v1/queue", params=params, headers=headers)
    assert response.status == 200, await response.text()
    board: dict[str, Any] = await response.json()
    return board


def tokens(board: dict[str, Any]) -> list[str]:
    return [entry["token"] for entry in board["entries"]]


# --- check-in ---------------------------------------------------------------------------------------------


async def test_thirty_patients_checking_in_at_once_get_a_001_to_a_030(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    visits = []
    for doctor in ("andi", "sari"):
        for slot in range(15):
            starts = local(clinic, DAY, 8) + timedelta(minutes=30 * slot)
            visits.append(await visit(db, clinic, starts, doctor=doctor))
    arrival = local(clinic, DAY, 7, 45)

    async def arrive(session: Session) -> queue.QueueTicket:
        async with sessionmaker() as own, own.begin():
            return await queue_actions.check_in(own, session.id, actor=DESK, now=arrival)

    tickets = await asyncio.gather(*(arrive(session) for session in visits))

    assert sorted(t.token for t in tickets) == [f"A-{n:03d}" for n in range(1, 31)]
    counter = await db.get(QueueCounter, (clinic.branch.id, DAY))
    assert counter is not None and counter.last_number == 30
    ranks = (await db.execute(select(QueueEntry.rank).where(QueueEntry.branch_id == clinic.branch.id))).scalars()
    assert len(set(ranks)) == 30


async def test_two_desks_checking_in_the_same_patient_at_once_make_one_entry(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    session = await visit(db, clinic, local(clinic, DAY, 9))

    async def arrive() -> str:
        async with sessionmaker() as own, own.begin():
            try:
                return (await queue_actions.check_in(own, session.id, actor=DESK, now=local(clinic, DAY, 8))).token
            except Conflict as exc:
                return exc.code

    outcomes = await asyncio.gather(arrive(), arrive(), arrive())

    assert sorted(outcomes) == ["A-001", "already_checked_in", "already_checked_in"]
    counter = await db.get(QueueCounter, (clinic.branch.id, DAY))
    assert counter is not None and counter.last_number == 1


async def test_checking_in_twice_gives_back_the_existing_token(
    client: Client, db: AsyncSession, sign_in: SignIn
) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, local(clinic, today(clinic), 9))
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    ticket = await check_in_over_api(client, headers, session)
    again = await client.post("/api/v1/queue/check-in", json={"session_id": session.id}, headers=headers)

    assert (ticket["token"], ticket["position"], ticket["ahead"], ticket["status"]) == ("A-001", 1, 0, "waiting")
    assert again.status == 409
    error = (await again.json())["error"]
    assert error["code"] == "already_checked_in" and error["details"]["token"] == "A-001"
    audited = await db.execute(
        select(AuditEntry.data).where(AuditEntry.action == "queue.checked_in", AuditEntry.entity_id == session.id)
    )
    assert [row["token"] for row in audited.scalars()] == ["A-001"]


async def test_the_api_refuses_to_check_in_a_visit_nobody_accepted_as_the_scanner_does(
    client: Client, db: AsyncSession, sign_in: SignIn
) -> None:
    clinic = await midday_clinic(db)
    nine = local(clinic, today(clinic), 9)
    session = await visit(db, clinic, nine, accepted=False)
    headers = await sign_in("staff", branch_id=clinic.branch.id)

    refused = await client.post("/api/v1/queue/check-in", json={"session_id": session.id}, headers=headers)
    scanned = await queue_actions.check_in_by_booking_code(db, session.booking_code, clinic.branch.id, actor=DESK)

    assert refused.status == 409
    assert (await refused.json())["error"] == {"code": "not_accepted", "message": NOT_ACCEPTED_MESSAGE}
    assert scanned.outcome is queue_actions.CheckInOutcome.NOT_ACCEPTED
    session_id = session.id
    await db.rollback()
    stored = await db.get(Session, session_id, populate_existing=True)
    assert stored is not None and not stored.accepted and stored.confirmed_at is None
    assert await queue.position_for_session(db, session_id, now=nine) is None


async def test_only_todays_waiting_visits_can_check_in(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    clinic = await midday_clinic(db)
    cancelled = await visit(db, clinic, local(clinic, today(clinic), 9), status="cancelled")
    finished = await visit(db, clinic, local(clinic, today(clinic), 10), status="completed")
    tomorrow = await visit(db, clinic, local(clinic, today(clinic) + timedelta(days=1), 9))
    headers = await sign_in("admin")

    codes = []
    for session in (cancelled, finished, tomorrow):
        response = await client.post("/api/v1/queue/check-in", json={"session_id": session.id}, headers=headers)
        assert response.status == 409
        codes.append((await response.json())["error"]["code"])

    assert codes == ["cancelled", "not_waiting", "wrong_day"]
    assert (await db.execute(select(QueueEntry).where(QueueEntry.branch_id == clinic.branch.id))).first() is None


async def test_a_day_rollover_starts_the_tokens_again_at_001(db: AsyncSession) -> None:
    clinic = await build_clinic(db, token_prefix="B")
    monday = [await visit(db, clinic, local(clinic, DAY, 9 + i)) for i in range(2)]
    tuesday = await visit(db, clinic, local(clinic, DAY + timedelta(days=1), 9))

    first = [await queue_actions.check_in(db, s.id, actor=DESK, now=local(clinic, DAY, 8, 30)) for s in monday]
    next_day = await queue_actions.check_in(
        db, tuesday.id, actor=DESK, now=local(clinic, DAY + timedelta(days=1), 8, 30)
    )
    await db.commit()

    assert [t.token for t in first] == ["B-001", "B-002"]
    assert (next_day.token, next_day.day) == ("B-001", DAY + timedelta(days=1))


async def test_the_scanner_gets_a_distinct_outcome_for_every_case(db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    elsewhere = await build_clinic(db)
    now = local(clinic, DAY, 8, 30)
    accepted = await visit(db, clinic, local(clinic, DAY, 9))
    unconfirmed = await visit(db, clinic, local(clinic, DAY, 10), accepted=False)
    cancelled = await visit(db, clinic, local(clinic, DAY, 11), status="cancelled")
    next_week = await visit(db, clinic, local(clinic, DAY + timedelta(days=7), 9))
    other = await visit(db, elsewhere, local(elsewhere, DAY, 9))
    branch = clinic.branch.id

    async def scan(code: str, *, accept: bool = False) -> CheckInOutcome:
        result = await queue_actions.check_in_by_booking_code(db, code, branch, actor=DESK, accept=accept, now=now)
        return result.outcome

    assert await scan(accepted.booking_code.lower()) is CheckInOutcome.CHECKED_IN
    assert await scan(accepted.booking_code) is CheckInOutcome.ALREADY_CHECKED_IN
    assert await scan(unconfirmed.booking_code) is CheckInOutcome.NOT_ACCEPTED
    assert await scan(unconfirmed.booking_code, accept=True) is CheckInOutcome.CHECKED_IN
    assert await scan(cancelled.booking_code) is CheckInOutcome.CANCELLED
    assert await scan(next_week.booking_code) is CheckInOutcome.WRONG_DAY
    assert await scan(other.booking_code) is CheckInOutcome.OTHER_BRANCH
    assert await scan("ZZZZ-ZZZZ") is CheckInOutcome.UNKNOWN
    assert await scan("not a code") is CheckInOutcome.UNKNOWN
    repeat = await queue_actions.check_in_by_booking_code(db, accepted.booking_code, branch, actor=DESK, now=now)
    assert repeat.ticket is not None and repeat.ticket.token == "A-001"
    await db.commit()


# --- the board --------------------------------------------------------------------------------------------


async def three_arrivals(
    client: Client, db: AsyncSession, headers: dict[str, str], clinic: Clinic
) -> dict[str, dict[str, Any]]:
    """Booked 08:00 (a), 09:00 (b), 10:00 (c); arrived b 07:50, c 08:00, a 08:05; checked in c, a, b."""
    day = today(clinic)
    booked = {
        name: await visit(db, clinic, local(clinic, day, hour), name=name)
        for name, hour in (("Ani", 8), ("Bayu", 9), ("Citra", 10))
    }
    arrivals = {"Citra": (8, 0), "Ani": (8, 5), "Bayu": (7, 50)}
    return {
        name: await check_in_over_api(client, headers, booked[name], local(clinic, day, *arrivals[name]))
        for name in ("Citra", "Ani", "Bayu")
    }


async def test_the_board_sorts_by_arrival_time_newest_or_hand(
    client: Client, db: AsyncSession, sign_in: SignIn
) -> None:
    clinic = await midday_clinic(db)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    tickets = await three_arrivals(client, db, headers, clinic)
    token = {name: t["token"] for name, t in tickets.items()}  # Citra A-001, Ani A-002, Bayu A-003

    boards = {sort: await board_over_api(client, headers, clinic, sort) for sort in ("arrival", "time", "newest")}
    boards["manual"] = await board_over_api(client, headers, clinic, "manual")
    default = await board_over_api(client, headers, clinic)

    names = {sort: [entry["patient_name"] for entry in b["entries"]] for sort, b in boards.items()}
    assert names == {
        "arrival": ["Bayu", "Citra", "Ani"],
        "time": ["Ani", "Bayu", "Citra"],
        "newest": ["Ani", "Citra", "Bayu"],
        "manual": ["Citra", "Ani", "Bayu"],
    }
    assert default["sort"] == "arrival" and tokens(default) == tokens(boards["arrival"])
    first = boards["arrival"]["entries"][0]
    assert (first["token"], first["position"], first["ahead"], first["wait_min"]) == (token["Bayu"], 1, 0, 0)
    last = boards["arrival"]["entries"][2]
    assert (last["position"], last["ahead"], last["wait_min"], last["doctor_name"]) == (3, 2, 60, "dr. Andi Wijaya")


async def test_the_clinic_setting_chooses_the_default_sort(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    clinic = await midday_clinic(db)
    headers = await sign_in("owner")
    await three_arrivals(client, db, headers, clinic)
    await put_setting(db, queue.SORT_SETTING, "time")
    await db.commit()
    try:
        board = await board_over_api(client, headers, clinic)
    finally:
        await put_setting(db, queue.SORT_SETTING, "arrival")
        await db.commit()

    assert board["sort"] == "time"
    assert [e["patient_name"] for e in board["entries"]] == ["Ani", "Bayu", "Citra"]


async def test_moving_patients_by_hand_persists_and_shows_in_manual_order(
    client: Client, db: AsyncSession, sign_in: SignIn
) -> None:
    clinic = await midday_clinic(db)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    tickets = await three_arrivals(client, db, headers, clinic)  # manual order: Citra, Ani, Bayu
    entry = {name: t["entry_id"] for name, t in tickets.items()}

    moved = await client.post(f"/api/v1/queue/{entry['Bayu']}/move", json={"before": entry["Citra"]}, headers=headers)
    assert moved.status == 200, await moved.text()
    assert [e["patient_name"] for e in (await moved.json())["entries"]] == ["Bayu", "Citra", "Ani"]
    moved = await client.post(f"/api/v1/queue/{entry['Citra']}/move", json={"after": entry["Ani"]}, headers=headers)
    assert moved.status == 200, await moved.text()

    board = await board_over_api(client, headers, clinic, "manual")
    assert [e["patient_name"] for e in board["entries"]] == ["Bayu", "Ani", "Citra"]
    assert [e["position"] for e in board["entries"]] == [1, 2, 3]
    stored = await db.execute(
        select(QueueEntry.id).where(QueueEntry.branch_id == clinic.branch.id).order_by(QueueEntry.rank)
    )
    assert list(stored.scalars()) == [entry["Bayu"], entry["Ani"], entry["Citra"]]
    audited = await db.execute(select(AuditEntry.entity_id).where(AuditEntry.action == "queue.moved"))
    assert {entry["Bayu"], entry["Citra"]} <= set(audited.scalars())


async def test_a_move_must_stay_inside_one_days_queue(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    clinic = await midday_clinic(db)
    headers = await sign_in("owner")
    tickets = await three_arrivals(client, db, headers, clinic)
    other_clinic = await midday_clinic(db)
    stranger = await check_in_over_api(
        client, headers, await visit(db, other_clinic, local(other_clinic, today(other_clinic), 9))
    )
    tomorrow = await visit(db, clinic, local(clinic, DAY, 9))
    later = await queue_actions.check_in(db, tomorrow.id, actor=DESK, now=local(clinic, DAY, 8))
    await db.commit()
    ani = tickets["Ani"]["entry_id"]

    results = []
    for body in ({"before": stranger["entry_id"]}, {"after": later.entry_id}, {"before": ani, "after": ani}, {}):
        response = await client.post(f"/api/v1/queue/{ani}/move", json=body, headers=headers)
        results.append((response.status, (await response.json())["error"]["code"]))

    assert results == [
        (422, "not_in_this_queue"),
        (422, "not_in_this_queue"),
        (422, "invalid_body"),
        (422, "invalid_body"),
    ]
    board = await board_over_api(client, headers, clinic, "manual")
    assert [e["patient_name"] for e in board["entries"]] == ["Citra", "Ani", "Bayu"]


# --- calling patients in and ETAs -------------------------------------------------------------------------


async def test_calling_the_next_patient_opens_their_visit(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    clinic = await midday_clinic(db)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    tickets = await three_arrivals(client, db, headers, clinic)  # by arrival: Bayu, Citra, Ani
    andi, sari = clinic.doctors["andi"].id, clinic.doctors["sari"].id
    call = {"branch_id": clinic.branch.id, "doctor_id": andi}

    called = await client.post("/api/v1/queue/call-next", json=call, headers=headers)
    busy = await client.post("/api/v1/queue/call-next", json=call, headers=headers)
    empty = await client.post("/api/v1/queue/call-next", json=call | {"doctor_id": sari}, headers=headers)

    assert called.status == 200, await called.text()
    line = await called.json()
    assert (line["patient_name"], line["status"], line["position"]) == ("Bayu", "open", 0)
    session = await db.get(Session, tickets["Bayu"]["session_id"], populate_existing=True)
    assert session is not None and session.status == "open" and session.started_at is not None
    assert (busy.status, (await busy.json())["error"]["code"]) == (409, "doctor_busy")
    assert (empty.status, (await empty.json())["error"]["code"]) == (409, "nobody_waiting")
    board = await board_over_api(client, headers, clinic)
    assert [(e["patient_name"], e["position"]) for e in board["entries"]] == [
        ("Bayu", 0),
        ("Citra", 1),
        ("Ani", 2),
    ]
    opened = await db.execute(
        select(AuditEntry.data).where(AuditEntry.action == "session.opened", AuditEntry.entity_id == session.id)
    )
    assert [d["to"] for d in opened.scalars()] == ["open"]


async def test_two_calls_for_the_same_doctor_at_once_open_one_visit(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clinic = await build_clinic(db)
    for hour in (9, 10, 11):
        session = await visit(db, clinic, local(clinic, DAY, hour))
        await queue_actions.check_in(db, session.id, actor=DESK, now=local(clinic, DAY, 8, hour))
    await db.commit()

    async def call() -> str:
        async with sessionmaker() as own, own.begin():
            try:
                line = await queue_actions.call_next(
                    own, clinic.branch.id, clinic.doctors["andi"].id, actor=DESK, now=local(clinic, DAY, 9)
                )
            except Conflict as exc:
                return exc.code
            return line.ticket.token

    outcomes = await asyncio.gather(call(), call(), call())

    assert sorted(outcomes) == ["A-001", "doctor_busy", "doctor_busy"]
    opened = await db.execute(select(Session.id).where(Session.branch_id == clinic.branch.id, Session.status == "open"))
    assert len(opened.all()) == 1


async def test_eta_counts_the_rest_of_an_open_visit_and_each_doctor_separately(db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    andi_visits = [await visit(db, clinic, local(clinic, DAY, 9, m), doctor="andi") for m in (0, 30)]
    andi_visits.append(await visit(db, clinic, local(clinic, DAY, 10), doctor="andi"))
    sari_visits = [await visit(db, clinic, local(clinic, DAY, 9, m), doctor="sari") for m in (0, 30)]
    for minute, session in zip((40, 45, 50, 41, 46), [*andi_visits, *sari_visits], strict=True):
        await queue_actions.check_in(db, session.id, actor=DESK, now=local(clinic, DAY, 8, minute))
    opened = await queue_actions.call_next(
        db, clinic.branch.id, clinic.doctors["andi"].id, actor=DESK, now=local(clinic, DAY, 9)
    )
    await db.commit()

    now = local(clinic, DAY, 9, 15)  # dr. Andi is half way through a 30-minute visit
    board = await queue.board(db, clinic.branch.id, actor=DESK, day=DAY, now=now)
    place = {line.ticket.session_id: line.ticket for line in board.lines}

    assert opened.ticket.session_id == andi_visits[0].id
    s1, s2, s3 = (place[s.id] for s in andi_visits)
    s4, s5 = (place[s.id] for s in sari_visits)
    assert (s1.position, s1.eta) == (0, local(clinic, DAY, 9))
    assert (s2.position, s2.ahead, s2.wait_min, s2.eta) == (1, 0, 15, local(clinic, DAY, 9, 30))
    assert (s3.position, s3.ahead, s3.wait_min, s3.eta) == (2, 1, 45, local(clinic, DAY, 10))
    assert (s4.position, s4.wait_min, s4.eta) == (1, 0, now)
    assert (s5.position, s5.ahead, s5.wait_min) == (2, 1, 30)
    mine = await queue.position_for_session(db, andi_visits[2].id, now=now)
    assert mine is not None and (mine.wait_min, mine.doctor_name) == (45, "dr. Andi Wijaya")


# --- a patient's place ------------------------------------------------------------------------------------


async def test_a_patient_finds_their_place_by_phone_and_booking_code(db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    first = await visit(db, clinic, local(clinic, DAY, 9))
    mine = await visit(db, clinic, local(clinic, DAY, 9, 30))
    not_here_yet = await visit(db, clinic, local(clinic, DAY, 10))
    for session in (first, mine):
        await queue_actions.check_in(db, session.id, actor=DESK, now=local(clinic, DAY, 8, 30))
    await db.commit()
    now = local(clinic, DAY, 8, 45)
    phone = clinic.patients[f"patient-{mine.patient_id}"].phone_e164
    assert phone is not None

    found = await queue.position_for_phone_and_code(db, phone, mine.booking_code.lower(), now=now)
    wrong_phone = await queue.position_for_phone_and_code(db, "+6281100000000", mine.booking_code, now=now)
    wrong_code = await queue.position_for_phone_and_code(db, phone, first.booking_code, now=now)
    gibberish = await queue.position_for_phone_and_code(db, phone, "???", now=now)

    # One patient ahead (30 min) would call them at 09:15, but they are booked at 09:30: expected then, 45 min.
    assert found is not None and (found.token, found.position, found.ahead, found.wait_min) == ("A-002", 2, 1, 45)
    assert found.eta == mine.starts_at
    assert wrong_phone is None and wrong_code is None and gibberish is None
    assert await queue.position_for_session(db, not_here_yet.id, now=now) is None


# --- who may do what --------------------------------------------------------------------------------------


async def test_another_branchs_queue_is_not_found(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    mine = await midday_clinic(db)
    theirs = await midday_clinic(db)
    owner = await sign_in("owner")
    their_ticket = await check_in_over_api(client, owner, await visit(db, theirs, local(theirs, today(theirs), 9)))
    their_waiting = await visit(db, theirs, local(theirs, today(theirs), 10))
    headers = await sign_in("staff", branch_id=mine.branch.id)

    responses = [
        await client.get("/api/v1/queue", params={"branch_id": str(theirs.branch.id)}, headers=headers),
        await client.post("/api/v1/queue/check-in", json={"session_id": their_waiting.id}, headers=headers),
        await client.post(
            f"/api/v1/queue/{their_ticket['entry_id']}/move", json={"after": their_ticket["entry_id"]}, headers=headers
        ),
        await client.post(
            "/api/v1/queue/call-next",
            json={"branch_id": theirs.branch.id, "doctor_id": theirs.doctors["andi"].id},
            headers=headers,
        ),
    ]

    assert [r.status for r in responses] == [404, 404, 404, 404]
    assert (await db.execute(select(QueueEntry).where(QueueEntry.session_id == their_waiting.id))).first() is None
    own_board = await client.get("/api/v1/queue", headers=headers)
    assert own_board.status == 200 and (await own_board.json())["branch_id"] == mine.branch.id


async def test_a_doctor_sees_their_own_patients_but_cannot_reorder(
    client: Client, db: AsyncSession, sign_in: SignIn
) -> None:
    clinic = await midday_clinic(db)
    desk = await sign_in("staff", branch_id=clinic.branch.id)
    day = today(clinic)
    andi_ticket = await check_in_over_api(client, desk, await visit(db, clinic, local(clinic, day, 9), name="Ani"))
    await check_in_over_api(client, desk, await visit(db, clinic, local(clinic, day, 9), doctor="sari", name="Sinta"))
    name = unique("dr. Andi")
    db.add(Staff(name=name, role="doctor", branch_id=clinic.branch.id, doctor_id=clinic.doctors["andi"].id))
    await db.commit()
    doctor = await sign_in("doctor", branch_id=clinic.branch.id, name=name)

    board = await board_over_api(client, doctor, clinic)
    move = await client.post(
        f"/api/v1/queue/{andi_ticket['entry_id']}/move", json={"after": andi_ticket["entry_id"]}, headers=doctor
    )
    check_in = await client.post("/api/v1/queue/check-in", json={"session_id": 1}, headers=doctor)
    for_sari = await client.post(
        "/api/v1/queue/call-next",
        json={"branch_id": clinic.branch.id, "doctor_id": clinic.doctors["sari"].id},
        headers=doctor,
    )
    own = await client.post(
        "/api/v1/queue/call-next",
        json={"branch_id": clinic.branch.id, "doctor_id": clinic.doctors["andi"].id},
        headers=doctor,
    )

    assert [e["patient_name"] for e in board["entries"]] == ["Ani"]
    assert (move.status, check_in.status, for_sari.status) == (403, 403, 403)
    assert own.status == 200 and (await own.json())["patient_name"] == "Ani"


async def test_bad_queue_requests_are_refused_with_a_reason(client: Client, db: AsyncSession, sign_in: SignIn) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, local(clinic, today(clinic), 9))
    headers = await sign_in("owner")

    no_branch = await client.get("/api/v1/queue", headers=headers)
    bad_sort = await client.get("/api/v1/queue", params={"branch_id": "1", "sort": "alphabet"}, headers=headers)
    naive = await client.post(
        "/api/v1/queue/check-in", json={"session_id": session.id, "arrived_at": "2030-03-05T08:00:00"}, headers=headers
    )
    future = await client.post(
        "/api/v1/queue/check-in",
        json={"session_id": session.id, "arrived_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat()},
        headers=headers,
    )
    unknown = await client.post("/api/v1/queue/check-in", json={"session_id": 2**31 - 1}, headers=headers)

    assert [(r.status, (await r.json())["error"]["code"]) for r in (no_branch, bad_sort, naive, future, unknown)] == [
        (422, "branch_required"),
        (422, "invalid_query"),
        (422, "invalid_body"),
        (422, "arrival_in_future"),
        (404, "not_found"),
    ]
    assert (await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))).first() is None
