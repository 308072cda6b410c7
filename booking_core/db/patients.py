"""Patients, their channel identities, conversations, messages and booking leads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_core.db.base import Base, now_column, one_of
from booking_core.domain.messages import CHANNELS

LEAD_STATUSES = ("new", "accepted", "rejected", "converted")


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        # One living record per phone number; merged records keep theirs for history.
        Index(
            "uq_patients_phone_living",
            "phone_e164",
            unique=True,
            postgresql_where=text("merged_into_id IS NULL AND phone_e164 IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(200))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str | None] = mapped_column(String(5))
    notes: Mapped[str] = mapped_column(Text, default="")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = now_column()


class ChannelIdentity(Base):
    """How a patient is reached on one channel: a Telegram chat id, a WhatsApp number, a web-chat visitor."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"), one_of("channel", CHANNELS))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str] = mapped_column(String(120))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    language_code: Mapped[str | None] = mapped_column(String(10))
    last_inbound_at: Mapped[datetime | None]  # WhatsApp's 24-hour window starts here
    created_at: Mapped[datetime] = now_column()


class Conversation(Base):
    """One thread with one identity; carries the chatbot's state and the staff handoff flag."""

    __tablename__ = "conversations"
    __table_args__ = (
        one_of("status", ("open", "closed")),
        # One open conversation per identity, even when two messages of a new chat arrive at once.
        Index("uq_conversations_open_identity", "identity_id", unique=True, postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("channel_identities.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(6), default="open")
    language: Mapped[str] = mapped_column(String(5), default="en")
    bot_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    dialog_state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    last_message_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = now_column()


class Message(Base):
    """Every inbound message is here before the provider gets its 2xx (unique on channel + external id)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        one_of("direction", ("in", "out")),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index(
            "ix_messages_unprocessed",
            "created_at",
            postgresql_where=text("direction = 'in' AND processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    direction: Mapped[str] = mapped_column(String(3))
    external_id: Mapped[str | None] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    author: Mapped[str] = mapped_column(String(10), default="patient")  # patient | bot | staff
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    processed_at: Mapped[datetime | None]  # inbound: the dialog has answered it (a sweeper retries the rest)
    created_at: Mapped[datetime] = now_column()


class Lead(Base):
    """A booking request from any channel, waiting in the staff inbox."""

    __tablename__ = "leads"
    __table_args__ = (one_of("status", LEAD_STATUSES), one_of("channel", CHANNELS))

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default="new", index=True)
    # Indexed: every inbound message of a known chat looks up its conversation's open lead.
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("channel_identities.id", ondelete="SET NULL"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"), index=True)
    examination_id: Mapped[int | None] = mapped_column(ForeignKey("examinations.id", ondelete="SET NULL"))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id", ondelete="SET NULL"))
    requested_start: Mapped[datetime | None]
    requested_text: Mapped[str] = mapped_column(Text, default="")
    contact_name: Mapped[str] = mapped_column(String(120), default="")
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("slot_holds.id", ondelete="SET NULL"))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()
