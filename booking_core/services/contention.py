"""Bookings racing inside one process: identical requests share one transaction, overlapping ones take turns.

Fifty requests for one slot arriving at once in one gateway used to run fifty transactions, and the forty-nine
losers each paid for a claim the database refused plus a fresh availability read for their alternatives: all of it
Python work in one event loop, so the last answer came after everybody's work. Two process-local helpers cut that:

* **Single flight.** While a booking is in flight, an *identical* request (same caller, branch, patient,
  examinations, start, doctor, room, lead) waits for its outcome instead of running its own transaction. A refusal
  is shared as is; a booking that committed leaves the followers to ask once, together, whether the time is still
  free (another doctor or room) - if not they answer ``slot_taken`` with those alternatives, if so they book on
  their own. A leader that failed for any other reason (or rolled back) shares nothing: followers run their own.
* **Turns.** A booking whose time overlaps a claim still in flight in this process on the same doctor or room
  (or on the same branch, when no doctor is named) waits for that claim's transaction to end before it reads
  availability - what PostgreSQL would make it do at the insert anyway, but before spending work on a read that
  would be out of date. The loser then learns at its availability check that the time is gone.

Neither is needed for correctness: the exclusion constraints stay the authority. Waiting is bounded
(:data:`WAIT_SECONDS`), after which the request simply goes ahead and lets the database decide. State is kept per
event loop, so tests and workers running several loops never share it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from booking_core.db.engine import Db
from booking_core.db.queries import booking as queries
from booking_core.services.errors import ServiceError

T = TypeVar("T")

#: How long a request waits for another's transaction before going ahead on its own (the database still decides).
WAIT_SECONDS = 5.0


@dataclass
class Counts:
    """Process-wide counts (metrics, tests): requests that waited for an identical one, how many of those then ran
    their own transaction because the one they waited for failed, and how many are waiting right now."""

    followed: int = 0
    on_their_own: int = 0
    waiting: int = 0


COUNTS = Counts()


@dataclass(eq=False)
class _Flight:
    """One booking in flight: the followers' shared view of how it ended."""

    owner: object
    outcome: asyncio.Future[ServiceError | bool]  # a refusal, True (committed), False (failed or rolled back)
    after: dict[Hashable, asyncio.Future[object]] = field(default_factory=dict)


@dataclass(eq=False)
class Turn:
    """Time a transaction in this process is about to claim (or has claimed and not yet committed)."""

    owner: object
    branch_id: int
    doctor_id: int | None
    room_id: int | None
    start: datetime
    end: datetime
    done: asyncio.Future[None]
    registered: bool = False

    def blocks(self, other: Turn) -> bool:
        if self.owner is other.owner or not (self.start < other.end and other.start < self.end):
            return False
        if self.doctor_id is None or other.doctor_id is None:
            return self.branch_id == other.branch_id
        return self.doctor_id == other.doctor_id or (self.room_id is not None and self.room_id == other.room_id)


@dataclass(eq=False)
class _Read:
    since: int
    result: asyncio.Future[object]


@dataclass
class _State:
    flights: dict[Hashable, _Flight] = field(default_factory=dict)
    claims: list[Turn] = field(default_factory=list)
    ended: int = 0  # claims given back so far: a read begun at ``ended == n`` saw the end of the first n
    reads: dict[Hashable, _Read] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State] = weakref.WeakKeyDictionary()


def _state() -> _State:
    loop = asyncio.get_running_loop()
    state = _STATES.get(loop)
    if state is None:
        state = _STATES[loop] = _State()
    return state


def _settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def copy_refusal(refusal: ServiceError) -> ServiceError:
    """A fresh exception with the same answer (one exception object must not be raised by several tasks)."""
    return type(refusal)(refusal.code, refusal.message, details=refusal.details)


@dataclass
class Follow:
    """What a follower learnt: the leader's refusal, or that it booked (``flight`` to share the follow-up), or
    nothing (the leader failed, or waited too long): then the follower runs its own transaction."""

    refusal: ServiceError | None = None
    booked: _Flight | None = None


async def follow(db: Db, key: Hashable) -> Follow | None:
    """If an identical booking is in flight in another transaction, wait for it; None if there is none."""
    flight = _state().flights.get(key)
    if flight is None or flight.owner is queries.same_transaction_owner(db):
        return None
    COUNTS.followed += 1
    COUNTS.waiting += 1
    try:
        outcome: ServiceError | bool = await asyncio.wait_for(asyncio.shield(flight.outcome), WAIT_SECONDS)
    except TimeoutError:
        outcome = False
    finally:
        COUNTS.waiting -= 1
    if isinstance(outcome, ServiceError):
        return Follow(refusal=copy_refusal(outcome))
    if not outcome:
        COUNTS.on_their_own += 1
        return Follow()
    return Follow(booked=flight)


