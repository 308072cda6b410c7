"""Everything we send is an outbox row first, written in the same transaction as the change that caused it.

Delivery (``deliver``) claims a row so that only one sender has it, sends it through the channel's sender, and
records the provider's id; transient failures come back later (``retry_after`` or backoff), permanent ones are
marked failed with the provider's error and listed for staff.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from booking_core.db.engine import Db
from booking_core.db.queries import outbox as queries
from booking_core.db.queries import sending
from booking_core.db.raw import RawDb
from booking_core.domain.messages import DeliveryFailed, OutboundMessage

MAX_ATTEMPTS = 6
PLANNED = "frontdesk.outbox.planned"
ROUTES = "frontdesk.outbox.routes"
IN_ORDER_WAIT = timedelta(milliseconds=500)
STALE_AFTER = timedelta(minutes=2)  # a row 'sending' for longer than this belongs to a dead worker


class Postpone(Exception):
    """Raised by ``before_send`` when the row must wait (a rate limit): it goes back to pending, unsent, uncounted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"postponed {seconds:.2f}s")
        self.seconds = seconds


class Sender(Protocol):
    async def send(self, message: OutboundMessage) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did: ``sent``, ``retry`` (at ``retry_at``), ``failed`` or ``skipped``."""

    status: str
    outbox_id: int
    provider_id: str | None = None
    retry_at: datetime | None = None
    error: str | None = None
    attempts: int = 0


def backoff(attempt: int) -> timedelta:
    """1 s, 4 s, 16 s, 64 s, ... capped at 10 minutes."""
    return timedelta(seconds=min(600, 4 ** max(0, attempt - 1)))


async def add(
    db: Db,
    message: OutboundMessage,
    *,
    kind: str = "reply",
    conversation_id: int | None = None,
    identity_id: int | None = None,
    dedupe_key: str | None = None,
    author: str = "bot",
    due_at: datetime | None = None,
) -> int | None:
    """Plan ``message``; None when ``dedupe_key`` was already planned. The caller enqueues delivery after commit."""
    values: dict[str, Any] = {
        "channel": message.channel,
        "identity_id": identity_id,
        "conversation_id": conversation_id,
        "recipient": message.recipient,
        "kind": kind,
        "payload": message.to_payload(),
        "dedupe_key": dedupe_key,
        "status": "pending",
    }
    if due_at is not None:
        values["next_attempt_at"] = due_at
    outbox_id = await queries.insert_outbox(db, values)
    if outbox_id is not None:
        # Whoever commits this transaction can hand the rows to the workers at once (see planned()).
        db.info.setdefault(PLANNED, []).append(outbox_id)
        db.info.setdefault(ROUTES, {})[outbox_id] = route(message.channel, message.recipient)
    if outbox_id is not None and conversation_id is not None:
        await queries.insert_history(
            db,
            {
                "conversation_id": conversation_id,
                "channel": message.channel,
                "direction": "out",
                "external_id": None,
                "text": message.text,
                "payload": {
                    "buttons": [{"label": b.label, "data": b.data} for b in message.buttons],
                    "image": message.image is not None,
                    "kind": kind,
                },
                "author": author,
                "outbox_id": outbox_id,
            },
        )
    return outbox_id


def planned(db: Db) -> list[int]:
    """Outbox rows added in this session's transaction(s) so far, taken (the list is emptied)."""
    ids: list[int] = db.info.pop(PLANNED, [])
    return ids


def route(channel: str, recipient: str) -> str:
    """Where a row goes, as its deliver job may carry it ("telegram:12345"): enough for the sender to take its place
    in the channel's rate limits while the row is being claimed, rather than after."""
    return f"{channel}:{recipient}"


def unroute(value: str) -> tuple[str, str]:
    channel, _, recipient = value.partition(":")
    return channel, recipient


def routes(db: Db) -> dict[int, str]:
    """Where the rows added in this session so far go, by id (taken: the map is emptied)."""
    found: dict[int, str] = db.info.pop(ROUTES, {})
    return found


