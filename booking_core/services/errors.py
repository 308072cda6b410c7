"""Refusals a use case can give. The gateway turns them into 4xx answers with the same code and message."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An expected refusal: a stable ``code`` for clients and a message safe to show to staff or patients."""

    status = 400

    def __init__(self, code: str, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class NotFound(ServiceError):
    """Unknown id, or an id of a branch the caller may not see (never reveal which)."""

    status = 404


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    """The request is valid but the clinic's state refuses it (slot taken, already converted, ...)."""

    status = 409


class Invalid(ServiceError):
    """The request breaks a clinic rule (end before start, outside the horizon, wrong currency precision, ...)."""

    status = 422
