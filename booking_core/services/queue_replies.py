"""Queue-position replies: "you are next" and "you are second" on the patient's own channel, once per position.

After every change to a day's queue (check-in, call next, a move, a visit started, completed or cancelled),
:mod:`~booking_core.services.queue_actions` and the lifecycle call :func:`queue_changed` in the same transaction: it
asks the queue for everyone's place and, for each waiting patient who is now first or second for their doctor,
claims the position on the entry (``queue_entries.notified_position``, an atomic ``UPDATE ... WHERE
notified_position IS DISTINCT FROM``) and writes the notice to the outbox. The claim makes the notice once per
position however many changes (or transactions) see it. When the patient asked in chat and the dialog told them
their place, :func:`told` claims the position too, so the proactive notice does not repeat what they were just told.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import queue_replies as queries
from booking_core.domain.actors import SYSTEM
from booking_core.domain.lifecycle import SessionStatus
from booking_core.services import messages, notify, queue
from booking_core.services.queue import QueueTicket

__all__ = ["NOTIFIED_POSITIONS", "after_session_change", "catch_up", "queue_changed", "told"]

#: Places that are announced without being asked: next in line, and second in line.
NOTIFIED_POSITIONS = (1, 2)


async def queue_changed(
    db: Db, *, branch_id: int, day: date, now: datetime | None = None, default_language: str = "en"
) -> list[int]:
    """Announce new first and second places in a branch's queue for ``day`` (today's queue only).

    Returns the outbox ids written; the caller (or the sweep) enqueues their delivery after commit.
    """
    now = now or datetime.now(UTC)
    tz = await queries.branch_tz(db, branch_id)
    if tz is None or now.astimezone(ZoneInfo(tz)).date() != day:
        return []  # a queue of another day: nobody there is about to be called
    board = await queue.board(db, branch_id, actor=SYSTEM, day=day, now=now)
    tickets = [
        line.ticket
        for line in board.lines
        if line.ticket.status is SessionStatus.WAITING and line.ticket.position in NOTIFIED_POSITIONS
    ]
    patients = await queries.patients_of_sessions(db, [t.session_id for t in tickets])
    written: list[int] = []
    for ticket in tickets:
        if not await queries.claim_position(db, ticket.entry_id, ticket.position):
            continue
        outbox_id = await _notify(db, ticket, patients[ticket.session_id], tz, default_language=default_language)
        if outbox_id is not None:
            written.append(outbox_id)
    return written


async def after_session_change(db: Db, session_id: int, *, now: datetime | None = None) -> list[int]:
    """:func:`queue_changed` for the queue the session is in (nothing when it never checked in)."""
    entry = await queries.entry_of_session(db, session_id)
    if entry is None:
        return []
    return await queue_changed(db, branch_id=entry.branch_id, day=entry.day, now=now)


async def told(db: Db, ticket: QueueTicket) -> None:
    """The patient was just told their place in chat: a first or second place needs no notice of its own."""
    if ticket.status is SessionStatus.WAITING and ticket.position in NOTIFIED_POSITIONS:
        await queries.claim_position(db, ticket.entry_id, ticket.position)


async def catch_up(db: Db, *, now: datetime | None = None) -> list[int]:
    """Announce first and second places in every queue of today (the sweep's safety net)."""
    now = now or datetime.now(UTC)
    today = now.date()
    written: list[int] = []
    for branch_id, day, tz in await queries.active_queues(
        db, first_day=today - timedelta(days=1), last_day=today + timedelta(days=1)
    ):
        if now.astimezone(ZoneInfo(tz)).date() == day:
            written += await queue_changed(db, branch_id=branch_id, day=day, now=now)
    return written


async def _notify(db: Db, ticket: QueueTicket, patient_id: int, tz: str, *, default_language: str) -> int | None:
    """Tell a patient in one of the NOTIFIED_POSITIONS (the only places announced unasked) that their turn is near."""
    eta = ticket.eta.astimezone(ZoneInfo(tz))

    def notice(lang: str) -> notify.Notice:
        values = {
            "token": ticket.token,
            "position": ticket.position,
            "ahead": ticket.ahead,
            "doctor": ticket.doctor_name,
            "eta": eta.isoformat(timespec="minutes"),
            "hint": None,
        }
        return notify.Notice(
            messages.render(lang, "queue_soon", **values),
            template_values={
                "token": ticket.token,
                "position": str(ticket.position),
                "doctor": ticket.doctor_name,
                "eta": eta.strftime("%H:%M"),
            },
        )

    told = await notify.tell(
        db, patient_id, "queue_position", notice, dedupe_key=f"queue:{ticket.entry_id}:{ticket.position}",
        default_language=default_language,
    )  # fmt: skip
    # Nobody to tell (None): the claimed position keeps the next change from trying again.
    return told.outbox_id if told is not None else None
