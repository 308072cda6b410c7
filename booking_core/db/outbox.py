"""Everything that leaves us: the outbox, scheduled reminders, provider delivery states, failed jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_core.db.base import Base, now_column, one_of

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "skipped")
DELIVERY_STATES = ("queued", "sending", "sent", "delivered", "read", "failed", "undelivered")


class OutboxMessage(Base):
    """One message to send, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        one_of("status", OUTBOX_STATUSES),
        UniqueConstraint("dedupe_key"),
        Index("ix_outbox_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
        Index("ix_outbox_provider_id", "provider_id"),
        # "Is an earlier message to this person still to go?", asked by every delivery (messages arrive in order).
        Index(
            "ix_outbox_unsent_by_recipient",
            "channel",
            "recipient",
            "id",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        Index("ix_outbox_parked", "channel", "parked_at", postgresql_where=text("parked_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("channel_identities.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30), default="reply")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # text, buttons, image, template
    dedupe_key: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = now_column()
    locked_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(120))
    delivery_state: Mapped[str | None] = mapped_column(String(12))
    delivery_state_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = now_column()
    sent_at: Mapped[datetime | None]
    #: A send of this row may have reached the provider without our hearing back (see migration 0010).
    uncertain_at: Mapped[datetime | None]
    #: Given up because the provider kept failing; sent again once the channel answers again.
    parked_at: Mapped[datetime | None]


class Reminder(Base):
    """The database is the truth for reminders: Redis schedules are rebuilt from these rows."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("session_id", "kind"),
        one_of("status", ("scheduled", "sent", "skipped", "cancelled")),
        Index("ix_reminders_due", "due_at", postgresql_where=text("status = 'scheduled'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "24h", "2h", ...
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(9), default="scheduled")
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")


class DeliveryEvent(Base):
    """A provider's status callback, kept as received (out-of-order ones never move a state backwards)."""

    __tablename__ = "delivery_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    provider_id: Mapped[str] = mapped_column(String(120), index=True)
    state: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(20))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    received_at: Mapped[datetime] = now_column()


class JobFailure(Base):
    """A job that exhausted its retries, shown to staff with a retry button."""

    __tablename__ = "job_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_name: Mapped[str] = mapped_column(String(80))
    args: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    error: Mapped[str] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    failed_at: Mapped[datetime] = now_column()
    retried_at: Mapped[datetime | None]
