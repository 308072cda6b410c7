"""Provider status callbacks: every one is kept, and the outbox row only ever moves forward.

A channel tells us its order of delivery states (``rank``: higher is later, e.g. WhatsApp's queued < sent <
delivered < read); callbacks arrive out of order, so a state is taken only when it ranks above the row's
current one, decided in one atomic UPDATE. A callback for a message we do not know (another system's, or one
whose provider id is not recorded yet) is still kept in ``delivery_events``; :func:`catch_up` applies such early
callbacks once the sender has recorded the provider id.

No audit rows: ``delivery_events`` is itself the record of who (the provider) said what and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import delivery_status as queries

#: States that mean the message did not reach the patient: the provider's error code goes to ``last_error``.
FAILURE_STATES = frozenset({"failed", "undelivered"})
MAX_PROVIDER_ID = 120
MAX_STATE = 12
MAX_ERROR_CODE = 20


@dataclass(frozen=True)
class StatusRecorded:
    """``event_id``: the ``delivery_events`` row; ``moved``: outbox rows whose delivery state moved forward."""

    event_id: int
    moved: tuple[int, ...] = ()


def _last_error(state: str, error_code: str | None) -> str | None:
    if state not in FAILURE_STATES:
        return None
    return f"{error_code}: {state}" if error_code else state


async def record(
    db: Db,
    *,
    channel: str,
    provider_id: str,
    state: str,
    rank: Mapping[str, int],
    error_code: str | None = None,
    raw: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StatusRecorded:
    """Keep one status callback and move the matching outbox row to ``state`` if that is later than its own.

    ``state`` outside ``rank`` (a status the channel does not track) is recorded and moves nothing.
    """
    now = now or datetime.now(UTC)
    provider_id = provider_id[:MAX_PROVIDER_ID]
    event_id = await queries.insert_event(
        db,
        {
            "channel": channel,
            "provider_id": provider_id,
            "state": state[:MAX_STATE],
            "error_code": error_code[:MAX_ERROR_CODE] if error_code else None,
            "raw": dict(raw or {}),
            "received_at": now,
        },
    )
    if state not in rank:
        return StatusRecorded(event_id)
    moved = await queries.advance(
        db,
        channel=channel,
        provider_id=provider_id,
        state=state,
        rank=rank,
        at=now,
        last_error=_last_error(state, error_code),
    )
    return StatusRecorded(event_id, tuple(moved))


async def catch_up(
    db: Db, *, channel: str, provider_id: str, rank: Mapping[str, int], now: datetime | None = None
) -> tuple[int, ...]:
    """Apply callbacks that arrived before the sender recorded ``provider_id`` (same forward-only rule)."""
    event = await queries.furthest_event(db, channel=channel, provider_id=provider_id[:MAX_PROVIDER_ID], rank=rank)
    if event is None:
        return ()
    moved = await queries.advance(
        db,
        channel=channel,
        provider_id=event.provider_id,
        state=event.state,
        rank=rank,
        at=event.received_at if now is None else now,
        last_error=_last_error(event.state, event.error_code),
    )
    return tuple(moved)
