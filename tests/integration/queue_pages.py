"""Helpers for the queue board, scanner and public tracker tests: a clinic whose local time is about midday now.

Pages use the real clock, so each test's branch lives in a fixed-offset zone where it is now between 12:00 and
12:59: the morning's visits are today's, whatever time the suite runs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries.clinic import get_setting, put_setting
from booking_core.db.tables import ClinicSetting, Session, Staff
from booking_core.domain.actors import Actor
from booking_core.services import queue, queue_actions
from devtools.builders import Clinic, add_patient, build_clinic, insert_session, unique
from tests.integration.staff_pages import csrf_of, new_code

Client = TestClient[object, object]
DESK = Actor(kind="staff", name="Reception", role="staff")
_MISSING = object()


def midday_zone() -> str:
    """A fixed-offset zone where it is now between 12:00 and 12:59 (POSIX signs: Etc/GMT-7 is UTC+7)."""
    offset = 12 - datetime.now(UTC).hour
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


async def midday_clinic(db: AsyncSession, *, token_prefix: str = "A") -> Clinic:
    return await build_clinic(db, tz=midday_zone(), token_prefix=token_prefix)


def today(clinic: Clinic) -> date:
    return datetime.now(ZoneInfo(clinic.branch.tz)).date()


def at(clinic: Clinic, hour: int, minute: int = 0, *, day: date | None = None) -> datetime:
    """Today (or ``day``) at a local time of the clinic, as a UTC instant."""
    zone = ZoneInfo(clinic.branch.tz)
    return datetime.combine(day or today(clinic), time(hour, minute), zone).astimezone(UTC)


async def visit(
    db: AsyncSession,
    clinic: Clinic,
    starts_at: datetime,
    *,
    name: str | None = None,
    doctor: str = "andi",
    accepted: bool = True,
    status: str = "waiting",
    phone: str | None = None,
) -> Session:
    """A booked GP visit for a new patient (dr. Andi in Consultation 1, drg. Sari in Consultation 2)."""
    patient = await add_patient(db, name or unique("Pasien"), commit=False)
    if phone is not None:
        patient.phone_e164 = phone
    key = f"patient-{patient.id}"
    clinic.patients[key] = patient
    room = "consult-1" if doctor == "andi" else "consult-2"
    session = await insert_session(
        db, clinic, starts_at=starts_at, doctor=doctor, room=room, patient=key, status=status, commit=False
    )
    session.accepted = accepted
    await db.commit()
    return session


async def checked_in(db: AsyncSession, session: Session, arrived: datetime | None = None) -> queue.QueueTicket:
    """Check a visit in through the queue service (as the desk would), arriving at ``arrived`` (default now)."""
    ticket = await queue_actions.check_in(db, session.id, actor=DESK, arrived_at=arrived)
    await db.commit()
    return ticket


async def sign_in_doctor(client: Client, db: AsyncSession, clinic: Clinic, doctor: str = "andi") -> str:
    """Sign ``client`` in as the clinic's doctor (a staff member linked to the doctor); returns the CSRF token."""
    name = unique("dr")
    db.add(Staff(name=name, role="doctor", branch_id=clinic.branch.id, doctor_id=clinic.doctors[doctor].id))
    await db.commit()
    code = await new_code(db, "doctor", branch_id=clinic.branch.id, name=name)
    token = csrf_of(await (await client.get("/login")).text())
    response = await client.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return token


def tokens_in(html: str, list_id: str = "waiting-list") -> list[str]:
    """The queue tokens of one list on the board, in the order shown."""
    start = html.find(f'id="{list_id}"')
    if start < 0:
        return []
    end = html.find("</ol>", start)
    return re.findall(r'data-token="([A-Z]{1,3}-\d+)"', html[start:end])


def flash_of(html: str) -> str:
    found = re.search(r'<div id="flash"[^>]*>(.*?)</div>', html, re.S)
    return found.group(1).strip() if found else ""


@contextlib.asynccontextmanager
async def setting_kept(db: AsyncSession, key: str) -> AsyncIterator[None]:
    """Put a clinic-wide setting back as it was after the test (other tests expect the defaults)."""
    before: Any = await get_setting(db, key, _MISSING)
    await db.commit()
    try:
        yield
    finally:
        await db.rollback()
        if before is _MISSING:
            await db.execute(delete(ClinicSetting).where(ClinicSetting.key == key))
        else:
            await put_setting(db, key, before)
        await db.commit()
