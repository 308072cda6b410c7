"""Everything we send is an outbox row first, written in the same transaction as the change that caused it.

Delivery (``deliver``) claims a row so that only one sender has it, sends it through the channel's sender, and
records the provider's id; transient failures come back later (``retry_after`` or backoff), permanent ones are
marked failed with the provider's error and listed for staff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from booking_core.db.engine import DATABASE_AWAY, Db
from booking_core.db.queries import outbox as queries
from booking_core.db.queries import sending
from booking_core.db.raw import RawDb
from booking_core.domain.messages import Channel, DeliveryFailed, OutboundMessage, Sender

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 6
#: How the error of a row given up after uncertain sends begins: staff read it as "may have been delivered".
UNCERTAIN = "uncertain"
#: The session's ``info`` key under which :func:`add` notes the rows its transaction(s) planned (:class:`Planned`).
_PLANNED = "frontdesk.outbox.planned"
IN_ORDER_WAIT = timedelta(milliseconds=500)
STALE_AFTER = timedelta(minutes=2)  # a row 'sending' for longer than this belongs to a dead worker


#: How long after being parked (given up for the provider's failures) a row is tried again even though nothing
#: else on its channel got through meanwhile: a probe of whether the channel answers again.
PARKED_PROBE_AFTER = timedelta(minutes=5)
#: How long the record of a sent row keeps trying while the database is away (a restart): long enough for a
#: restart, short enough to end before the row would be reclaimed as stale.
RECORD_FOR = 25.0
_RECORD_AGAIN: tuple[type[BaseException], ...] = (OSError, TimeoutError, *DATABASE_AWAY)


class Postpone(Exception):
    """Raised by ``before_send`` when the row must wait (a rate limit): it goes back to pending, unsent, uncounted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"postponed {seconds:.2f}s")
        self.seconds = seconds


