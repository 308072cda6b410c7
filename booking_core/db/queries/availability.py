"""Everything availability needs for one branch, examination and period, in a fixed number of queries.

The number of queries does not depend on the length of the period or the number of doctors (B4 checks it): the
branch and examination rows (usually already in the session), then one statement for the rest - branch hours, the
examinations' branches/doctors/windows, attendance (weekly, overrides, accepted applications), rooms, busy claims
and blackouts. A visit of several examinations reads them together: the doctors who do every one of them, the
branches that offer every one, and each one's windows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, NamedTuple

from sqlalchemy import Date, DateTime, Integer, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, Range
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, Doctor, Examination, Room


class HoursRow(NamedTuple):
    weekday: int
    opens: time
    closes: time


class WindowRow(NamedTuple):
    examination_id: int
    weekday: int
    starts: time
    ends: time


class DoctorRow(NamedTuple):
    id: int
    name: str


class RoomRow(NamedTuple):
    id: int
    kind: str


class BlackoutRow(NamedTuple):
    starts_at: datetime
    ends_at: datetime
    scope: str
    branch_id: int
    doctor_id: int | None
    room_id: int | None
    reason: str


@dataclass(frozen=True)
class AvailabilityRows:
    branch: Branch
    hours: list[HoursRow]
    examinations: tuple[Examination, ...]
    offered_at: set[int]
    windows: list[WindowRow]
    doctors: list[DoctorRow]
    weekly: list[Any]  # (doctor_id, weekday, starts, ends)
    overrides: list[Any]  # (doctor_id, day, starts, ends)
    applications: list[Any]  # accepted only: (doctor_id, day, starts, ends)
    rooms: list[RoomRow]
    busy: list[Any]  # (doctor_id, room_id, during, kind)
    blackouts: list[BlackoutRow]


async def load_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def load_examination(db: AsyncSession, examination_id: int) -> Examination | None:
    return await db.get(Examination, examination_id)


# Everything in one statement and one round trip, as one JSON document: a booking under contention, the chatbot and
# the availability API read this for every request, and ten separate ORM queries cost ten times the driver's and
# SQLAlchemy's per-statement work (about 10 ms of CPU against 1 ms; B4, B7).
_LOAD = text(
    """
