"""Small helpers every API module uses: a transaction per request, the caller, branch scoping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from aiohttp import web

from booking_core.db.engine import Db
from booking_core.db.tables import Session
from booking_core.domain.actors import Actor
from booking_core.services import followups, outbox
from booking_core.services.errors import NotFound
from booking_core.services.lifecycle import SessionChange
from gateway.auth import actor_of
from gateway.jobs import deliver
from gateway.keys import SESSIONMAKER, SETTINGS

log = logging.getLogger(__name__)


@asynccontextmanager
async def transaction(request: web.Request) -> AsyncIterator[Db]:
    """One database transaction for the request: committed on success, rolled back on any error.

    Messages the change planned (outbox rows) are handed to the workers right after the commit, so a patient hears
    about a staff action at once rather than at the next sweep.
    """
    async with request.app[SESSIONMAKER]() as db:
        async with db.begin():
            yield db
        planned = outbox.take_planned(db)
    if planned:
        try:
            await deliver(request.app, planned.ids, planned.routes)
        except Exception:  # Redis down: the rows are committed and the sweep sends them
            log.warning("could not queue delivery of outbox rows %s; the sweep will", planned.ids)


async def follow_up(request: web.Request, db: Db, change: SessionChange) -> Session:
    """Run what a change to a visit left to do (the thank-you, the waitlist offer) in the request's transaction;
    the changed session."""
    await followups.run(db, change.follow_ups, default_language=request.app[SETTINGS].DEFAULT_LANGUAGE)
    return change.session


class PatientFacing(TypedDict):
    booking_link: str
    default_language: str


def patient_facing(request: web.Request) -> PatientFacing:
    """What services need to write to patients from a staff action: the public booking form and default language."""
    settings = request.app[SETTINGS]
    return PatientFacing(booking_link=f"{settings.PUBLIC_BASE_URL}/book", default_language=settings.DEFAULT_LANGUAGE)


def caller(request: web.Request) -> Actor:
    return actor_of(request)


def check_branch(actor: Actor, branch_id: int | None, what: str = "branch") -> None:
    """Staff tied to one branch get 404 for another branch's ids (IDOR): never reveal that the id exists."""
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no such {what}.")
