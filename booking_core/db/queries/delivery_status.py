"""Queries behind provider status callbacks: the event log and the outbox row's forward-only delivery state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import DeliveryEvent, OutboxMessage


async def insert_event(db: AsyncSession, values: dict[str, Any]) -> int:
    """Append one callback to ``delivery_events`` as received."""
    return (await db.execute(insert(DeliveryEvent).values(**values).returning(DeliveryEvent.id))).scalar_one()


async def advance(
    db: AsyncSession,
    *,
    channel: str,
    provider_id: str,
    state: str,
    rank: Mapping[str, int],
    at: datetime,
    last_error: str | None = None,
) -> list[int]:
    """Move the outbox row(s) sent as ``provider_id`` to ``state`` only if it ranks above their current state.

    One atomic UPDATE: the comparison happens in the row's own lock, so two callbacks racing each other can never
    move a row backwards. Returns the ids of the rows that moved.
    """
    current_rank = case(dict(rank), value=OutboxMessage.delivery_state, else_=0)
    values: dict[str, Any] = {"delivery_state": state, "delivery_state_at": at}
    if last_error is not None:
        values["last_error"] = last_error
    result = await db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.provider_id == provider_id,
            current_rank < rank[state],
        )
        .values(**values)
        .returning(OutboxMessage.id)
    )
    return list(result.scalars())


async def furthest_event(
    db: AsyncSession, *, channel: str, provider_id: str, rank: Mapping[str, int]
) -> DeliveryEvent | None:
    """The recorded callback with the highest-ranked state for ``provider_id`` (the earliest among equals)."""
    event_rank = case(dict(rank), value=DeliveryEvent.state, else_=0)
    result = await db.execute(
        select(DeliveryEvent)
        .where(
            DeliveryEvent.channel == channel,
            DeliveryEvent.provider_id == provider_id,
            DeliveryEvent.state.in_(list(rank)),
        )
        .order_by(event_rank.desc(), DeliveryEvent.received_at, DeliveryEvent.id)
        .limit(1)
    )
    return result.scalar_one_or_none()
