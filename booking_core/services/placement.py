"""Where and when a visit goes: the clinic's rules for a start time, the doctor and room, and the next free times.

:func:`place` asks the availability engine about one start for a visit of one or more examinations - with the doctor
or room staff named held to the same rules as the ones the engine proposes - and answers the doctor, the room and the
time the visit claims (buffers included), or refuses: ``slot_taken`` (409) with the next free times when someone else
has it, ``slot_unavailable`` (422) with the reasons when the clinic does not offer it. Claiming the time is
:mod:`booking_core.services.booking`'s, where the database has the last word.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_core.db.engine import Db
from booking_core.db.queries import booking as queries
from booking_core.db.tables import Examination
from booking_core.domain import availability as engine
from booking_core.services import availability, contention
from booking_core.services.errors import Conflict, Invalid, NotFound

#: An examination as booking reads it: a row of this session, or plain values shared by concurrent bookings.
ExaminationLike = Examination | queries.ExaminationFacts

ALTERNATIVES = 5
#: Reasons that mean "someone else has it" (a conflict) rather than "the clinic does not offer it" (invalid).
TAKEN = {"booked", "no_room"}


@dataclass(frozen=True)
class Placement:
    """Where a visit goes: the doctor and room the engine (or staff) chose, and the time it claims."""

    doctor_id: int
    room_id: int
    start: datetime
    end: datetime
    claim_start: datetime
    claim_end: datetime


def _slot_json(slot: engine.Slot, names: dict[int, str]) -> dict[str, object]:
    return {
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "doctor_id": slot.doctor_id,
        "doctor_name": names.get(slot.doctor_id, ""),
        "room_id": slot.room_id,
    }


async def alternatives(
    db: Db,
    *,
    branch_id: int,
    examination_id: int,
    after: datetime,
    doctor_id: int | None,
    now: datetime,
    limit: int = ALTERNATIVES,
) -> list[dict[str, object]]:
    """The next free slots of one examination from ``after`` on (two weeks ahead at most), as JSON-ready dicts."""
    return await visit_alternatives(
        db, branch_id=branch_id, examination_ids=[examination_id], after=after, doctor_id=doctor_id, now=now,
        limit=limit,
    )  # fmt: skip


async def visit_alternatives(
    db: Db,
    *,
    branch_id: int,
    examination_ids: Sequence[int],
    after: datetime,
    doctor_id: int | None,
    now: datetime,
    limit: int = ALTERNATIVES,
) -> list[dict[str, object]]:
    """The next free slots for a visit of these examinations (every one's rules), as JSON-ready dicts."""
    ctx = await availability.visit_context(
        db,
        branch_id=branch_id,
        examination_ids=examination_ids,
        start=max(after, now),
        end=max(after, now) + timedelta(days=14),
        doctor_id=doctor_id,
        now=now,
    )
    return [_slot_json(slot, ctx.doctor_names) for slot in engine.first_free(ctx.query, limit)]


def _nearby_alternatives(
    ctx: availability.Context, *, after: datetime, now: datetime, limit: int = ALTERNATIVES
) -> list[dict[str, object]] | None:
    """The alternatives from the availability just read to check the time, if it holds enough of them, else None.

    The read covers a day either side of the time asked for, with everything that bounds a slot in it; the first
    free slots inside it are the first free slots of the longer period :func:`alternatives` reads.
    """
    begin = max(after, now)
    if begin >= ctx.query.end:
        return None
    slots = engine.first_free(dataclasses.replace(ctx.query, start=begin), limit)
    return [_slot_json(slot, ctx.doctor_names) for slot in slots] if len(slots) == limit else None


def taken(options: list[dict[str, object]]) -> Conflict:
    return Conflict(
        "slot_taken",
        "That time has just been taken." + (" The next free times are listed." if options else ""),
        details={"alternatives": options},
    )


async def slot_taken(
    db: Db,
    *,
    branch_id: int,
    examination_ids: Sequence[int],
    start: datetime,
    doctor_id: int | None,
    now: datetime,
    ctx: availability.Context | None = None,
) -> Conflict:
    options = _nearby_alternatives(ctx, after=start, now=now) if ctx is not None else None
    if options is None:
        options = await visit_alternatives(
            db, branch_id=branch_id, examination_ids=examination_ids, after=start, doctor_id=doctor_id, now=now
        )
    return taken(options)


async def place(
    db: Db,
    *,
    branch_id: int,
    examinations: Sequence[ExaminationLike],
    start: datetime,
    doctor_id: int | None,
    room_id: int | None,
    now: datetime,
    since: int | None = None,
) -> Placement:
    """Check the clinic's rules for a visit of these examinations at this start; pick doctor and room.

    A doctor or room staff name is held to the same rules as one the engine would propose (attendance, blackouts,
    claims, room kind, doing every examination); a visit of several examinations must suit every one of them over
    its whole length. 409 ``slot_taken`` if someone else has the time, 422 ``slot_unavailable`` (with the reasons)
    if the clinic does not offer it.

    ``since`` (see :func:`contention.mark`): the booking waited for others' claims in this process; it may share the
    availability read of the others that waited with it (the same rows, read after the same commits).
    """
    ids = [e.id for e in examinations]
    if room_id is not None:
        await _check_named_room(db, room_id, branch_id=branch_id, examinations=examinations)

    async def read(begin: datetime, end: datetime) -> availability.Context:
        return await availability.visit_context(
            db, branch_id=branch_id, examination_ids=ids, start=begin, end=end, doctor_id=doctor_id, now=now
        )

    if since is not None:
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)  # UTC: one read for the day's requests
        key = ("explain", branch_id, tuple(ids), doctor_id, day)
        ctx = await contention.read_once(key, since, lambda: read(day - timedelta(days=1), day + timedelta(days=2)))
        ctx = dataclasses.replace(ctx, query=dataclasses.replace(ctx.query, now=now))
    else:
        ctx = await read(start - timedelta(days=1), start + timedelta(days=1))
    reasons = engine.explain(ctx.query, start, doctor_id, room_id)
    chosen = next((r for r in reasons if r.code == "available"), None)
    if chosen is None:
        codes = {r.code for r in reasons}
        if codes <= TAKEN:
            raise await slot_taken(
                db,
                branch_id=branch_id,
                examination_ids=ids,
                start=start,
                doctor_id=doctor_id,
                now=now,
                ctx=ctx,  # read just now, after any claim in flight in this process ended
            )
        blocking = [r for r in reasons if r.code not in TAKEN] or reasons
        raise Invalid(
            "slot_unavailable",
            "That time cannot be booked: " + "; ".join(dict.fromkeys(r.message for r in blocking)) + ".",
            details={"reasons": [{"code": r.code, "message": r.message, "doctor_id": r.doctor_id} for r in reasons]},
        )
    assert chosen.doctor_id is not None and chosen.room_id is not None
    rules = ctx.query.examination
    end = start + timedelta(minutes=rules.duration_min)
    return Placement(
        doctor_id=chosen.doctor_id,
        room_id=chosen.room_id,
        start=start,
        end=end,
        claim_start=start - timedelta(minutes=rules.buffer_before_min),
        claim_end=end + timedelta(minutes=rules.buffer_after_min),
    )


async def _check_named_room(db: Db, room_id: int, *, branch_id: int, examinations: Sequence[ExaminationLike]) -> None:
    """A room staff name must be an open room of the branch, of the kind every examination of the visit needs."""
    wanted = await queries.room(db, room_id)
    if wanted is None or wanted.branch_id != branch_id or not wanted.active:
        raise NotFound("not_found", f"There is no room {room_id} at this branch.")
    for examination in examinations:
        if examination.room_kind is not None and wanted.kind != examination.room_kind:
            raise Invalid("unsuitable_room", f"{examination.name} needs a {examination.room_kind} room.")
