"""The clinic builder the other tests stand on makes what it promises."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from devtools.builders import Clinic, insert_session, next_weekday


async def test_the_test_clinic_has_rooms_doctors_examinations_and_a_patient(clinic: Clinic, db: AsyncSession) -> None:
    assert set(clinic.rooms) == {"consult-1", "consult-2", "dental"}
    assert set(clinic.doctors) == {"andi", "sari"}
    assert set(clinic.examinations) == {"GP", "DENTAL", "FACIAL"}
    session = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    assert session.id is not None and session.status == "waiting"