async def shared(flight: _Flight, key: Hashable, compute: Callable[[], Awaitable[object]]) -> object:
    """``compute()`` once for the followers of ``flight`` asking ``key``; if it fails, each computes its own."""
    pending = flight.after.get(key)
    if pending is not None:
        try:
            return await asyncio.wait_for(asyncio.shield(pending), WAIT_SECONDS)
        except Exception:
            return await compute()
    pending = flight.after[key] = asyncio.get_running_loop().create_future()
    try:
        result = await compute()
    except BaseException as exc:
        del flight.after[key]
        if not pending.done():
            pending.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            pending.exception()  # retrieved: followers that are not waiting must not log it as lost
        raise
    pending.set_result(result)
    return result


def lead(db: Db, key: Hashable) -> _Flight:
    """Register this transaction as the one running ``key``; :func:`land` or :func:`crash` says how it ended."""
    state = _state()
    flight = _Flight(owner=queries.same_transaction_owner(db), outcome=asyncio.get_running_loop().create_future())
    state.flights[key] = flight
    return flight


def _end(key: Hashable, flight: _Flight, outcome: ServiceError | bool) -> None:
    state = _STATES.get(flight.outcome.get_loop())
    if state is not None and state.flights.get(key) is flight:
        del state.flights[key]
    _settle(flight.outcome, outcome)


def crash(key: Hashable, flight: _Flight, refusal: ServiceError | None) -> None:
    """The leader was refused (shared with followers) or failed otherwise (None: followers run on their own)."""
    _end(key, flight, refusal if refusal is not None else False)


def land(db: Db, key: Hashable, flight: _Flight) -> None:
    """The leader booked: followers learn whether it counts when its transaction commits or rolls back."""
    queries.on_transaction_end(db, lambda committed: _end(key, flight, committed))


def turn(
    db: Db,
    *,
    branch_id: int,
    doctor_id: int | None,
    room_id: int | None,
    start: datetime,
    end: datetime,
) -> Turn:
    """The time this booking means to claim (not yet registered: see :func:`wait` and :func:`take`)."""
    loop = asyncio.get_running_loop()
    return Turn(queries.same_transaction_owner(db), branch_id, doctor_id, room_id, start, end, loop.create_future())


def blocked(claim: Turn) -> bool:
    """Whether another transaction in this process has an overlapping claim in flight."""
    return any(other.blocks(claim) for other in _state().claims)


async def wait(claim: Turn) -> bool:
    """Wait until no other transaction in this process has an overlapping claim in flight; whether it had to.

    Bounded by :data:`WAIT_SECONDS`: after that the booking goes ahead and lets the database decide.
    """
    state = _state()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    waited = False
    while True:
        blockers = [other.done for other in state.claims if other.blocks(claim)]
        remaining = deadline - loop.time()
        if not blockers or remaining <= 0:
            return waited
        waited = True
        await asyncio.wait(blockers, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)


def take(claim: Turn) -> None:
    """Register the claim: overlapping bookings in this process wait for it (see :func:`give_back`)."""
    claim.registered = True
    _state().claims.append(claim)


def give_back(claim: Turn) -> None:
    """The claim is over (refused, failed, committed or rolled back): wake whoever waits for it."""
    state = _STATES.get(claim.done.get_loop())
    if state is not None and claim in state.claims:
        state.claims.remove(claim)
        state.ended += 1
    _settle(claim.done, None)


def mark() -> int:
    """Where this process is in the claims that ended: pass it to :func:`read_once` after waiting."""
    return _state().ended


async def read_once(key: Hashable, since: int, load: Callable[[], Awaitable[T]]) -> T:
    """``load()``, or the result of an identical read already in flight that began after ``since`` (see :func:`mark`).

    Bookings that waited for the same claim to end read the same rows right after it: one read serves them all. A
    read that began before the claim we waited for ended may not show it, so it is not joined.
    """
    state = _state()
    current = state.reads.get(key)
    if current is not None and current.since >= since:
        try:  # bounded: the one reading may itself wait for a pooled connection that a waiter here holds
            return await asyncio.wait_for(asyncio.shield(current.result), WAIT_SECONDS)  # type: ignore[arg-type]
        except Exception:
            return await load()
    read = state.reads[key] = _Read(state.ended, asyncio.get_running_loop().create_future())
    try:
        result = await load()
    except BaseException as exc:
        read.result.set_exception(exc if isinstance(exc, Exception) else RuntimeError("read cancelled"))
        read.result.exception()  # retrieved: nobody may be waiting for it
        raise
    else:
        read.result.set_result(result)
        return result
    finally:
        if state.reads.get(key) is read:
            del state.reads[key]


def hold_until_transaction_end(db: Db, claim: Turn) -> None:
    queries.on_transaction_end(db, lambda _committed: give_back(claim))
