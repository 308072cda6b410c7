"""The front desk during a scenario: the staff API (signed in with a login code), the demo clinic's ids, and
patients who chat on Telegram or WhatsApp."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import select

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import Branch, ChannelIdentity, Doctor, Examination, Patient, Room
from devtools import builders
from tests.chaos.stack import Stack

JAKARTA = ZoneInfo("Asia/Jakarta")


@dataclass
class Desk:
    http: aiohttp.ClientSession
    base: str
    headers: dict[str, str]

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.http.request(method, f"{self.base}/api/v1{path}", json=body, headers=self.headers) as response:
            text = await response.text()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, text

    async def expect(self, method: str, path: str, body: dict[str, Any] | None = None, *, status: int = 200) -> Any:
        got, answer = await self.call(method, path, body)
        assert got == status, (method, path, got, answer)
        return answer


async def desk(stack: Stack, http: aiohttp.ClientSession) -> Desk:
    base = stack.gateways[0].base
    assert base is not None
    return Desk(http, base, await stack.staff_token(http))


@dataclass
class Clinic:
    """Ids of the demo clinic (``seed_demo``) a scenario books into."""

    kemang: int
    exams: dict[str, int]
    doctors: dict[str, int]  # by first name after the title: andi, sari, budi, maya
    rooms: dict[str, int]  # Kemang's, by name


async def clinic(stack: Stack) -> Clinic:
    [branch] = await stack.query("SELECT id FROM branches WHERE code = 'KMG'")
    exams = {r["code"]: r["id"] for r in await stack.query("SELECT id, code FROM examinations")}
    doctors = {
        r["name"].split()[1].lower().rstrip(","): r["id"] for r in await stack.query("SELECT id, name FROM doctors")
    }
    rooms = {
        r["name"]: r["id"] for r in await stack.query("SELECT id, name FROM rooms WHERE branch_id = $1", branch["id"])
    }
    return Clinic(branch["id"], exams, doctors, rooms)


def weekday_at(weekday: int, hour: int, minute: int = 0, *, weeks: int = 1) -> datetime:
    """A time in Jakarta on the given weekday (0 = Monday) at least ``weeks`` weeks ahead, as UTC."""
    today = datetime.now(JAKARTA).date()
    day = today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks)
    return datetime.combine(day, time(hour, minute), JAKARTA).astimezone(UTC)


def local_day(moment: datetime) -> date:
    return moment.astimezone(JAKARTA).date()


async def patient_on(stack: Stack, channel: str, external_id: str, name: str) -> tuple[int, int]:
    """A patient of the clinic who chats on ``channel`` as ``external_id``: (patient id, identity id)."""
    phone = external_id if channel == "whatsapp" else f"+62815{secrets.randbelow(10**8):08d}"
    engine = make_engine(stack.env["DATABASE_URL"], pool_size=1)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            patient = Patient(name=name, phone_e164=phone, language="en")
            db.add(patient)
            await db.flush()
            identity = ChannelIdentity(patient_id=patient.id, channel=channel, external_id=external_id,
                                       display_name=name.split()[0], last_inbound_at=datetime.now(UTC))  # fmt: skip
            db.add(identity)
            await db.flush()
            return patient.id, identity.id
    finally:
        await engine.dispose()


async def session_today(stack: Stack, patient_id: int, *, slot: int) -> int:
    """A waiting, accepted session of dr. Andi later today (written straight into the tables, as the builders do:
    the demo's doctors may have gone home at the hour the suite runs), for the queue: check-in and call-next."""
    now = datetime.now(JAKARTA).replace(second=0, microsecond=0)
    # Slot n of today, 40 minutes apart (a visit is 30): from 20 minutes on, or from 01:00 when the day is nearly over.
    first = now + timedelta(minutes=20) if now.hour < 20 else now.replace(hour=1, minute=0)
    starts = first + timedelta(minutes=40 * slot)
    engine = make_engine(stack.env["DATABASE_URL"], pool_size=1)
    try:
        async with make_sessionmaker(engine)() as db:
            branch = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
            andi = (await db.execute(select(Doctor).where(Doctor.name.like("dr. Andi%")))).scalar_one()
            room = (await db.execute(select(Room).where(Room.branch_id == branch.id,
                                                        Room.name == "Consultation 2"))).scalar_one()  # fmt: skip
            gp = (await db.execute(select(Examination).where(Examination.code == "GP"))).scalar_one()
            patient = await db.get(Patient, patient_id)
            assert patient is not None
            clinic = builders.Clinic(branch=branch, rooms={"consult-2": room}, doctors={"andi": andi},
                                     examinations={"GP": gp}, patients={"one": patient})  # fmt: skip
            visit = await builders.insert_session(db, clinic, starts_at=starts.astimezone(UTC).replace(microsecond=0),
                                                  room="consult-2", patient="one")  # fmt: skip
    finally:
        await engine.dispose()
    # Accepted (the patient confirmed it): only an accepted visit checks in.
    await stack.query("UPDATE sessions SET accepted = true, confirmed_at = now() WHERE id = $1", visit.id)
    return visit.id
