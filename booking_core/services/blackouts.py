"""Blackout blocks: time nobody can book, for a whole branch, one doctor or one room (staff meeting, leave, repairs).

Availability already subtracts them; this module lets the front desk add and remove them. A blackout does not
cancel the visits it covers: staff are told how many there are and decide about each one. Every change leaves an
audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from booking_core.db.engine import Db
from booking_core.db.queries import calendar as queries
from booking_core.db.tables import BlackoutBlock
from booking_core.domain.actors import Actor
from booking_core.services import audit
from booking_core.services.errors import Forbidden, Invalid, NotFound

__all__ = ["MAX_LENGTH", "MAX_REASON", "SCOPES", "Added", "add", "remove"]

Scope = Literal["branch", "doctor", "room"]
SCOPES: tuple[Scope, ...] = ("branch", "doctor", "room")
MAX_REASON = 200
#: Long leave is entered as a blackout too; anything longer is more likely a typo in the year.
MAX_LENGTH = timedelta(days=120)
EDITORS = ("owner", "admin", "staff")


@dataclass(frozen=True)
class Added:
    """The new blackout, and how many booked visits it covers (they stay booked until staff act on them)."""

    block: BlackoutBlock
    covered_sessions: int


def _may_edit(actor: Actor) -> None:
    if actor.kind == "staff" and actor.role not in EDITORS:
        raise Forbidden("forbidden", "The front desk manages blackouts; ask them.")


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{what} must include a time zone offset.")
    return value.astimezone(UTC)


async def add(
    db: Db,
    *,
    actor: Actor,
    branch_id: int,
    scope: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    doctor_id: int | None = None,
    room_id: int | None = None,
) -> Added:
    """Block ``[starts_at, ends_at)`` at the branch for everyone, one doctor (at every branch) or one room.

    Refused: a doctor's sign-in (403), another branch or an unknown doctor or room (404), a scope without its
    target, times that do not run forwards or span more than 120 days, a reason that is empty or too long (422).
    """
    _may_edit(actor)
    branch = await queries.get_branch(db, branch_id)
    if branch is None or not branch.active or not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    if scope not in SCOPES:
        raise Invalid("invalid_scope", "A blackout is for the whole branch, one doctor or one room.")
    start, end = _aware(starts_at, "The start"), _aware(ends_at, "The end")
    if end <= start:
        raise Invalid("invalid_range", "A blackout ends after it starts.")
    if end - start > MAX_LENGTH:
        raise Invalid("range_too_long", f"A blackout lasts at most {MAX_LENGTH.days} days; add another for more.")
    reason = " ".join(reason.split())
    if not 1 <= len(reason) <= MAX_REASON:
        raise Invalid("invalid_reason", f"Say why, in 1 to {MAX_REASON} characters (staff and reports see it).")
    if scope == "doctor":
        doctor = await queries.get_doctor(db, doctor_id) if doctor_id is not None else None
        if doctor is None or not doctor.active:
            raise NotFound("not_found", "Choose the doctor this blackout is for.")
        room_id = None
    elif scope == "room":
        room = await queries.get_room(db, room_id) if room_id is not None else None
        if room is None or room.branch_id != branch_id or not room.active:
            raise NotFound("not_found", "Choose a room of this branch.")
        doctor_id = None
    else:
        doctor_id = room_id = None
    block = await queries.add_blackout(
        db,
        branch_id=branch_id,
        scope=scope,
        doctor_id=doctor_id,
        room_id=room_id,
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_by=actor.id if actor.kind == "staff" else None,
    )
    covered = await queries.active_sessions_meeting(
        db, branch_id=branch_id, start=start, end=end, doctor_id=doctor_id, room_id=room_id
    )
    audit.record(
        db,
        actor,
        "blackout.created",
        "blackout_block",
        block.id,
        {
            "branch_id": branch_id,
            "scope": scope,
            "doctor_id": doctor_id,
            "room_id": room_id,
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "reason": reason,
            "covered_sessions": covered,
        },
    )
    return Added(block, covered)


async def remove(db: Db, blackout_id: int, *, actor: Actor) -> BlackoutBlock:
    """Delete a blackout (its time becomes bookable again); another branch's is "not found"."""
    _may_edit(actor)
    block = await queries.get_blackout(db, blackout_id)
    if block is None or not actor.can_see_branch(block.branch_id):
        raise NotFound("not_found", "There is no such blackout.")
    removed = await queries.delete_blackout(db, blackout_id)
    if removed is None:  # removed by someone else a moment ago
        raise NotFound("not_found", "There is no such blackout.")
    audit.record(
        db,
        actor,
        "blackout.removed",
        "blackout_block",
        blackout_id,
        {
            "branch_id": removed.branch_id,
            "scope": removed.scope,
            "doctor_id": removed.doctor_id,
            "room_id": removed.room_id,
            "starts_at": removed.starts_at.isoformat(),
            "ends_at": removed.ends_at.isoformat(),
            "reason": removed.reason,
        },
    )
    return removed