WITH docs AS (
    SELECT d.id, d.name FROM doctors d
    JOIN examination_doctors ed ON ed.doctor_id = d.id
    WHERE ed.examination_id = ANY(:examination_ids) AND d.active
      AND (CAST(:doctor_ids AS integer[]) IS NULL OR d.id = ANY(CAST(:doctor_ids AS integer[])))
    GROUP BY d.id, d.name HAVING count(DISTINCT ed.examination_id) = cardinality(:examination_ids)
), rms AS (
    SELECT id, kind FROM rooms WHERE branch_id = :branch_id AND active
)
SELECT json_build_object(
    'hours', (SELECT json_agg(json_build_array(weekday, opens, closes) ORDER BY id)
              FROM branch_hours WHERE branch_id = :branch_id),
    'offered', (SELECT json_agg(branch_id) FROM (
                    SELECT branch_id FROM examination_branches WHERE examination_id = ANY(:examination_ids)
                    GROUP BY branch_id HAVING count(DISTINCT examination_id) = cardinality(:examination_ids)) b),
    'windows', (SELECT json_agg(json_build_array(examination_id, weekday, starts, ends) ORDER BY id)
                FROM examination_windows WHERE examination_id = ANY(:examination_ids)),
    'doctors', (SELECT json_agg(json_build_array(id, name) ORDER BY id) FROM docs),
    'weekly', (SELECT json_agg(json_build_array(doctor_id, weekday, starts, ends) ORDER BY id)
               FROM doctor_attendance WHERE branch_id = :branch_id AND doctor_id IN (SELECT id FROM docs)),
    'overrides', (SELECT json_agg(json_build_array(doctor_id, day, starts, ends) ORDER BY id)
                  FROM attendance_overrides
                  WHERE branch_id = :branch_id AND doctor_id IN (SELECT id FROM docs)
                    AND day BETWEEN :first_day AND :last_day),
    'applications', (SELECT json_agg(json_build_array(doctor_id, day, starts, ends) ORDER BY id)
                     FROM schedule_applications
                     WHERE branch_id = :branch_id AND doctor_id IN (SELECT id FROM docs) AND status = 'accepted'
                       AND day BETWEEN :first_day AND :last_day),
    'rooms', (SELECT json_agg(json_build_array(id, kind) ORDER BY id) FROM rms),
    'busy', (SELECT json_agg(json_build_array(doctor_id, room_id, lower(during), upper(during), kind))
             FROM occupancies
             WHERE active AND (expires_at IS NULL OR expires_at > :now)
               AND during && tstzrange(:start, :end, '[)')
               AND (doctor_id IN (SELECT id FROM docs) OR room_id IN (SELECT id FROM rms))),
    'blackouts', (SELECT json_agg(json_build_array(starts_at, ends_at, scope, branch_id, doctor_id, room_id, reason))
                  FROM blackout_blocks
                  WHERE starts_at < :end AND ends_at > :start
                    AND (branch_id = :branch_id OR (scope = 'doctor' AND doctor_id IN (SELECT id FROM docs))))
)
"""
).bindparams(
    bindparam("examination_ids", type_=ARRAY(Integer)),
    bindparam("doctor_ids", type_=ARRAY(Integer)),
    bindparam("first_day", type_=Date),
    bindparam("last_day", type_=Date),
    bindparam("start", type_=DateTime(timezone=True)),
    bindparam("end", type_=DateTime(timezone=True)),
    bindparam("now", type_=DateTime(timezone=True)),
)


def _time(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(value)


def _day(value: str) -> date:
    return date.fromisoformat(value)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def load(
    db: AsyncSession,
    *,
    branch: Branch,
    examinations: Sequence[Examination],
    doctor_ids: list[int] | None,
    first_day: date,
    last_day: date,
    start: datetime,
    end: datetime,
    now: datetime,
) -> AvailabilityRows:
    """Rows for the period; ``doctor_ids`` None = every active doctor who performs all the examinations."""
    raw = (
        await db.execute(
            _LOAD,
            {
                "branch_id": branch.id,
                "examination_ids": sorted({e.id for e in examinations}),
                "doctor_ids": doctor_ids,
                "first_day": first_day,
                "last_day": last_day,
                "start": start,
                "end": end,
                "now": now,
            },
        )
    ).scalar_one()
    doc: dict[str, list[Any] | None] = json.loads(raw) if isinstance(raw, str) else raw

    def rows(key: str) -> list[Any]:
        return doc.get(key) or []  # json_agg over no rows is null

    return AvailabilityRows(
        branch=branch,
        hours=[HoursRow(w, time.fromisoformat(o), time.fromisoformat(c)) for w, o, c in rows("hours")],
        examinations=tuple(examinations),
        offered_at={int(b) for b in rows("offered")},
        windows=[WindowRow(e, w, time.fromisoformat(a), time.fromisoformat(b)) for e, w, a, b in rows("windows")],
        doctors=[DoctorRow(i, n) for i, n in rows("doctors")],
        weekly=[(d, w, time.fromisoformat(a), time.fromisoformat(b)) for d, w, a, b in rows("weekly")],
        overrides=[(d, _day(day), _time(a), _time(b)) for d, day, a, b in rows("overrides")],
        applications=[(d, _day(day), _time(a), _time(b)) for d, day, a, b in rows("applications")],
        rooms=[RoomRow(i, k) for i, k in rows("rooms")],
        busy=[(d, r, Range(_instant(lo), _instant(hi), bounds="[)"), k) for d, r, lo, hi, k in rows("busy")],
        blackouts=[
            BlackoutRow(_instant(a), _instant(b), scope, branch_id, doctor_id, room_id, reason)
            for a, b, scope, branch_id, doctor_id, room_id, reason in rows("blackouts")
        ],
    )


async def doctor_names(db: AsyncSession, ids: list[int]) -> dict[int, str]:
    rows = await db.execute(select(Doctor.id, Doctor.name).where(Doctor.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def room_names(db: AsyncSession, ids: list[int]) -> dict[int, str]:
    rows = await db.execute(select(Room.id, Room.name).where(Room.id.in_(ids)))
    return {row.id: row.name for row in rows}


def range_bounds(value: object) -> tuple[datetime, datetime]:
    """(lower, upper) of a tstzrange loaded from the database."""
    assert isinstance(value, Range) and value.lower is not None and value.upper is not None
    return value.lower, value.upper


__all__ = ["AvailabilityRows", "doctor_names", "load", "load_branch", "load_examination", "range_bounds"]