@dataclass
class Planned:
    """Outbox rows a session's transaction(s) planned, for whoever commits it to hand to the workers at once (their
    delivery starts now instead of at the next sweep): by id in the order planned, with where each goes (:func:`route`).

    Services deep inside a change plan rows (a staff action's notice, the dialog's replies, a waitlist offer);
    :func:`add` notes each on its session's one :class:`Planned`, which the transaction's owner takes after the
    commit (:func:`take_planned`) and hands to the deliver jobs.
    """

    routes: dict[int, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return list(self.routes)

    def __bool__(self) -> bool:
        return bool(self.routes)


def take_planned(db: Db) -> Planned:
    """The rows this session planned so far, taken: what it plans next starts a new :class:`Planned`."""
    found: Planned = db.info.pop(_PLANNED, None) or Planned()
    return found


class Pacing(Protocol):
    """The channels' shared rate limits, as the sender keeps them (a worker's: in Redis)."""

    async def before_send(self, message: OutboundMessage) -> None:
        """Wait for room to send ``message``, or raise :class:`Postpone` when the wait is long."""

    async def throttled(self, message: OutboundMessage, seconds: float) -> None:
        """The provider said to wait ``seconds`` (a 429): every later message on its channel and chat waits too."""


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
        # Whoever commits this transaction can hand the rows to the workers at once (see take_planned()).
        db.info.setdefault(_PLANNED, Planned()).routes[outbox_id] = route(message.channel, message.recipient)
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


def route(channel: str, recipient: str) -> str:
    """Where a row goes, as its deliver job may carry it ("telegram:12345"): enough for the sender to take its place
    in the channel's rate limits while the row is being claimed, rather than after."""
    return f"{channel}:{recipient}"


def unroute(value: str) -> tuple[str, str]:
    channel, _, recipient = value.partition(":")
    return channel, recipient


@dataclass(frozen=True)
class Sending:
    """Who sends, and how: everything :func:`deliver` needs besides the row.

    ``senders``: the channels' senders. ``pacing``: the shared rate limits (a worker's, in Redis), asked before the
    send and told when the provider throttles; None: no limits. ``stale_after``: a row 'sending' for longer than
    this belongs to a dead sender and is claimed again. ``own_channels_only``: a row on a channel with no sender here
    is left alone (``skipped``, for a sender that has one) instead of failed. ``pool``: where the claim and the
    record of a sent row run (a worker's raw pool, see booking_core/db/queries/sending.py); None: on the caller's
    session. ``record_later`` (with a ``pool``): takes the record of a sent row, started, to finish while the
    caller goes on (a worker's job hands it over so that it completes while RQ files the job away); None: awaited.
    """

    senders: Mapping[Channel, Sender]
    pacing: Pacing | None = None
    stale_after: timedelta = STALE_AFTER
    own_channels_only: bool = False
    pool: RawDb | None = None
    record_later: Callable[[Coroutine[Any, Any, None]], None] | None = None

    def __post_init__(self) -> None:
        if self.record_later is not None and self.pool is None:
            raise ValueError("record_later needs a pool: the caller's session ends with deliver()")


async def _in_own_transaction(db: Db, pool: RawDb | None, statement: Callable[..., Coroutine[Any, Any, T]],
                              *args: Any, **values: Any) -> T:  # fmt: skip
    """One of the delivery's two statements (the claim, the record of a sent row), committed on its own: on the
    pool when there is one, else in a transaction of the session's."""
    if pool is not None:
        return await statement(pool, *args, **values)
    async with db.begin():
        return await statement(db, *args, **values)


async def deliver(db: Db, outbox_id: int, how: Sending, *, now: datetime | None = None) -> Outcome:
    """Claim, send and record one outbox row. ``db`` must not be in a transaction: each step commits on its own.

    What a failure does (the policy the README's "Reliability" section states):

    * throttled (429, ``retry_after``): the row waits, its attempt not counted, and so does everything after it on
      the channel and chat (``pacing.throttled``); throttling never fails a message;
    * uncertain (the request may have reached the provider, e.g. no answer within 60 s): sent at most once more;
      a second uncertain send gives it up, flagged for staff as "may have been delivered";
    * transient (5xx, the provider unreachable): retried with backoff; after :data:`MAX_ATTEMPTS` it is *parked*:
      listed for staff and sent again by the sweep as soon as the channel answers again (:func:`unpark`);
    * permanent (blocked, bad request): failed and listed for staff.
    """
    now = now or datetime.now(UTC)
    # One statement claims the row, keeps the person's messages in order and reads their 24-hour window (see
    # booking_core/db/queries/sending.py): a delivery's database work before the send is one round trip.
    row = await _in_own_transaction(
        db,
        how.pool,
        sending.claim_to_send,
        outbox_id,
        now=now,
        stale_before=now - how.stale_after,
        in_order_wait=IN_ORDER_WAIT,
        channels=list(how.senders) if how.own_channels_only else None,
    )
    if row is None:
        return Outcome("skipped", outbox_id)
    if row.status != "sending":
        # Keep the conversation in order: this one goes after the earlier message to the same person, which
        # may be waiting for its own retry (a 429's retry_after, a backoff after a 5xx).
        return Outcome("retry", outbox_id, retry_at=row.next_attempt_at, attempts=row.attempts)
    message = OutboundMessage.from_payload(row.payload)
    attempts = row.attempts
    sender = how.senders.get(message.channel)
    pacing = how.pacing
    if sender is None:
        return await _fail(db, outbox_id, f"no sender is configured for {message.channel}", attempts)
    if pacing is not None:
        try:
            await pacing.before_send(message)
        except Postpone as wait:
            return await _wait(db, outbox_id, wait.seconds, attempts)
    try:
        provider_id = await sender.send(dataclasses.replace(message, last_inbound_at=row.last_inbound_at))
    except DeliveryFailed as exc:
        return await _failed(db, outbox_id, exc, attempts, pacing=pacing, message=message, uncertain=row.uncertain_at)
    record = _record(functools.partial(_in_own_transaction, db, how.pool, sending.record_sent), outbox_id, provider_id)
    if how.record_later is None:
        await record
    else:
        how.record_later(record)
    return Outcome("sent", outbox_id, provider_id=provider_id, attempts=attempts)


async def _record(
    record: Callable[..., Coroutine[Any, Any, None]], outbox_id: int, provider_id: str, *, within: float = RECORD_FOR
) -> None:
    """Record a sent row, trying again while the database is away (a restart) for up to ``within`` seconds: the
    message is out, and a row left 'sending' would be sent again, as uncertain, once stale."""
    deadline = asyncio.get_running_loop().time() + within
    delay = 0.2
    while True:
        try:
            await record(outbox_id, provider_id=provider_id, at=datetime.now(UTC))
            return
        except _RECORD_AGAIN as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise
            log.warning("outbox row %s was sent; recording it failed (%s), trying again", outbox_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _wait(db: Db, outbox_id: int, seconds: float, attempts: int, *, error: str | None = None) -> Outcome:
    """Back to pending, unsent and its attempt uncounted, for ``seconds`` (a rate limit, a throttling provider)."""
    retry_at = datetime.now(UTC) + timedelta(seconds=seconds)
    values: dict[str, Any] = {
        "status": "pending",
        "next_attempt_at": retry_at,
        "locked_at": None,
        "attempts": attempts - 1,
    }
    if error is not None:
        values["last_error"] = error
    async with db.begin():
        await queries.finish(db, outbox_id, values)
    return Outcome("retry", outbox_id, retry_at=retry_at, error=error, attempts=attempts - 1)


async def _failed(
    db: Db,
    outbox_id: int,
    exc: DeliveryFailed,
    attempts: int,
    *,
    pacing: Pacing | None,
    message: OutboundMessage,
    uncertain: datetime | None,
) -> Outcome:
    """What a failed send leaves: see :func:`deliver` for the policy."""
    error = f"{exc.code or 'error'}: {exc}"
    if exc.throttled:
        assert exc.retry_after is not None
        if pacing is not None:
            await pacing.throttled(message, exc.retry_after)
        return await _wait(db, outbox_id, exc.retry_after, attempts, error=error)
    if exc.uncertain and uncertain is not None:
        return await _fail(db, outbox_id, f"{UNCERTAIN}: {error}", attempts)
    if not exc.transient:
        return await _fail(db, outbox_id, error, attempts)
    now = datetime.now(UTC)
    if attempts >= MAX_ATTEMPTS and not exc.uncertain:
        return await _fail(db, outbox_id, error, attempts, parked_at=now)
    retry_at = now + backoff(attempts)
    values: dict[str, Any] = {"status": "pending", "next_attempt_at": retry_at, "last_error": error, "locked_at": None}
    if exc.uncertain:
        values["uncertain_at"] = now
    async with db.begin():
        await queries.finish(db, outbox_id, values)
    return Outcome("retry", outbox_id, retry_at=retry_at, error=error, attempts=attempts)


async def _fail(db: Db, outbox_id: int, error: str, attempts: int, *, parked_at: datetime | None = None) -> Outcome:
    values: dict[str, Any] = {"status": "failed", "last_error": error, "locked_at": None, "parked_at": parked_at}
    async with db.begin():
        await queries.finish(db, outbox_id, values)
        await queries.record_failure(db, outbox_id=outbox_id, error=error)
    return Outcome("failed", outbox_id, error=error, attempts=attempts)


async def give_up_uncertain(db: Db, *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> int:
    """Rows left 'sending' a second time (their sender died after a send that may have gone out, again): given up,
    listed for staff as "may have been delivered", rather than sent a third time. Returns how many."""
    now = now or datetime.now(UTC)
    return await queries.give_up_uncertain(db, stale_before=now - stale_after, error=f"{UNCERTAIN}: its sender died")


async def unpark(db: Db, *, now: datetime | None = None) -> list[int]:
    """Parked rows (given up after the provider kept failing) of every channel that answers again — something on
    it was sent after they were parked — or that were parked :data:`PARKED_PROBE_AFTER` ago (a probe): pending
    again, with a fresh count of attempts. Returns their ids, for the caller to enqueue after commit."""
    now = now or datetime.now(UTC)
    return await queries.unpark(db, now=now, probe_before=now - PARKED_PROBE_AFTER)


async def due(
    db: Db, *, now: datetime | None = None, limit: int = 500, stale_after: timedelta = STALE_AFTER
) -> list[int]:
    """Ids a sweeper re-enqueues: due but unsent (Redis lost the job, a worker died: 'sending' for ``stale_after``)."""
    now = now or datetime.now(UTC)
    return await queries.due_ids(db, now=now, stale_before=now - stale_after, limit=limit)
