"""Failures are visible: messages that could not be delivered and jobs that exhausted their retries.

Staff see them with the provider's error, the channel, a masked recipient and the conversation or lead they
belong to, and can send a failed message again: the row goes back to pending with a fresh set of attempts (so a
provider that is still having a bad minute gets the whole backoff again, not one last try), its open job failures
are marked retried, the attempts it had used and its last error are kept in the audit row (``last_error`` stays
on the row until it is sent), and the caller enqueues a delivery job after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from booking_core.db.engine import Db
from booking_core.db.queries import failures as queries
from booking_core.domain.actors import Actor
from booking_core.domain.codes import mask_phone
from booking_core.services import audit
from booking_core.services.errors import Conflict, NotFound


@dataclass(frozen=True)
class Failure:
    """One thing that did not go out. ``outbox_id`` is None for a job that is not a message delivery."""

    outbox_id: int | None
    job_failure_id: int | None
    job_name: str
    kind: str | None
    channel: str | None
    recipient: str | None  # masked
    error: str
    attempts: int
    failed_at: datetime
    conversation_id: int | None
    lead_id: int | None
    session_id: int | None
    branch_id: int | None
    retryable: bool
    #: A send of it may have reached the patient (no answer in time, or its sender died): check before retrying.
    maybe_delivered: bool = False
    #: Given up because the provider kept failing; it goes out by itself once the channel answers again.
    waits_for_channel: bool = False


@dataclass(frozen=True)
class Retried:
    outbox_id: int
    attempts: int  # the attempts it had used when it failed; it starts again from none
    retry: int  # 1 for the first time staff retried this row, 2 for the second, ...
    job_id: str  # the delivery job to enqueue after commit
    failures_closed: int


def mask_recipient(channel: str, recipient: str) -> str:
    """Phone numbers keep their country code and last four digits; chat and visitor ids their last four."""
    value = recipient.removeprefix("whatsapp:")
    if value.startswith("+"):
        return mask_phone(value)
    tail = value[-4:] if len(value) > 8 else value[-2:]
    return f"••••{tail}"


async def list_failures(db: Db, *, actor: Actor, limit: int = 100) -> list[Failure]:
    """Newest first. Branch staff see their branch's failures and those no branch is known for."""
    only = actor.branch_id if actor.kind == "staff" and actor.branch_id is not None else None
    found: list[Failure] = []
    for row in await queries.failed_outbox(db, only_branch=only, limit=limit):
        message = row[0]
        found.append(
            Failure(
                outbox_id=message.id,
                job_failure_id=row.job_failure_id,
                job_name="deliver",
                kind=message.kind,
                channel=message.channel,
                recipient=mask_recipient(message.channel, message.recipient),
                error=row.job_error or message.last_error or "failed",
                attempts=message.attempts,
                failed_at=row.failed_at,
                conversation_id=message.conversation_id,
                lead_id=row.lead_id,
                session_id=row.session_id,
                branch_id=row.branch_id,
                retryable=True,
                maybe_delivered=message.uncertain_at is not None,
                waits_for_channel=message.parked_at is not None,
            )
        )
    for job in await queries.failed_jobs(db, limit=limit):
        found.append(
            Failure(
                outbox_id=None,
                job_failure_id=job.id,
                job_name=job.job_name,
                kind=None,
                channel=None,
                recipient=None,
                error=job.error,
                attempts=0,
                failed_at=job.failed_at,
                conversation_id=None,
                lead_id=None,
                session_id=None,
                branch_id=None,
                retryable=False,
            )
        )
    found.sort(key=lambda f: (f.failed_at, f.outbox_id or 0, f.job_failure_id or 0), reverse=True)
    return found[:limit]


async def retry(db: Db, outbox_id: int, *, actor: Actor, now: datetime | None = None) -> Retried:
    """Put a failed message back to pending with a fresh set of attempts and close its job failures; 409 unless it
    failed. The attempts it used and its last error go into the audit row."""
    now = now or datetime.now(UTC)
    scope = await queries.outbox_scope(db, outbox_id)
    if scope is None or not actor.can_see_branch(scope.branch_id):
        raise NotFound("not_found", f"There is no failed message {outbox_id}.")
    before = await queries.reset_failed(db, outbox_id, now=now)
    if before is None:  # not failed, or another click retried it a moment ago
        current = await queries.outbox_scope(db, outbox_id)
        status = current.status if current is not None else "gone"
        if status == "sent":
            raise Conflict("already_sent", "That message was sent; there is nothing to retry.")
        raise Conflict("not_failed", f"That message is {status}, not failed; there is nothing to retry.")
    closed = await queries.mark_retried(db, outbox_id, now=now)
    number = await queries.retries_so_far(db, outbox_id) + 1
    audit.record(
        db,
        actor,
        "outbox.retried",
        "outbox",
        outbox_id,
        {"attempts": before.attempts, "last_error": before.last_error, "retry": number, "failures_closed": closed},
    )
    return Retried(outbox_id, before.attempts, number, f"deliver-{outbox_id}-retry-{number}", closed)
