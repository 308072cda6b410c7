"""The staff calendar: one branch's day, per doctor or per room, with visits, holds and blackouts laid out on rows.

A cell is free when the availability engine would book a visit starting there - the rules the API, the staff pages
and the chatbot book by (branch hours, attendance, examination windows, minimum notice, horizon, claims, blackouts,
room kinds) - for at least one examination of that doctor, or of that room's kind; every other cell carries the
engine's reasons why not. Booking a cell still goes through :func:`booking_core.services.booking.book`, which checks
again and lets the database refuse a double booking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import calendar as queries
from booking_core.db.tables import BlackoutBlock, Branch, Doctor, Room
from booking_core.domain import availability as engine
from booking_core.domain import calendar as layout
from booking_core.domain.actors import Actor
from booking_core.domain.calendar import Grid, Span
from booking_core.services import availability
from booking_core.services.errors import Invalid, NotFound

__all__ = ["VIEWS", "BlackoutView", "Block", "CalendarDay", "Column", "day"]

View = Literal["doctors", "rooms"]
VIEWS: tuple[View, ...] = ("doctors", "rooms")
BlockKind = Literal["session", "blackout", "hold", "elsewhere"]


@dataclass(frozen=True)
class Block:
    """Something drawn in a column: a visit, a blackout (hatched), a chat hold or the doctor's visit elsewhere."""

    kind: BlockKind
    id: int
    start: datetime
    end: datetime
    title: str
    detail: str = ""
    status: str = ""
    accepted: bool = False
    booking_code: str = ""
    row: int = 0
    rows: int = 1
    lane: int = 0
    lanes: int = 1


@dataclass(frozen=True)
class Column:
    """A doctor or a room: when they are there (``working``), what can start on which row, and what is drawn on it.

    ``bookable``: row → the examinations (ids) that can start there in this column; ``why_not``: row → why nothing
    can (the engine's reasons, for the cell's hover text).
    """

    kind: Literal["doctor", "room"]
    id: int
    name: str
    subtitle: str
    working: list[Span]
    bookable: dict[int, tuple[int, ...]] = field(default_factory=dict)
    why_not: dict[int, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    @property
    def free(self) -> frozenset[int]:
        return frozenset(self.bookable)


@dataclass(frozen=True)
class BlackoutView:
    id: int
    scope: str
    target: str
    start: datetime
    end: datetime
    reason: str
    branch_id: int


@dataclass(frozen=True)
class CalendarDay:
    branch: Branch
    day: date
    view: View
    now: datetime
    opening: list[Span]
    grid: Grid
    columns: list[Column]
    blackouts: list[BlackoutView]
    doctors: list[tuple[int, str]]
    rooms: list[tuple[int, str, str]]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.branch.tz)


def _blackout_view(block: BlackoutBlock, doctor_names: dict[int, str], room_names: dict[int, str]) -> BlackoutView:
    if block.scope == "doctor" and block.doctor_id is not None:
        target = doctor_names.get(block.doctor_id, "a doctor")
    elif block.scope == "room" and block.room_id is not None:
        target = room_names.get(block.room_id, "a room")
    else:
        target = "Whole branch"
    return BlackoutView(block.id, block.scope, target, block.starts_at, block.ends_at, block.reason, block.branch_id)


def _placed(grid: Grid, blocks: list[Block]) -> list[Block]:
    shown = []
    for block in blocks:
        where = grid.place(block.start, block.end)
        if where is not None:
            shown.append((block, where))
    lanes = layout.lanes([((b.kind, b.id), Span(b.start, b.end)) for b, _ in shown])
    return [
        replace(b, row=row, rows=rows, lane=lanes[(b.kind, b.id)][0], lanes=lanes[(b.kind, b.id)][1])
        for b, (row, rows) in shown
    ]


@dataclass(frozen=True)
class _DayRows:
    """What the calendar draws of one branch's day, as loaded (before it is laid out in columns)."""

    opening: list[Span]
    attending: dict[int, list[Span]]
    visits: list[queries.SessionRow]
    doctors: list[Doctor]
    rooms: list[Room]
    all_doctors: list[Doctor]
    claims: list[queries.ClaimRow]
    of_sessions: set[int]
    blackouts: list[BlackoutBlock]
    grid: Grid

    @property
    def doctor_names(self) -> dict[int, str]:
        return {d.id: d.name for d in [*self.all_doctors, *self.doctors]}

    @property
    def room_names(self) -> dict[int, str]:
        return {r.id: r.name for r in self.rooms}


