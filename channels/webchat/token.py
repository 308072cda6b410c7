"""Signed visitor tokens: the web-chat visitor keeps one in localStorage and shows it on every connection.

The token is the visitor id signed with SECRET_KEY (itsdangerous, with a timestamp), so a visitor cannot claim
somebody else's conversation by guessing ids. Anything missing, forged, expired or malformed reads as None and the
caller starts a new visitor.
"""

from __future__ import annotations

import re
import uuid

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "frontdesk.webchat.visitor"
#: A visitor who has not chatted for half a year starts again (the token is renewed on every connection).
MAX_AGE_SECONDS = 180 * 24 * 3600
_VISITOR_ID = re.compile(r"^[0-9a-f]{32}$")


def new_visitor_id() -> str:
    """A fresh, unguessable visitor id (32 hex characters)."""
    return uuid.uuid4().hex


class VisitorTokens:
    """Issues and reads visitor tokens for one secret."""

    def __init__(self, secret: str, *, max_age: int = MAX_AGE_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self._max_age = max_age

    def issue(self, visitor_id: str) -> str:
        """The signed token for ``visitor_id``."""
        if not _VISITOR_ID.match(visitor_id):
            raise ValueError("not a visitor id")
        return self._serializer.dumps({"v": visitor_id})

    def read(self, token: object) -> str | None:
        """The visitor id inside a valid token, else None (never raises on client input)."""
        if not isinstance(token, str) or not 0 < len(token) <= 512:
            return None
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        visitor_id = data.get("v") if isinstance(data, dict) else None
        if not isinstance(visitor_id, str) or not _VISITOR_ID.match(visitor_id):
            return None
        return visitor_id