async def deliver(
    db: Db,
    outbox_id: int,
    senders: Mapping[str, Sender],
    *,
    now: datetime | None = None,
    before_send: Any = None,
    stale_after: timedelta = STALE_AFTER,
    channels: Collection[str] | None = None,
    hot: RawDb | None = None,
    record_later: Callable[[Coroutine[Any, Any, None]], None] | None = None,
) -> Outcome:
    """Claim, send and record one outbox row. ``db`` must not be in a transaction: each step commits on its own.

    ``before_send(message)`` (awaitable) runs between claim and send: the worker uses it for shared rate limits.
    ``stale_after``: a row 'sending' for longer than this belongs to a dead worker and is claimed again.
    ``channels``: only a row on one of these is claimed (another is ``skipped``, untouched); None: any channel.
    ``hot``: a pool the claim and the record of a sent row run on (a worker's), instead of ``db``'s connection.
    ``record_later`` (with ``hot``): given the record of a sent row, started, to finish while the caller goes on
    (a worker's job hands it over so that it completes while RQ files the job away); None: awaited here.
    """
    now = now or datetime.now(UTC)
    # One statement claims the row, keeps the person's messages in order and reads their 24-hour window (see
    # booking_core/db/queries/sending.py): a delivery's database work before the send is one round trip.
    claim = functools.partial(
        sending.claim_to_send,
        outbox_id=outbox_id,
        now=now,
        stale_before=now - stale_after,
        in_order_wait=IN_ORDER_WAIT,
        channels=channels,
    )
    if hot is not None:
        row = await claim(hot)
    else:
        async with db.begin():
            row = await claim(db)
    if row is None:
        return Outcome("skipped", outbox_id)
    if row.status != "sending":
        # Keep the conversation in order: this one goes after the earlier message to the same person, which
        # may be waiting for its own retry (a 429's retry_after, a backoff after a 5xx).
        return Outcome("retry", outbox_id, retry_at=row.next_attempt_at, attempts=row.attempts)
    message = OutboundMessage.from_payload(row.payload)
    last_inbound = row.last_inbound_at
    attempts = row.attempts
    sender = senders.get(message.channel)
    if sender is None:
        return await _fail(db, outbox_id, f"no sender is configured for {message.channel}", attempts)
    if before_send is not None:
        try:
            await before_send(message)
        except Postpone as wait:
            retry_at = datetime.now(UTC) + timedelta(seconds=wait.seconds)
            async with db.begin():
                await queries.finish(
                    db,
                    outbox_id,
                    {"status": "pending", "next_attempt_at": retry_at, "locked_at": None, "attempts": attempts - 1},
                )
            return Outcome("retry", outbox_id, retry_at=retry_at, attempts=attempts - 1)
    try:
        provider_id = await sender.send(dataclasses.replace(message, last_inbound_at=last_inbound))
    except DeliveryFailed as exc:
        error = f"{exc.code or 'error'}: {exc}"
        if exc.transient and attempts < MAX_ATTEMPTS:
            retry_at = datetime.now(UTC) + (
                timedelta(seconds=exc.retry_after) if exc.retry_after is not None else backoff(attempts)
            )
            async with db.begin():
                await queries.finish(
                    db,
                    outbox_id,
                    {"status": "pending", "next_attempt_at": retry_at, "last_error": error, "locked_at": None},
                )
            return Outcome("retry", outbox_id, retry_at=retry_at, error=error, attempts=attempts)
        return await _fail(db, outbox_id, error, attempts)
    if hot is not None:
        record = sending.record_sent(hot, outbox_id, provider_id=provider_id, at=datetime.now(UTC))
        if record_later is None:
            await record
        else:
            record_later(record)
    else:
        async with db.begin():
            await sending.record_sent(db, outbox_id, provider_id=provider_id, at=datetime.now(UTC))
    return Outcome("sent", outbox_id, provider_id=provider_id, attempts=attempts)


async def _fail(db: Db, outbox_id: int, error: str, attempts: int) -> Outcome:
    async with db.begin():
        await queries.finish(db, outbox_id, {"status": "failed", "last_error": error, "locked_at": None})
        await queries.record_failure(db, outbox_id=outbox_id, error=error)
    return Outcome("failed", outbox_id, error=error, attempts=attempts)


async def due(
    db: Db, *, now: datetime | None = None, limit: int = 500, stale_after: timedelta = STALE_AFTER
) -> list[int]:
    """Ids a sweeper re-enqueues: due but unsent (Redis lost the job, a worker died: 'sending' for ``stale_after``)."""
    now = now or datetime.now(UTC)
    return await queries.due_ids(db, now=now, stale_before=now - stale_after, limit=limit)
