"""Permanent delete of a session: the confirmation an owner types, and the snapshot that outlives the session.

An invoice is financial history, so it is never deleted with its session: it keeps a snapshot of who, what,
where and when, written here as plain JSON-able data so it stays readable after every row it pointed at is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from booking_core.domain.money import money_str

__all__ = ["ArchivedLine", "ArchivedSession", "confirmation_matches", "confirmation_phrase"]

_CONFIRM_VERB = "DELETE"


def confirmation_phrase(booking_code: str) -> str:
    """The exact phrase an owner types to delete a session for good, e.g. ``DELETE K7Q2M9XA``."""
    return f"{_CONFIRM_VERB} {booking_code}"


def confirmation_matches(given: str | None, booking_code: str) -> bool:
    """Whether ``given`` is the confirmation phrase for ``booking_code``.

    Only surrounding whitespace is forgiven: the point is that the owner typed *this* session's code on purpose,
    so a different case, a missing code or another session's code does not count.
    """
    if given is None:
        return False
    return given.strip() == confirmation_phrase(booking_code)


@dataclass(frozen=True)
class ArchivedLine:
    """One examination or consumable as it was on the deleted session."""

    kind: str
    name: str
    quantity: int
    unit_price: Decimal
    examination_id: int | None = None


@dataclass(frozen=True)
class ArchivedSession:
    """What a deleted session was: enough to read its invoice without the session, patient or doctor rows."""

    session_id: int
    booking_code: str
    status: str
    branch_id: int
    branch_name: str
    patient_id: int
    patient_name: str
    doctor_id: int
    doctor_name: str
    room_name: str
    starts_at: datetime
    ends_at: datetime
    currency: str
    lines: tuple[ArchivedLine, ...] = ()
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "started_at", "ended_at", "cancelled_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        object.__setattr__(self, "lines", tuple(self.lines))

    def to_dict(self) -> dict[str, object]:
        """JSON-able snapshot: times as ISO 8601 with offset, money as strings in the currency's minor units."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "session_id": self.session_id,
            "booking_code": self.booking_code,
            "status": self.status,
            "branch": {"id": self.branch_id, "name": self.branch_name},
            "patient": {"id": self.patient_id, "name": self.patient_name},
            "doctor": {"id": self.doctor_id, "name": self.doctor_name},
            "room": self.room_name,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "cancelled_at": iso(self.cancelled_at),
            "cancel_reason": self.cancel_reason,
            "currency": self.currency,
            "examinations": [
                {
                    "kind": line.kind,
                    "examination_id": line.examination_id,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": money_str(line.unit_price, self.currency),
                }
                for line in self.lines
            ],
        }
