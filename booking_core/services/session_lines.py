"""A visit's lines as staff change them: add an examination (at its list price) or a consumable, change how many,
remove one. Each change locks the session, refuses a visit that is over, rebuilds its draft invoice and leaves an
audit row with the invoice's new total.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import sessions as session_queries
from booking_core.db.tables import SessionLine
from booking_core.domain.actors import Actor
from booking_core.domain.money import money_str
from booking_core.services import audit
from booking_core.services.errors import Conflict, Invalid, NotFound
from booking_core.services.invoice_inputs import (
    ConsumableRequest,
    check_currency,
    checked_amount,
    checked_quantity,
    consumable_from,
)
from booking_core.services.invoicing import lock_open_session, rebuild

__all__ = ["add_line", "remove_line", "set_line_quantity"]


async def add_line(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    examination_id: int | None = None,
    quantity: int = 1,
    consumable: ConsumableRequest | None = None,
    now: datetime | None = None,
) -> SessionLine:
    """Add an examination (by id, at its list price) or a consumable to an active session; refreshes the invoice."""
    if (examination_id is None) == (consumable is None):
        raise Invalid("invalid_line", "Give either an examination id or a consumable.")
    session = await lock_open_session(db, session_id, actor)
    branch = await session_queries.get_branch(db, session.branch_id)
    assert branch is not None
    if examination_id is not None:
        exam = (await session_queries.examinations_offered(db, branch.id, [examination_id])).get(examination_id)
        if exam is None:
            raise NotFound("not_found", f"There is no examination {examination_id} at this branch.")
        check_currency(exam, branch)
        checked_amount(exam.price, branch.currency, f"price of {exam.name!r}")
        values: dict[str, Any] = {
            "kind": "examination",
            "examination_id": exam.id,
            "name": exam.name,
            "unit_price": exam.price,
            "quantity": checked_quantity(quantity, exam.name),
            "taxable": exam.taxable,
        }
    else:
        assert consumable is not None
        item = consumable_from(consumable, branch.currency)
        values = {
            "kind": "consumable",
            "examination_id": None,
            "name": item.name,
            "unit_price": item.unit_price,
            "quantity": item.quantity,
            "taxable": item.taxable,
        }
    line = await session_queries.add_line(db, session.id, values)
    record, _, _ = await rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_added",
        "session",
        session.id,
        {
            "line_id": line.id,
            "kind": line.kind,
            "examination_id": line.examination_id,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": money_str(line.unit_price, branch.currency),
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, branch.currency),
        },
    )
    return line


async def remove_line(db: Db, session_id: int, line_id: int, *, actor: Actor, now: datetime | None = None) -> None:
    """Remove a line from an active session and refresh its invoice; the last examination stays (a visit is for
    something)."""
    session = await lock_open_session(db, session_id, actor)
    current = await session_queries.lines(db, session.id)
    target = next((line for line in current if line.id == line_id), None)
    if target is None:
        raise NotFound("not_found", f"Session {session_id} has no line {line_id}.")
    if target.kind == "examination" and sum(1 for line in current if line.kind == "examination") == 1:
        raise Conflict("last_examination", "This is the session's only examination; cancel the session instead.")
    removed = await session_queries.delete_line(db, session.id, line_id)
    assert removed is not None
    record, _, _ = await rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_removed",
        "session",
        session.id,
        {
            "line_id": line_id,
            "kind": removed.kind,
            "name": removed.name,
            "quantity": removed.quantity,
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, record.currency),
        },
    )


async def set_line_quantity(
    db: Db, session_id: int, line_id: int, quantity: int, *, actor: Actor, now: datetime | None = None
) -> SessionLine:
    """Change how many of a line an active session has (1..999) and refresh its invoice; the same number again
    changes nothing."""
    session = await lock_open_session(db, session_id, actor)
    current = next((line for line in await session_queries.lines(db, session.id) if line.id == line_id), None)
    if current is None:
        raise NotFound("not_found", f"Session {session_id} has no line {line_id}.")
    quantity = checked_quantity(quantity, current.name)
    if quantity == current.quantity:
        return current
    before = current.quantity
    line = await session_queries.set_line_quantity(db, session.id, line_id, quantity)
    assert line is not None
    record, _, _ = await rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_changed",
        "session",
        session.id,
        {
            "line_id": line_id,
            "name": line.name,
            "quantity_before": before,
            "quantity": quantity,
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, record.currency),
        },
    )
    return line