async def _load(db: Db, branch: Branch, on: date, now: datetime) -> _DayRows:
    bounds = layout.day_bounds(on, branch.tz)
    opening = layout.wall_spans(on, branch.tz, await queries.branch_hours(db, branch.id, on.weekday()))
    weekly, overrides, applications = await queries.attendance(db, branch.id, on)
    attending: dict[int, list[Span]] = {}
    for doctor_id in sorted({row.doctor_id for row in [*weekly, *overrides, *applications]}):
        windows = layout.attendance_on(
            on,
            [(r.weekday, r.starts, r.ends) for r in weekly if r.doctor_id == doctor_id],
            [(r.starts, r.ends) for r in overrides if r.doctor_id == doctor_id],
            [(r.starts, r.ends) for r in applications if r.doctor_id == doctor_id],
        )
        spans = layout.wall_spans(on, branch.tz, windows)
        if spans:
            attending[doctor_id] = spans
    visits = await queries.sessions_between(db, branch.id, bounds.start, bounds.end)
    all_doctors = await queries.doctors(db)
    doctors = await queries.doctors(db, sorted(set(attending) | {v.session.doctor_id for v in visits}))
    rooms = await queries.rooms(db, branch.id)
    claims = await queries.claims(
        db, doctor_ids=[d.id for d in doctors], room_ids=[r.id for r in rooms], start=bounds.start,
        end=bounds.end, now=now,
    )  # fmt: skip
    return _DayRows(
        opening=opening,
        attending=attending,
        visits=visits,
        doctors=doctors,
        rooms=rooms,
        all_doctors=all_doctors,
        claims=claims,
        of_sessions=await queries.session_claim_ids(db, [c.id for c in claims]),
        blackouts=await queries.blackouts_between(db, branch.id, [d.id for d in doctors], bounds.start, bounds.end),
        grid=layout.day_grid(
            on, branch.tz, opening, branch.slot_step_min, [Span(v.session.starts_at, v.session.ends_at) for v in visits]
        ),
    )


# --- what can be booked where (the availability engine's answer, cell by cell)

#: Reasons that say nothing about a cell (it lies on the grid and inside the day by construction).
_QUIET = frozenset({"off_grid", "outside_range"})


@dataclass(frozen=True)
class _Offer:
    """One examination offered at the branch, with its availability query for the day."""

    id: int
    name: str
    room_kind: str | None
    query: engine.AvailabilityQuery
    doctor_ids: frozenset[int]

    @cached_property
    def slots(self) -> list[engine.Slot]:
        """The day's free slots with every doctor (worked out once for all the doctors' columns)."""
        return engine.free_slots(self.query)


async def _offers(db: Db, branch: Branch, on: date, now: datetime) -> list[_Offer]:
    bounds = layout.day_bounds(on, branch.tz)
    offers = []
    for exam in await queries.offered_examinations(db, branch.id):
        ctx = await availability.context(
            db, branch_id=branch.id, examination_id=exam.id, start=bounds.start, end=bounds.end, now=now
        )
        offers.append(_Offer(exam.id, exam.name, exam.room_kind, ctx.query, frozenset(ctx.doctor_names)))
    return offers


def _bookable(
    grid: Grid, offers: Sequence[_Offer], *, doctor_id: int | None = None, room: Room | None = None
) -> tuple[dict[int, tuple[int, ...]], dict[int, str]]:
    """Row → examinations that can start there (with this doctor, or in this room), and row → why none can."""
    row_of = {start: index for index, start in enumerate(grid.rows)}
    if doctor_id is not None:
        mine = [o for o in offers if doctor_id in o.doctor_ids]
        if not mine:
            return {}, dict.fromkeys(row_of.values(), "Not bookable: no examination of this doctor is offered here")
    else:
        assert room is not None
        mine = [o for o in offers if o.room_kind in (None, room.kind)]
        if not mine:
            return {}, dict.fromkeys(row_of.values(), f"Not bookable: no examination here uses a {room.kind} room")
    found: dict[int, list[int]] = {}
    for offer in mine:
        in_room = None if room is None else replace(offer.query, rooms=(engine.Room(room.id, room.kind),))
        for slot in offer.slots if in_room is None else engine.free_slots(in_room):
            row = row_of.get(slot.start)
            if row is not None and (doctor_id is None or slot.doctor_id == doctor_id):
                found.setdefault(row, []).append(offer.id)
    blocked = [row for row in range(len(grid.rows)) if row not in found]
    starts = [grid.rows[row] for row in blocked]
    said: dict[int, list[tuple[str, tuple[str, ...]]]] = {row: [] for row in blocked}
    for offer in mine:
        room_id = None if room is None else room.id
        for row, reasons in zip(blocked, engine.explain_many(offer.query, starts, doctor_id, room_id), strict=True):
            messages = tuple(dict.fromkeys(r.message for r in reasons if r.code not in _QUIET))
            said[row].append((offer.name, messages))
    bookable = {row: tuple(dict.fromkeys(ids)) for row, ids in found.items()}
    return bookable, {row: _why_not(reasons) for row, reasons in said.items()}


def _why_not(per_examination: list[tuple[str, tuple[str, ...]]]) -> str:
    """The hover text of a cell nothing can start in: what stops every examination alike (the doctor is away, the
    branch is closed, a blackout), else each examination's own reasons (notice, windows, a longer visit)."""
    said = [(name, messages) for name, messages in per_examination if messages]
    if not said:
        return "Not bookable"
    common = [m for m in said[0][1] if all(m in messages for _, messages in said[1:])]
    if common:
        return "Not bookable: " + "; ".join(common)
    return "Not bookable: " + " · ".join(f"{name}: {'; '.join(messages)}" for name, messages in said)


