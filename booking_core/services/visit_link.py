"""The patient's link to their visit's page, ``PUBLIC_BASE_URL/c/<token>``.

The token is signed with ``SECRET_KEY`` (itsdangerous, its own salt) and names the session *and* its booking code,
valid until a day after the visit ends. A tampered, expired or foreign token reads as nothing (:func:`read_link`);
one whose session is gone or carries another code opens nothing either
(:func:`booking_core.services.confirmation.open_link` → 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

from booking_core.db.tables import Session
from booking_core.domain.links import link_expires_at

__all__ = ["LINK_SALT", "MAX_LINK_AGE", "LinkClaim", "link_token", "link_url", "read_link", "token_for"]

LINK_SALT = "frontdesk.confirmation-link"
#: However far ahead a visit is booked, no link is honoured longer than this after it was made.
MAX_LINK_AGE = timedelta(days=400)


@dataclass(frozen=True)
class LinkClaim:
    """What a valid token says: which session (by id and booking code), until when."""

    session_id: int
    booking_code: str
    expires_at: datetime


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=LINK_SALT)


def link_token(secret: str, session_id: int, booking_code: str, *, expires_at: datetime) -> str:
    """A signed token for the session's page, good until ``expires_at`` (normally the visit's end + 1 day)."""
    return str(_serializer(secret).dumps({"s": session_id, "c": booking_code, "x": int(expires_at.timestamp())}))


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"


def read_link(secret: str, token: object, *, now: datetime | None = None) -> LinkClaim | None:
    """The claim of a genuine, unexpired token; None for anything else (never an error)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 400:
        return None
    try:
        data = _serializer(secret).loads(token, max_age=int(MAX_LINK_AGE.total_seconds()))
    except BadSignature:  # also SignatureExpired and BadPayload
        return None
    if not isinstance(data, dict):
        return None
    session_id, code, expires = data.get("s"), data.get("c"), data.get("x")
    if not (isinstance(session_id, int) and session_id > 0 and isinstance(code, str) and isinstance(expires, int)):
        return None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        return None
    return LinkClaim(session_id, code, expires_at)


def token_for(secret: str, session: Session) -> str:
    return link_token(secret, session.id, session.booking_code, expires_at=link_expires_at(session.ends_at))
