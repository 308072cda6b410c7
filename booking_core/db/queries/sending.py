"""The two statements on a delivery's hot path, each one round trip in a transaction of its own (autocommit).

:func:`claim_to_send` does in one ``UPDATE`` what would otherwise take several statements (locking the row with
``SKIP LOCKED``, keeping a person's messages in order, reading their 24-hour window), so a worker pays one round trip
before it sends. Both commit durably: a claim lost in a PostgreSQL crash would put a row that was being sent back
to 'pending', and another worker would send it again while its first sender is still recording it. Kept, the
claim holds the row 'sending' until its sender records it (the record is retried until the database is back) or,
if that sender died, until it is stale: then it is reclaimed as an *uncertain* send, at most once.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import DateTime, String, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from booking_core.db.raw import RawDb
from booking_core.db.tables import ChannelIdentity, OutboxMessage

#: Where the two statements run: the caller's session (on its connection) or a pool of their own (a worker's
#: :func:`sending_pool`), which skips the session's work around every statement.
Executor: TypeAlias = AsyncSession | RawDb

#: An earlier message to the same person planned within this much of now is waiting to go, so it is in the way.
SOON = timedelta(seconds=5)


@dataclass(frozen=True)
class Claimed:
    """The row as the claim left it: ``sending`` (it is ours to send) or ``pending`` (an earlier message to the same
    person goes first; ``next_attempt_at`` says when to look again)."""

    id: int
    status: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    last_inbound_at: datetime | None
    uncertain_at: datetime | None = None  # an earlier send of it may have reached the provider


async def _autocommit(db: AsyncSession) -> AsyncConnection:
    # The session's connection for this transaction, without BEGIN/COMMIT round trips: each statement commits.
    return await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


@dataclass(frozen=True)
class _Compiled:
    """A Core statement compiled once for asyncpg and run on the session's own connection, skipping SQLAlchemy's
    per-execution work (a third of what a statement this small costs a worker). Nothing here needs SQLAlchemy's
    type processing: ints, strings, aware datetimes and the JSON codec the dialect sets on every connection."""

    sql: str
    order: tuple[str, ...]
    constants: dict[str, Any]

    @classmethod
    def of(cls, statement: Any) -> _Compiled:
        compiled = statement.compile(dialect=asyncpg.dialect())
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))

    async def fetchrow(self, db: Executor, values: dict[str, Any]) -> Any:
        args = [values[name] if name in values else self.constants[name] for name in self.order]
        if isinstance(db, AsyncSession):
            raw = await (await _autocommit(db)).get_raw_connection()
            return await raw.driver_connection.fetchrow(self.sql, *args)  # type: ignore[union-attr]
        return await db.fetchrow(self.sql, *args)


def _claim_statement(*, on_channels: bool) -> Any:
    """Built once (statements are cheap to run and costly to build): the values come as bound parameters."""
    mine = aliased(OutboxMessage, name="mine")
    other = aliased(OutboxMessage, name="other")
    now = bindparam("now", type_=DateTime(timezone=True))
    in_the_way = (
        select(case((func.bool_or(other.status == "sending"), now), else_=func.min(other.next_attempt_at)))
        .where(
            other.channel == mine.channel,
            other.recipient == mine.recipient,
            other.id < mine.id,
            or_(
                (other.status == "pending")
                & (
                    (other.next_attempt_at <= bindparam("soon", type_=DateTime(timezone=True)))
                    | (other.attempts > 0)
                    | other.last_error.is_not(None)  # tried: throttled (its attempt uncounted) or failing
                ),
                other.status == "sending",
            ),
        )
        .scalar_subquery()
    )
    claimable = or_(
        (mine.status == "pending") & (mine.next_attempt_at <= now),
        # A row its sender never recorded (the sender died, or the record never reached the database): it may have
        # gone out, so it is taken once, as an uncertain send; a second time it is the sweep's to give up.
        (mine.status == "sending")
        & (mine.locked_at < bindparam("stale_before", type_=DateTime(timezone=True)))
        & mine.uncertain_at.is_(None),
    )
    if on_channels:
        claimable = claimable & (mine.channel == func.any(bindparam("channels", type_=ARRAY(String))))
    candidate = (
        select(mine.id, in_the_way.label("until"))
        .where(mine.id == bindparam("outbox_id"), claimable)
        .with_for_update(skip_locked=True, of=mine)
        .cte("candidate")
    )
    go = candidate.c.until.is_(None)
    return (
        update(OutboxMessage)
        .where(OutboxMessage.id == candidate.c.id)
        .values(
            status=case((go, "sending"), else_="pending"),
            uncertain_at=case((OutboxMessage.status == "sending", now), else_=OutboxMessage.uncertain_at),
            locked_at=case((go, now)),
            attempts=case((go, OutboxMessage.attempts + 1), else_=OutboxMessage.attempts),
            next_attempt_at=case(
                (go, OutboxMessage.next_attempt_at),
                else_=func.greatest(bindparam("in_order", type_=DateTime(timezone=True)), candidate.c.until),
            ),
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.status,
            OutboxMessage.payload,
            OutboxMessage.attempts,
            OutboxMessage.next_attempt_at,
            OutboxMessage.uncertain_at,
            select(ChannelIdentity.last_inbound_at)
            .where(ChannelIdentity.id == OutboxMessage.identity_id)
            .scalar_subquery()
            .label("last_inbound_at"),
        )
    )


_CLAIM = _Compiled.of(_claim_statement(on_channels=False))
_CLAIM_ON_CHANNELS = _Compiled.of(_claim_statement(on_channels=True))
_SENT = _Compiled.of(
    update(OutboxMessage)
    .where(OutboxMessage.id == bindparam("outbox_id"))
    .values(
        status="sent",
        provider_id=bindparam("provider_id"),
        sent_at=bindparam("at", type_=DateTime(timezone=True)),
        last_error=None,
        locked_at=None,
    )
)


async def claim_to_send(
    db: Executor,
    outbox_id: int,
    *,
    now: datetime,
    stale_before: datetime,
    in_order_wait: timedelta,
    channels: Collection[str] | None = None,
) -> Claimed | None:
    """Claim a due row (or one a dead worker left 'sending' before ``stale_before``) in one statement.

    None: not due, already sent, another worker has it, or (``channels`` given) it goes out on another channel.
    Otherwise the row is 'sending' with one more attempt,
    unless an earlier message to the same recipient is still to go: being sent, due within :data:`SOON`, or tried
    and waiting for its retry (throttled or failing; a failed one is not in the way). Then the row stays 'pending' until
    ``max(now + in_order_wait, when that one may go)`` (now, if it is being sent), attempts unchanged.
    A session: this must be the first statement of its transaction, which the caller ends.
    """
    params: dict[str, Any] = {
        "outbox_id": outbox_id,
        "now": now,
        "soon": now + SOON,
        "stale_before": stale_before,
        "in_order": now + in_order_wait,
    }
    if channels is not None:
        params["channels"] = list(channels)
    row = await (_CLAIM if channels is None else _CLAIM_ON_CHANNELS).fetchrow(db, params)
    if row is None:
        return None
    return Claimed(
        id=row["id"],
        status=row["status"],
        payload=row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_inbound_at=row["last_inbound_at"],
        uncertain_at=row["uncertain_at"],
    )


async def record_sent(db: Executor, outbox_id: int, *, provider_id: str, at: datetime) -> None:
    """Mark the row sent with the provider's id, in one statement that commits (durably) on its own.
    A session: this must be the first statement of its transaction, which the caller ends."""
    await _SENT.fetchrow(db, {"outbox_id": outbox_id, "provider_id": provider_id, "at": at})
