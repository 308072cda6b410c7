"""Twilio's message statuses in our words, and which one is "later" (pure: no I/O).

Twilio posts a status callback for each step of an outbound message, but not necessarily in order: "delivered"
can arrive before "sent", "read" before "delivered". A message only ever moves forward, in this order::

    queued < sending < sent < failed = undelivered < delivered < read

Failures are terminal: they win over every state that comes before a handset receipt (a message can be "sent"
and then fail to reach the phone). They do not win over "delivered" or "read": those are receipts from the
patient's phone, so the message did arrive, and a contradicting failure can only be a stale or confused
callback. Between "failed" and "undelivered" the first one recorded stays. Statuses we do not track ("receiving",
"partially_delivered", anything new) are recorded as ``unknown`` and never move a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

DeliveryState = Literal["queued", "sending", "sent", "delivered", "read", "failed", "undelivered"]
UNKNOWN: Final = "unknown"

#: The order above: a callback moves a message only to a state of strictly higher rank.
RANK: Final[Mapping[str, int]] = {
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "failed": 4,
    "undelivered": 4,
    "delivered": 5,
    "read": 6,
}

#: Twilio ``MessageStatus`` → our delivery state (the few extra Twilio words fold into ours).
TWILIO_STATES: Final[Mapping[str, DeliveryState]] = {
    "accepted": "queued",  # sent through a Messaging Service, not yet queued
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "undelivered",
    "canceled": "failed",  # a scheduled message that was cancelled never went out
}

FAILURES: Final = frozenset({"failed", "undelivered"})


def state_of(message_status: str) -> DeliveryState | None:
    """Our state for Twilio's ``MessageStatus`` (any case, surrounding space ignored); None if we do not track it."""
    return TWILIO_STATES.get(message_status.strip().lower())


def rank(state: str | None) -> int:
    """Position in the order; 0 for no state yet or an unknown one."""
    return RANK.get(state or "", 0)


def is_later(current: str | None, new: str) -> bool:
    """Whether a callback saying ``new`` moves a message that is at ``current`` (the SQL update mirrors this)."""
    return new in RANK and rank(current) < RANK[new]


@dataclass(frozen=True)
class StatusReport:
    """One status callback: which message (Twilio's sid), its new state, Twilio's error code, the form as sent."""

    provider_id: str
    state: str  # a DeliveryState, or UNKNOWN for a status we do not track
    status: str  # Twilio's own word, as sent
    error_code: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict)


def report_of(form: Mapping[str, str]) -> StatusReport:
    """Read a status callback form; ``ValueError`` when it names no message or no status."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip()
    if not sid or not status:
        raise ValueError("a status callback needs MessageSid and MessageStatus")
    error_code = (form.get("ErrorCode") or "").strip() or None
    return StatusReport(
        provider_id=sid,
        state=state_of(status) or UNKNOWN,
        status=status,
        error_code=error_code,
        raw=dict(form),
    )
