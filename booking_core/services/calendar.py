"""The staff calendar: one branch's day, per doctor or per room, with visits, holds and blackouts laid out on rows.

Free cells are where a visit could start by the clinic's hours, attendance, claims and blackouts; booking one
still goes through :func:`booking_core.services.booking.book`, which applies every rule and lets the database
refuse a double booking.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import calendar as queries
from booking_core.db.tables import BlackoutBlock, Branch
from booking_core.domain import calendar as layout
from booking_core.domain.actors import Actor
from booking_core.domain.calendar import Grid, Span
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
    """A doctor or a room: when they are there (``working``), which rows are free, and what is drawn on it."""

    kind: Literal["doctor", "room"]
    id: int
    name: str
    subtitle: str
    working: list[Span]
    free: frozenset[int]
    blocks: list[Block] = field(default_factory=list)


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
    shown_doctor_ids = set(attending) | {v.session.doctor_id for v in visits}
    doctors = await queries.doctors(db, sorted(shown_doctor_ids))
    rooms = await queries.rooms(db, branch.id)
    doctor_names = {d.id: d.name for d in [*all_doctors, *doctors]}
    room_names = {r.id: r.name for r in rooms}
    claims = await queries.claims(
        db, doctor_ids=[d.id for d in doctors], room_ids=[r.id for r in rooms], start=bounds.start,
        end=bounds.end, now=now,
    )  # fmt: skip
    of_sessions = await queries.session_claim_ids(db, [c.id for c in claims])
    blackouts = await queries.blackouts_between(db, branch.id, [d.id for d in doctors], bounds.start, bounds.end)
    grid = layout.day_grid(
        on, branch.tz, opening, branch.slot_step_min, [Span(v.session.starts_at, v.session.ends_at) for v in visits]
    )

    def visit_block(row: queries.SessionRow, *, detail_extra: str = "") -> Block:
        s = row.session
        detail = ", ".join(row.examinations) + detail_extra
        return Block("session", s.id, s.starts_at, s.ends_at, row.patient_name, detail, s.status, s.accepted,
                     s.booking_code)  # fmt: skip

    def blackout_block(b: BlackoutBlock) -> Block:
        return Block("blackout", b.id, b.starts_at, b.ends_at, b.reason, f"Blackout: {_scope_label(b)}")

    def claim_block(c: queries.ClaimRow) -> Block | None:
        if c.id in of_sessions and c.branch_id == branch.id:
            return None  # drawn as the visit itself
        if c.id in of_sessions:
            return Block("elsewhere", c.id, c.start, c.end, "At another branch")
        return Block(
            "hold", c.id, c.start, c.end, "Held for a chat booking", "Kept a few minutes while the patient confirms"
        )

    def _scope_label(b: BlackoutBlock) -> str:
        return _blackout_view(b, doctor_names, room_names).target

    columns: list[Column] = []
    branch_blackouts = [b for b in blackouts if b.scope == "branch" and b.branch_id == branch.id]
    if view == "doctors":
        for doctor in doctors:
            mine = [b for b in blackouts if b.scope == "doctor" and b.doctor_id == doctor.id]
            claimed = [c for c in claims if c.doctor_id == doctor.id]
            working = [
                Span(max(w.start, o.start), min(w.end, o.end))
                for w in attending.get(doctor.id, [])
                for o in opening
                if w.meets(o.start, o.end)
            ]
            blocked = [Span(c.start, c.end) for c in claimed] + [
                Span(b.starts_at, b.ends_at) for b in [*branch_blackouts, *mine]
            ]
            blocks = [visit_block(v) for v in visits if v.session.doctor_id == doctor.id]
            blocks += [blackout_block(b) for b in [*branch_blackouts, *mine]]
            blocks += [found for c in claimed if (found := claim_block(c)) is not None]
            columns.append(
                Column("doctor", doctor.id, doctor.name, doctor.specialty, working,
                       layout.free_rows(grid, working, blocked, now), _placed(grid, blocks))
            )  # fmt: skip
    else:
        for room in rooms:
            mine = [b for b in blackouts if b.scope == "room" and b.room_id == room.id]
            claimed = [c for c in claims if c.room_id == room.id]
            blocked = [Span(c.start, c.end) for c in claimed] + [
                Span(b.starts_at, b.ends_at) for b in [*branch_blackouts, *mine]
            ]
            blocks = [
                visit_block(v, detail_extra=f" · {doctor_names.get(v.session.doctor_id, '')}")
                for v in visits
                if v.session.room_id == room.id
            ]
            blocks += [blackout_block(b) for b in [*branch_blackouts, *mine]]
            blocks += [found for c in claimed if c.branch_id == branch.id and (found := claim_block(c)) is not None]
            columns.append(
                Column("room", room.id, room.name, room.kind, opening,
                       layout.free_rows(grid, opening, blocked, now), _placed(grid, blocks))
            )  # fmt: skip
    return CalendarDay(
        branch=branch,
        day=on,
        view=view,
        now=now,
        opening=opening,
        grid=grid,
        columns=columns,
        blackouts=[_blackout_view(b, doctor_names, room_names) for b in blackouts],
        doctors=[(d.id, d.name) for d in all_doctors],
        rooms=[(r.id, r.name, r.kind) for r in rooms],
    )