# --- the day


async def day(
    db: Db, *, actor: Actor, branch_id: int, on: date, view: str = "doctors", now: datetime | None = None
) -> CalendarDay:
    """The branch's day ``on`` (its local date) by doctor or by room; another branch's is "not found"."""
    now = now or datetime.now(UTC)
    if view not in VIEWS:
        raise Invalid("invalid_view", "Show the calendar by doctor or by room.")
    branch = await queries.get_branch(db, branch_id)
    if branch is None or not branch.active or not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    rows = await _load(db, branch, on, now)
    offers = await _offers(db, branch, on, now)
    columns = _doctor_columns(branch, rows, offers) if view == "doctors" else _room_columns(branch, rows, offers)
    doctor_names, room_names = rows.doctor_names, rows.room_names
    return CalendarDay(
        branch=branch,
        day=on,
        view=view,
        now=now,
        opening=rows.opening,
        grid=rows.grid,
        columns=columns,
        blackouts=[_blackout_view(b, doctor_names, room_names) for b in rows.blackouts],
        doctors=[(d.id, d.name) for d in rows.all_doctors],
        rooms=[(r.id, r.name, r.kind) for r in rows.rooms],
    )


class _Drawn:
    """How the day's visits, blackouts and claims become blocks of a column."""

    def __init__(self, branch: Branch, rows: _DayRows) -> None:
        self.branch, self.rows = branch, rows
        self.doctor_names, self.room_names = rows.doctor_names, rows.room_names
        self.branch_blackouts = [b for b in rows.blackouts if b.scope == "branch" and b.branch_id == branch.id]

    def visit(self, row: queries.SessionRow, *, detail_extra: str = "") -> Block:
        s = row.session
        detail = ", ".join(row.examinations) + detail_extra
        return Block("session", s.id, s.starts_at, s.ends_at, row.patient_name, detail, s.status, s.accepted,
                     s.booking_code)  # fmt: skip

    def blackout(self, b: BlackoutBlock) -> Block:
        target = _blackout_view(b, self.doctor_names, self.room_names).target
        return Block("blackout", b.id, b.starts_at, b.ends_at, b.reason, f"Blackout: {target}")

    def claim(self, c: queries.ClaimRow) -> Block | None:
        if c.id in self.rows.of_sessions and c.branch_id == self.branch.id:
            return None  # drawn as the visit itself
        if c.id in self.rows.of_sessions:
            return Block("elsewhere", c.id, c.start, c.end, "At another branch")
        return Block(
            "hold", c.id, c.start, c.end, "Held for a chat booking", "Kept a few minutes while the patient confirms"
        )


def _doctor_columns(branch: Branch, rows: _DayRows, offers: Sequence[_Offer]) -> list[Column]:
    drawn = _Drawn(branch, rows)
    columns = []
    for doctor in rows.doctors:
        mine = [b for b in rows.blackouts if b.scope == "doctor" and b.doctor_id == doctor.id]
        working = [
            Span(max(w.start, o.start), min(w.end, o.end))
            for w in rows.attending.get(doctor.id, [])
            for o in rows.opening
            if w.meets(o.start, o.end)
        ]
        blocks = [drawn.visit(v) for v in rows.visits if v.session.doctor_id == doctor.id]
        blocks += [drawn.blackout(b) for b in [*drawn.branch_blackouts, *mine]]
        blocks += [found for c in rows.claims if c.doctor_id == doctor.id and (found := drawn.claim(c)) is not None]
        bookable, why_not = _bookable(rows.grid, offers, doctor_id=doctor.id)
        columns.append(
            Column("doctor", doctor.id, doctor.name, doctor.specialty, working, bookable, why_not,
                   _placed(rows.grid, blocks))
        )  # fmt: skip
    return columns


def _room_columns(branch: Branch, rows: _DayRows, offers: Sequence[_Offer]) -> list[Column]:
    drawn = _Drawn(branch, rows)
    columns = []
    for room in rows.rooms:
        mine = [b for b in rows.blackouts if b.scope == "room" and b.room_id == room.id]
        blocks = [
            drawn.visit(v, detail_extra=f" · {drawn.doctor_names.get(v.session.doctor_id, '')}")
            for v in rows.visits
            if v.session.room_id == room.id
        ]
        blocks += [drawn.blackout(b) for b in [*drawn.branch_blackouts, *mine]]
        blocks += [
            found
            for c in rows.claims
            if c.room_id == room.id and c.branch_id == branch.id and (found := drawn.claim(c)) is not None
        ]
        bookable, why_not = _bookable(rows.grid, offers, room=room)
        columns.append(
            Column("room", room.id, room.name, room.kind, rows.opening, bookable, why_not, _placed(rows.grid, blocks))
        )
    return columns
