"""Errors that reach the client: JSON on the API, a readable page elsewhere, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An expected refusal with a stable machine code, e.g. ``ApiError(409, "slot_taken", "...")``."""

    def __init__(
        self, status: int, code: str, message: str, *, details: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        #: Sent with the error response, e.g. ``Retry-After`` on a 429.
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}
