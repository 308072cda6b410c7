"""Visit reminders: rows in the database are the truth, Redis only holds their schedules.

A session that is booked gets one ``reminders`` row per configured offset (setting ``reminder_offsets_min``,
default 24 h and 2 h before); offsets whose time has already passed are not created. When the session's times
change the rows move with it (a sent or skipped row whose new time is still ahead is armed again), and when the
session stops waiting (cancelled, with the doctor, completed) its scheduled rows are cancelled. All of that happens
in the transaction that changed the session (:func:`sync_session`, called by the booking and lifecycle services).

Sending (:func:`send`) first claims the row with one atomic ``UPDATE ... WHERE status = 'scheduled'``, so a
reminder whose job runs twice, or whose job races the sweep, goes out once. A patient who cannot be reached is
recorded (status ``skipped`` with a note) and nothing is raised: a batch never stops at one patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import reminders as queries
from booking_core.domain.messages import Button
from booking_core.services import messages, notify, settings

__all__ = [
    "EARLY",
    "MAX_OFFSET_MIN",
    "OFFSETS_SETTING",
    "Due",
    "Sent",
    "due",
    "give_up",
    "kind_for",
    "offset_of",
    "offsets",
    "pending",
    "scheduled_for_sessions",
    "send",
    "sync_session",
]

OFFSETS_SETTING = "reminder_offsets_min"
#: Offsets beyond this (60 days) are ignored: nobody books that far ahead and wants a reminder that early.
MAX_OFFSET_MIN = 60 * 24 * 60
#: A job may run a little before the due time (RQ schedules to the whole second): still on time for a reminder.
EARLY = timedelta(seconds=5)


@dataclass(frozen=True)
class Due:
    """A scheduled reminder row and when it is due: what a Redis schedule is made from."""

    reminder_id: int
    due_at: datetime


@dataclass(frozen=True)
class Sent:
    """What :func:`send` did with one reminder: ``sent`` (outbox row written), ``skipped`` (``note`` says why)
    or ``not_due`` (not scheduled any more, or not yet due: nothing to do)."""

    reminder_id: int
    status: Literal["sent", "skipped", "not_due"]
    outbox_id: int | None = None
    note: str = ""


# --- offsets ----------------------------------------------------------------------------------------------


def offsets(value: Any) -> list[int]:
    """The configured offsets in minutes, largest first; anything that is not a whole, positive number of
    minutes up to :data:`MAX_OFFSET_MIN` is ignored (a typo in the settings never stops booking)."""
    found: set[int] = set()
    for item in value if isinstance(value, list) else []:
        if isinstance(item, bool) or not isinstance(item, int | float) or item != int(item):
            continue
        if 1 <= int(item) <= MAX_OFFSET_MIN:
            found.add(int(item))
    return sorted(found, reverse=True)


def kind_for(offset_min: int) -> str:
    """The row's kind for an offset: whole hours as "24h", "2h"; other offsets in minutes ("90m")."""
    return f"{offset_min // 60}h" if offset_min % 60 == 0 else f"{offset_min}m"


def offset_of(kind: str) -> int | None:
    """The offset in minutes a kind stands for ("24h" → 1440, "90m" → 90); None for anything else."""
    number, unit = kind[:-1], kind[-1:]
    if not number.isdigit() or unit not in ("h", "m"):
        return None
    return int(number) * (60 if unit == "h" else 1)


def _due(starts_at: datetime, offset_min: int) -> datetime:
    # Whole seconds: RQ schedules to the second, and the job id carries the due time as an integer.
    return (starts_at - timedelta(minutes=offset_min)).replace(microsecond=0)


# --- keeping the rows in step with the session --------------------------------------------------------------


async def sync_session(db: Db, session_id: int, *, now: datetime | None = None) -> list[Due]:
    """Bring the session's reminder rows in line with the session, in the caller's transaction.

    Waiting session: one row per configured offset whose time is still ahead (rows already there keep their
    kind; a row whose due time changed because the visit moved is re-armed if the new time is ahead, cancelled
    if not). Any other status: scheduled rows are cancelled. Returns the scheduled rows, to be put into Redis
    after commit (the periodic resync does it anyway).
    """
    now = now or datetime.now(UTC)
    found = await queries.session(db, session_id)
    rows = await queries.lock_for_session(db, session_id)
    if found is None:
        return []
    if found.status != "waiting":
        for row in rows:
            if row.status == "scheduled":
                note = f"the visit is {found.status}"
                await queries.update_reminder(db, row.id, {"status": "cancelled", "note": note})
        return []
    planned: list[Due] = []
    kinds = {row.kind for row in rows}
    for row in rows:
        offset = offset_of(row.kind)
        if offset is None:
            continue  # a kind this version does not know: leave it as it is
        due_at = _due(found.starts_at, offset)
        if due_at == row.due_at:
            if row.status == "scheduled":
                planned.append(Due(row.id, row.due_at))
            continue
        if due_at > now:
            values = {"due_at": due_at, "status": "scheduled", "note": "moved with the visit", "outbox_id": None}
            await queries.update_reminder(db, row.id, values)
            planned.append(Due(row.id, due_at))
        elif row.status == "scheduled":
            note = "the visit moved too close for this reminder"
            await queries.update_reminder(db, row.id, {"due_at": due_at, "status": "cancelled", "note": note})
    for offset in offsets(await settings.get(db, OFFSETS_SETTING)):
        kind = kind_for(offset)
        due_at = _due(found.starts_at, offset)
        if kind in kinds or due_at <= now:
            continue  # past-due offsets at booking time are not created
        reminder_id = await queries.insert_scheduled(db, session_id=session_id, kind=kind, due_at=due_at)
        if reminder_id is not None:
            planned.append(Due(reminder_id, due_at))
    return sorted(planned, key=lambda d: (d.due_at, d.reminder_id))


