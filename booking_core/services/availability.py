"""Live availability: load the rows for a period, turn them into the pure engine's query, ask it.

``find_slots`` answers "when can this examination be booked", ``explain_time`` answers "why not at 10:30".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import availability as queries
from booking_core.db.tables import Branch, Examination
from booking_core.domain import availability as engine
from booking_core.services.errors import Invalid, NotFound

MAX_RANGE = timedelta(days=62)


@dataclass(frozen=True)
class Context:
    """A ready query plus the rows it came from (names for display, rules for booking).

    ``examination`` is the visit's first examination; ``examinations`` all of them, in the order asked.
    """

    query: engine.AvailabilityQuery
    branch: Branch
    examination: Examination
    doctor_names: dict[int, str]
    examinations: tuple[Examination, ...] = ()


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{what} must include a time zone offset, e.g. 2026-12-01T09:00:00+07:00.")
    return value.astimezone(UTC)


async def context(
    db: Db,
    *,
    branch_id: int,
    examination_id: int,
    start: datetime,
    end: datetime,
    doctor_id: int | None = None,
    now: datetime | None = None,
) -> Context:
    """Load and assemble an availability query for one examination; 404 for unknown ids, 422 for a bad period."""
    return await visit_context(
        db, branch_id=branch_id, examination_ids=[examination_id], start=start, end=end, doctor_id=doctor_id, now=now
    )


async def visit_context(
    db: Db,
    *,
    branch_id: int,
    examination_ids: Sequence[int],
    start: datetime,
    end: datetime,
    doctor_id: int | None = None,
    now: datetime | None = None,
) -> Context:
    """The availability query of one visit of these examinations (done in this order, one after the other).

    The visit is one slot as long as all of them, held to every one's rules (see ``engine.visit_rules``): only
    doctors who do all of them, only rooms of the kind they need, inside every one's windows. 404 for unknown ids
    (or a named doctor who does not do them all), 422 for a bad period or examinations that cannot share a visit.
    """
    start, end = _aware(start, "start"), _aware(end, "end")
    now = _aware(now, "now") if now is not None else datetime.now(UTC)
    if end <= start:
        raise Invalid("invalid_range", "The end of the period must be after its start.")
    if end - start > MAX_RANGE:
        raise Invalid("range_too_long", f"Ask for at most {MAX_RANGE.days} days at a time.")
    if not examination_ids:
        raise Invalid("no_examinations", "Choose at least one examination.")
    branch = await queries.load_branch(db, branch_id)
    if branch is None or not branch.active:
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    examinations = []
    for examination_id in examination_ids:
        examination = await queries.load_examination(db, examination_id)
        if examination is None or not examination.active:
            raise NotFound("not_found", f"There is no examination {examination_id}.")
        examinations.append(examination)
    zone = ZoneInfo(branch.tz)
    # Busy claims and blackouts around the period matter through buffers; a day either side is plenty.
    buffers = max(e.buffer_before_min + e.buffer_after_min for e in examinations)
    margin = timedelta(minutes=buffers) + timedelta(days=1)
    rows = await queries.load(
        db,
        branch=branch,
        examinations=examinations,
        doctor_ids=None if doctor_id is None else [doctor_id],
        first_day=(start.astimezone(zone) - timedelta(days=1)).date(),
        last_day=(end.astimezone(zone) + timedelta(days=1)).date(),
        start=start - margin,
        end=end + margin,
        now=now,
    )
    rules = _visit_rules(examinations, rows)  # first: two kinds of room say more than "no doctor does both"
    if doctor_id is not None and not rows.doctors:
        names = " and ".join(dict.fromkeys(e.name for e in examinations))
        raise NotFound("not_found", f"Doctor {doctor_id} does not perform {names}.")
    if len(examinations) > 1 and not rows.doctors:
        listed = ", ".join(dict.fromkeys(e.name for e in examinations))
        raise Invalid(
            "no_doctor_for_visit", f"No one doctor does every examination of this visit ({listed}); book them apart."
        )
    query = _query(branch, rules, rows, start=start, end=end, now=now)
    return Context(query, branch, examinations[0], {d.id: d.name for d in rows.doctors}, tuple(examinations))


def _query(
    branch: Branch,
    rules: engine.ExaminationRules,
    rows: queries.AvailabilityRows,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> engine.AvailabilityQuery:
    """The engine's question from the rows read: the branch's week, the doctors, rooms, claims and blackouts."""
    return engine.AvailabilityQuery(
        branch=engine.BranchHours(
            branch_id=branch.id,
            tz=branch.tz,
            weekly=tuple(engine.WeeklyWindow(h.weekday, h.opens, h.closes) for h in rows.hours),
        ),
        examination=rules,
        doctors=_schedules(rows),
        rooms=tuple(engine.Room(r.id, r.kind) for r in rows.rooms),
        busy=tuple(_busy(*row) for row in rows.busy),
        blackouts=tuple(
            engine.Blackout(
                start=b.starts_at,
                end=b.ends_at,
                scope=b.scope,  # type: ignore[arg-type]
                target_id={"branch": b.branch_id, "doctor": b.doctor_id, "room": b.room_id}[b.scope],
                reason=b.reason,
            )
            for b in rows.blackouts
        ),
        start=start,
        end=end,
        now=now,
        step_min=branch.slot_step_min,
    )


def _visit_rules(examinations: Sequence[Examination], rows: queries.AvailabilityRows) -> engine.ExaminationRules:
    """Every examination's rules, then the visit's (one examination: its own); 422 when they cannot share a visit."""
    parts = [
        engine.ExaminationRules(
            examination_id=e.id,
            duration_min=e.duration_min,
            branch_ids=frozenset(rows.offered_at),  # branches offering every one of them
            windows=tuple(
                engine.WeeklyWindow(w.weekday, w.starts, w.ends) for w in rows.windows if w.examination_id == e.id
            ),
            min_notice_min=e.min_notice_min,
            horizon_days=e.horizon_days,
            buffer_before_min=e.buffer_before_min,
            buffer_after_min=e.buffer_after_min,
            room_kind=e.room_kind,
        )
        for e in examinations
    ]
    try:
        return engine.visit_rules(parts)
    except engine.IncompatibleVisit as clash:
        names = {e.id: e.name for e in examinations}
        clashing = [names[i] for i in dict.fromkeys(clash.examination_ids)]
        if clash.code == "different_rooms":
            needs = ", ".join(f"{e.name} a {e.room_kind} room" for e in examinations if e.room_kind is not None)
            message = f"One visit cannot take two kinds of room ({needs}); book them as separate visits."
        else:
            message = f"{' and '.join(clashing)} are never offered at the same hours; book them as separate visits."
        raise Invalid(
            "examinations_incompatible", message, details={"examination_ids": list(clash.examination_ids)}
        ) from clash


def _schedules(rows: queries.AvailabilityRows) -> tuple[engine.DoctorSchedule, ...]:
    weekly: dict[int, list[engine.WeeklyWindow]] = defaultdict(list)
    overrides: dict[int, list[engine.DatedWindow]] = defaultdict(list)
    applications: dict[int, list[engine.DatedWindow]] = defaultdict(list)
    for doctor_id, weekday, starts, ends in rows.weekly:
        weekly[doctor_id].append(engine.WeeklyWindow(weekday, starts, ends))
    for doctor_id, day, starts, ends in rows.overrides:
        overrides[doctor_id].append(engine.DatedWindow(day, starts, ends))
    for doctor_id, day, starts, ends in rows.applications:
        applications[doctor_id].append(engine.DatedWindow(day, starts, ends))
    return tuple(
        engine.DoctorSchedule(
            doctor_id=d.id,
            weekly=tuple(weekly[d.id]),
            overrides=tuple(overrides[d.id]),
            applications=tuple(applications[d.id]),
        )
        for d in rows.doctors
    )


def _busy(doctor_id: int, room_id: int, during: object, kind: str) -> engine.Busy:
    lower, upper = queries.range_bounds(during)
    return engine.Busy(start=lower, end=upper, doctor_id=doctor_id, room_id=room_id,
                       label="held" if kind == "hold" else "booked")  # fmt: skip


async def find_slots(
    db: Db,
    *,
    branch_id: int,
    examination_id: int,
    start: datetime,
    end: datetime,
    doctor_id: int | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> tuple[Context, list[engine.Slot]]:
    """Free slots in ``[start, end)``; with ``limit`` only the first few (stops early)."""
    ctx = await context(
        db, branch_id=branch_id, examination_id=examination_id, start=start, end=end, doctor_id=doctor_id, now=now
    )
    if limit is not None:
        return ctx, engine.first_free(ctx.query, limit)
    return ctx, engine.free_slots(ctx.query)


async def explain_time(
    db: Db,
    *,
    branch_id: int,
    examination_id: int,
    at: datetime,
    doctor_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Context, list[engine.Reason]]:
    """Which layer makes ``at`` unavailable (or that it is available, with which doctor and room)."""
    at = _aware(at, "at")
    ctx = await context(
        db,
        branch_id=branch_id,
        examination_id=examination_id,
        start=at - timedelta(days=1),
        end=at + timedelta(days=1),
        doctor_id=doctor_id,
        now=now,
    )
    return ctx, engine.explain(ctx.query, at, doctor_id)
