"""The waiting room as it stands: the day's queue board, a patient's place, and the public tracker's view.

The ordering, positions and ETAs are :mod:`booking_core.domain.queue`; this module loads the day's entries and asks
it. What changes the queue (check-in, moves, "call next", the calling order) is
:mod:`booking_core.services.queue_actions`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import queue as queries
from booking_core.db.queries.queue import QueueRow
from booking_core.db.tables import Branch
from booking_core.domain import queue as rules
from booking_core.domain.actors import Actor
from booking_core.domain.codes import BOOKING_CODE_LENGTH, normalize_code
from booking_core.domain.lifecycle import SessionStatus
from booking_core.domain.privacy import public_name, queue_privacy
from booking_core.domain.queue import Position, SortMode
from booking_core.services import settings
from booking_core.services.errors import Invalid, NotFound

__all__ = [
    "PRIVACY_SETTING",
    "SORT_SETTING",
    "Board",
    "BoardLine",
    "PublicPlace",
    "QueueTicket",
    "aware",
    "board",
    "board_of",
    "default_sort",
    "find_for_tracker",
    "load_branch",
    "local_day",
    "position_for_phone_and_code",
    "position_for_session",
    "public_place",
    "queue_entry",
    "visible_branch",
]

#: Clinic setting that holds the board's default sort mode ("arrival" unless staff choose otherwise).
SORT_SETTING = "queue_sort"
DEFAULT_SORT = SortMode.ARRIVAL
#: The clinic setting that says what the public queue tracker shows (see booking_core.domain.privacy).
PRIVACY_SETTING = "queue_privacy"


@dataclass(frozen=True)
class QueueTicket:
    """A patient's place in the queue: safe for the patient to see (no names but the doctor's).

    ``position`` is 1 for the next patient to be called and 0 while with the doctor; ``ahead`` counts the
    waiting patients before this one; ``eta`` is when the doctor is expected to call them.
    """

    entry_id: int
    session_id: int
    branch_id: int
    day: date
    token: str
    status: SessionStatus
    position: int
    ahead: int
    eta: datetime
    wait_min: int
    doctor_id: int
    doctor_name: str


@dataclass(frozen=True)
class BoardLine:
    """One row of the staff queue board."""

    ticket: QueueTicket
    patient_name: str
    booking_code: str
    scheduled_start: datetime
    arrived_at: datetime
    started_at: datetime | None
    rank: int
    examination: str = ""  # the visit's examinations, "General consultation, Vaccination"


@dataclass(frozen=True)
class Board:
    """The day's queue of one branch (waiting and open sessions only).

    Positions and ETAs follow ``sort``; the lines are listed in ``view`` order when one was asked for (a way of
    looking at the board, e.g. newest first), else in ``sort`` order.
    """

    branch_id: int
    day: date
    sort: SortMode
    now: datetime
    lines: list[BoardLine]
    view: SortMode | None = None


async def default_sort(db: Db) -> SortMode:
    """The clinic's board sort (setting ``queue_sort``); an unknown stored value falls back to arrival order."""
    value = await settings.get(db, SORT_SETTING)
    try:
        return SortMode(value) if value else DEFAULT_SORT
    except ValueError:
        return DEFAULT_SORT


async def board(
    db: Db,
    branch_id: int,
    *,
    actor: Actor,
    day: date | None = None,
    sort: SortMode | None = None,
    now: datetime | None = None,
    view: SortMode | None = None,
) -> Board:
    """The branch's queue for ``day`` (default: today in the branch's time zone) in ``sort`` order.

    Sort defaults to the clinic setting. Positions and ETAs are per doctor, against ``now``. A doctor sees only
    their own patients. ``view`` lists the lines in another order without changing positions (the staff board's
    "newest first"); each line carries its examinations.
    """
    now = aware(now, "now")
    branch = await visible_branch(db, branch_id, actor)
    day = day or local_day(now, branch)
    sort = SortMode(sort) if sort else await default_sort(db)
    rows = await queries.day_rows(db, branch.id, day, active_only=True)
    exams = await queries.examination_names(db, [row.session.id for row in rows])
    return board_of(branch.id, day, sort, now, rows, actor, view=SortMode(view) if view else None, exams=exams)


async def position_for_session(db: Db, session_id: int, *, now: datetime) -> QueueTicket | None:
    """The patient's place in today's queue; ``None`` when the visit is not (or no longer) in a queue."""
    now = aware(now, "now")
    entry = await queries.entry_for_session(db, session_id)
    if entry is None:
        return None
    rows = await queries.day_rows(db, entry.branch_id, entry.day, active_only=True)
    sort = await default_sort(db)
    places = rules.positions([queue_entry(row) for row in rows], sort, now)
    row = next((r for r in rows if r.entry.id == entry.id), None)
    if row is None or entry.id not in places:
        return None
    return _ticket(row, places[entry.id])


async def position_for_phone_and_code(
    db: Db, phone_e164: str, booking_code: str, *, now: datetime
) -> QueueTicket | None:
    """A patient's place by phone and booking code; ``None`` alike for an unknown phone and a wrong code."""
    code = normalize_code(booking_code, length=BOOKING_CODE_LENGTH)
    if code is None or not phone_e164:
        return None
    session_id = await queries.session_id_by_code_and_phone(db, code, phone_e164)
    if session_id is None:
        return None
    return await position_for_session(db, session_id, now=now)


