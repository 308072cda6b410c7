"""Audit rows: every state change that matters records who and when, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from booking_core.db.engine import Db
from booking_core.db.tables import AuditEntry
from booking_core.domain.actors import Actor


def record(
    session: Db,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: int | None,
    data: dict[str, Any] | None = None,
    *,
    note: str = "",
) -> None:
    """Add an audit row to the current transaction (committed or rolled back with the change it describes)."""
    session.add(
        AuditEntry(
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            action=action,
            entity=entity,
            entity_id=entity_id,
            data=data or {},
            note=note,
        )
    )
