"""What a change to a visit leaves for others to do: thank the patient after a completed visit, offer a cancelled
visit's time to the waitlist.

The lifecycle service returns these as data with the change (``lifecycle.SessionChange``) instead of calling the
services that do them, which build on the lifecycle themselves (the waitlist books through ``booking``, the
confirmation link cancels through the lifecycle). Whoever owns the transaction runs them
(:func:`booking_core.services.followups.run`) in that same transaction, so they are planned exactly when the change
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class ThankYou:
    """A visit was completed: thank the patient and ask for their 1-5 rating (once per visit)."""

    session_id: int


@dataclass(frozen=True)
class OfferFreedTime:
    """A visit was cancelled: offer its time to the patients waiting for that day and examination."""

    session_id: int


FollowUp: TypeAlias = ThankYou | OfferFreedTime