@dataclass(frozen=True)
class PublicPlace:
    """A visit as the public queue tracker shows it to whoever has the phone number and the booking code.

    ``state``: ``waiting`` (in the queue: token, position, ETA), ``with_doctor``, ``not_checked_in`` (booked,
    not yet at the desk), ``finished`` or ``cancelled``. Fields the clinic's privacy setting hides are None
    (``patient`` is "" when names are hidden).
    """

    state: Literal["waiting", "with_doctor", "not_checked_in", "finished", "cancelled"]
    booking_code: str
    branch_name: str
    tz: str
    starts_at: datetime
    patient: str
    token: str | None = None
    position: int | None = None
    ahead: int | None = None
    eta: datetime | None = None
    wait_min: int | None = None
    doctor_name: str | None = None


async def find_for_tracker(db: Db, phone_e164: str | None, booking_code: str) -> int | None:
    """The session behind a phone number and a booking code, or None alike for a wrong number and a wrong code."""
    code = normalize_code(booking_code, length=BOOKING_CODE_LENGTH)
    if code is None or not phone_e164:
        return None
    return await queries.session_id_by_code_and_phone(db, code, phone_e164)


async def public_place(
    db: Db, session_id: int, booking_code: str, *, now: datetime | None = None
) -> PublicPlace | None:
    """What the tracker shows for a session (None unless ``booking_code`` is still that session's code).

    Masked by the clinic setting ``queue_privacy`` (name: hidden, initial, masked or first name; doctor; ETA).
    """
    now = aware(now, "now")
    visit = await queries.tracked_visit(db, session_id)
    if visit is None or visit.session.booking_code != booking_code:
        return None
    privacy = queue_privacy(await settings.get(db, PRIVACY_SETTING))
    session = visit.session
    status = SessionStatus(session.status)
    place = PublicPlace(
        state="not_checked_in",
        booking_code=session.booking_code,
        branch_name=visit.branch.name,
        tz=visit.branch.tz,
        starts_at=session.starts_at,
        patient=public_name(visit.patient_name, privacy.show_name),
        doctor_name=visit.doctor_name if privacy.show_doctor else None,
    )
    if status is SessionStatus.CANCELLED:
        return replace(place, state="cancelled")
    if status is SessionStatus.COMPLETED:
        return replace(place, state="finished")
    ticket = await position_for_session(db, session.id, now=now)
    if ticket is None:
        return replace(place, state="with_doctor") if status is SessionStatus.OPEN else place
    if ticket.status is SessionStatus.OPEN:
        return replace(place, state="with_doctor", token=ticket.token)
    return replace(
        place,
        state="waiting",
        token=ticket.token,
        position=ticket.position,
        ahead=ticket.ahead,
        eta=ticket.eta if privacy.show_eta else None,
        wait_min=ticket.wait_min if privacy.show_eta else None,
    )


# --- shared with queue_actions ---------------------------------------------------------------------------


def aware(value: datetime | None, what: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{what} must include a time zone offset, e.g. 2026-12-01T09:00:00+07:00.")
    return value.astimezone(UTC)


def local_day(instant: datetime, branch: Branch) -> date:
    return instant.astimezone(ZoneInfo(branch.tz)).date()


async def load_branch(db: Db, branch_id: int) -> Branch:
    branch = await queries.load_branch(db, branch_id)
    if branch is None:
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    return branch


async def visible_branch(db: Db, branch_id: int, actor: Actor) -> Branch:
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    return await load_branch(db, branch_id)


def queue_entry(row: QueueRow) -> rules.QueueEntry:
    session = row.session
    minutes = max(1, round((session.ends_at - session.starts_at) / timedelta(minutes=1)))
    return rules.QueueEntry(
        entry_id=row.entry.id,
        session_id=session.id,
        doctor_id=session.doctor_id,
        token=row.entry.token,
        arrived_at=row.entry.arrived_at,
        scheduled_start=session.starts_at,
        duration_min=minutes,
        status=SessionStatus(session.status),
        rank=row.entry.rank,
        started_at=session.started_at,
    )


def _ticket(row: QueueRow, place: Position) -> QueueTicket:
    return QueueTicket(
        entry_id=row.entry.id,
        session_id=row.session.id,
        branch_id=row.entry.branch_id,
        day=row.entry.day,
        token=row.entry.token,
        status=SessionStatus(row.session.status),
        position=place.position,
        ahead=place.ahead,
        eta=place.eta,
        wait_min=place.wait_min,
        doctor_id=row.session.doctor_id,
        doctor_name=row.doctor_name,
    )


def board_of(
    branch_id: int,
    day: date,
    sort: SortMode,
    now: datetime,
    rows: list[QueueRow],
    actor: Actor | None,
    *,
    view: SortMode | None = None,
    exams: dict[int, str] | None = None,
) -> Board:
    entries = [queue_entry(row) for row in rows]
    places = rules.positions(entries, sort, now)
    by_id = {row.entry.id: row for row in rows}
    lines = []
    for entry in rules.order(entries, view or sort):
        row = by_id[entry.entry_id]
        if actor is not None and actor.role == "doctor" and row.session.doctor_id != actor.doctor_id:
            continue  # a doctor's board shows their own patients
        lines.append(
            BoardLine(
                ticket=_ticket(row, places[entry.entry_id]),
                patient_name=row.patient_name,
                booking_code=row.session.booking_code,
                scheduled_start=row.session.starts_at,
                arrived_at=row.entry.arrived_at,
                started_at=row.session.started_at,
                rank=row.entry.rank,
                examination=(exams or {}).get(row.session.id, ""),
            )
        )
    return Board(branch_id=branch_id, day=day, sort=sort, now=now, lines=lines, view=view)
