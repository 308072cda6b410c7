"""Deleting a session for good (the owner, with a typed confirmation): its invoice stays as financial history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import billing as billing_queries
from booking_core.db.queries import sessions as queries
from booking_core.domain.actors import Actor
from booking_core.domain.archive import ArchivedLine, ArchivedSession, confirmation_matches, confirmation_phrase
from booking_core.services import audit, lifecycle
from booking_core.services.errors import Forbidden, Invalid

__all__ = ["DeletedSession", "delete_permanently"]


@dataclass(frozen=True)
class DeletedSession:
    """What a permanent delete removed, and the invoice it kept (None when the session had none)."""

    session_id: int
    booking_code: str
    invoice_id: int | None
    snapshot: dict[str, Any]


async def delete_permanently(
    db: Db, session_id: int, *, actor: Actor, confirm: str | None, now: datetime | None = None
) -> DeletedSession:
    """Delete a session for good (owner only, with the typed confirmation ``DELETE <booking_code>``).

    Lines, queue entry, reminders and the time claim go with it. The invoice stays as financial history: detached
    (``session_id`` NULL), ``archived_at`` set, a snapshot of the visit filled in, a draft voided (nobody will
    bill it). An audit row records who deleted what, with the same snapshot.
    """
    now = now or datetime.now(UTC)
    if actor.kind != "staff" or actor.role != "owner":
        raise Forbidden("owner_only", "Only an owner may delete a session permanently.")
    session = await lifecycle.locked(db, session_id, actor)
    code = session.booking_code
    if not confirmation_matches(confirm, code):
        phrase = confirmation_phrase(code)
        raise Invalid(
            "confirmation_required",
            f'Deleting a session cannot be undone. To confirm, send {{"confirm": "{phrase}"}} (type: {phrase}).',
            details={"phrase": phrase},
        )
    branch, patient, doctor, room = await queries.participants(db, session)
    lines = await queries.lines(db, session.id)
    snapshot = ArchivedSession(
        session_id=session.id,
        booking_code=session.booking_code,
        status=session.status,
        branch_id=branch.id,
        branch_name=branch.name,
        patient_id=patient.id,
        patient_name=patient.name,
        doctor_id=doctor.id,
        doctor_name=doctor.name,
        room_name=room.name,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        currency=branch.currency,
        lines=tuple(
            ArchivedLine(line.kind, line.name, line.quantity, line.unit_price, line.examination_id) for line in lines
        ),
        started_at=session.started_at,
        ended_at=session.ended_at,
        cancelled_at=session.cancelled_at,
        cancel_reason=session.cancel_reason,
    ).to_dict()
    invoice = await billing_queries.invoice_for_session(db, session.id, lock=True)
    if invoice is not None:
        await billing_queries.update_invoice(
            db,
            invoice.id,
            {
                "session_id": None,
                "archived_at": now,
                "snapshot": snapshot,
                "status": "void" if invoice.status == "draft" else invoice.status,
            },
        )
    await queries.delete_session(db, session)
    audit.record(
        db,
        actor,
        "session.deleted",
        "session",
        session_id,
        {"snapshot": snapshot, "invoice_id": invoice.id if invoice else None},
    )
    return DeletedSession(
        session_id=session_id, booking_code=code, invoice_id=invoice.id if invoice else None, snapshot=snapshot
    )