async def scheduled_for_sessions(db: Db, session_ids: list[int]) -> list[Due]:
    """The scheduled rows of these sessions (to schedule them in Redis after a commit)."""
    return [Due(i, at) for i, at in await queries.scheduled(db, session_ids=session_ids)]


async def pending(db: Db, *, now: datetime | None = None) -> list[Due]:
    """Every scheduled row still ahead of ``now``, soonest first: what Redis should hold."""
    return [Due(i, at) for i, at in await queries.scheduled(db, due_after=now or datetime.now(UTC))]


async def due(db: Db, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Scheduled rows whose time has come (their job was lost, or is about to run)."""
    return await queries.due_ids(db, due_by=(now or datetime.now(UTC)) + EARLY, limit=limit)


# --- sending ----------------------------------------------------------------------------------------------


async def send(db: Db, reminder_id: int, *, now: datetime | None = None, default_language: str = "en") -> Sent:
    """Claim the reminder and write its message to the outbox, in the caller's transaction.

    The claim makes a repeat a no-op (``not_due``). The message goes to the patient's own channel with the
    clinic's WhatsApp template for "reminder" attached (the WhatsApp adapter uses it outside the 24-hour
    window; other channels ignore it). No reachable channel, or a visit that no longer waits: ``skipped``.
    The caller enqueues delivery of ``outbox_id`` after commit.
    """
    now = now or datetime.now(UTC)
    row = await queries.claim(db, reminder_id, due_by=now + EARLY)
    if row is None:
        return Sent(reminder_id, "not_due")
    visit = await queries.visit(db, row.session_id)
    if visit is None or visit.session.status != "waiting":
        return await _skip(db, reminder_id, "the visit is no longer waiting")
    if visit.session.starts_at <= now:
        return await _skip(db, reminder_id, "the visit has already begun")
    start = visit.session.starts_at.astimezone(ZoneInfo(visit.branch.tz)).isoformat(timespec="minutes")
    offset = offset_of(row.kind)

    def reminder(lang: str) -> notify.Notice:
        values = {
            "name": visit.patient.name or None,
            "code": visit.session.booking_code,
            "examination": visit.examination_name,
            "doctor": visit.doctor_name,
            "branch": visit.branch.name,
            "start": start,
            "hours": round(offset / 60) if offset and offset >= 60 else None,
        }
        return notify.Notice(
            messages.render(lang, "reminder", **values),
            buttons=(
                Button(messages.label(lang, "reschedule"), "menu:resched"),
                Button(messages.label(lang, "cancel_visit"), "menu:cancel"),
            ),
            template_values={
                "name": visit.patient.name or "",
                "when": messages.render(lang, "reminder_time", start=start),
                "doctor": visit.doctor_name,
                "branch": visit.branch.name,
                "code": visit.session.booking_code,
            },
        )

    dedupe_key = f"reminder:{row.id}:{int(row.due_at.timestamp())}"
    told = await notify.tell(
        db, visit.session.patient_id, "reminder", reminder, dedupe_key=dedupe_key, default_language=default_language
    )
    if told is None:
        return await _skip(db, reminder_id, "no reachable channel: the patient has no chat identity")
    outbox_id, where = told.outbox_id, told.where
    await queries.update_reminder(db, reminder_id, {"outbox_id": outbox_id, "note": f"sent on {where.channel}"})
    return Sent(reminder_id, "sent", outbox_id=outbox_id)


async def give_up(db: Db, reminder_id: int, note: str) -> None:
    """Record that a scheduled reminder could not be sent (an unexpected error), so it is not retried forever."""
    await queries.skip_if_scheduled(db, reminder_id, note[:2000])


async def _skip(db: Db, reminder_id: int, note: str) -> Sent:
    await queries.update_reminder(db, reminder_id, {"status": "skipped", "note": note})
    return Sent(reminder_id, "skipped", note=note)
