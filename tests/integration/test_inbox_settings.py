"""The clinic's settings pages: branch hours, doctor attendance, examinations, booking form, reminders, message
texts and queue tracker privacy. Owners and admins only; a branch's admin only their branch; every change checked
(each mistake named next to its field, nothing saved), audited, and used at once by the clinic."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.queries.clinic import get_setting, put_setting
from booking_core.db.tables import (
    AttendanceOverride,
    AuditEntry,
    BranchHours,
    ClinicSetting,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    OutboxMessage,
)
from booking_core.domain.actors import SYSTEM
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.domain.privacy import QueuePrivacy
from booking_core.services import availability, ingest, lead_actions, messages, webform
from booking_core.services import settings as settings_service
from devtools.builders import Clinic, build_clinic, next_weekday, unique
from tests.integration.staff_pages import sign_in_page

Client = TestClient[object, object]
Sessions = async_sessionmaker[AsyncSession]
CLINIC_WIDE = ("booking_form", "reminder_offsets_min", "queue_privacy", messages.OVERRIDES_SETTING)
_MISSING = object()


@pytest.fixture
async def clinic_wide(sessionmaker: Sessions) -> AsyncIterator[None]:
    """Clinic-wide settings as they were before the test, put back after it (other tests share the database)."""
    async with sessionmaker() as db:
        saved = {key: await get_setting(db, key, _MISSING) for key in CLINIC_WIDE}
    yield
    async with sessionmaker() as db, db.begin():
        for key, value in saved.items():
            await put_setting(db, key, settings_service.DEFAULT_SETTINGS.get(key, {}) if value is _MISSING else value)
    # This process's copy of the message texts too, for tests that render without a database at hand.
    messages.use_overrides({} if saved[messages.OVERRIDES_SETTING] is _MISSING else saved[messages.OVERRIDES_SETTING])


async def _setting(db: AsyncSession, key: str) -> Any:
    """A clinic setting as stored now (read past the session's identity map)."""
    return (await db.execute(select(ClinicSetting.value).where(ClinicSetting.key == key))).scalar_one_or_none()


async def _owner(client: Client, db: AsyncSession, role: str = "owner", branch_id: int | None = None) -> str:
    return await sign_in_page(client, db, role, branch_id=branch_id)


async def _audits(db: AsyncSession, action: str, entity_id: int | None = None) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    return list((await db.execute(stmt)).scalars())


def _week(token: str, days: dict[int, list[tuple[str, str]]], **extra: str) -> dict[str, str]:
    """A week form as the browser posts it: ticked days with their periods."""
    data = {"csrf_token": token, **extra}
    for day, periods in days.items():
        data[f"open-{day}"] = "1"
        for index, (starts, ends) in enumerate(periods):
            data[f"starts-{day}-{index}"], data[f"ends-{day}-{index}"] = starts, ends
    return data


async def _hours(db: AsyncSession, branch_id: int) -> list[tuple[int, time, time]]:
    rows = await db.execute(
        select(BranchHours.weekday, BranchHours.opens, BranchHours.closes)
        .where(BranchHours.branch_id == branch_id)
        .order_by(BranchHours.weekday, BranchHours.opens)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


# --- who may open them


SETTINGS_PAGES = (
    "/inbox/settings",
    "/inbox/settings/hours",
    "/inbox/settings/attendance",
    "/inbox/settings/examinations",
    "/inbox/settings/examinations/new",
    "/inbox/settings/booking-form",
    "/inbox/settings/reminders",
    "/inbox/settings/messages",
    "/inbox/settings/messages/en/reminder",
    "/inbox/settings/queue",
)


@pytest.mark.parametrize("role", ["staff", "doctor"])
async def test_front_desk_and_doctors_may_not_open_the_settings(client: Client, db: AsyncSession, role: str) -> None:
    await sign_in_page(client, db, role)
    for path in SETTINGS_PAGES:
        response = await client.get(path)
        assert response.status == 403, path
        assert f"A {role} may not open this page." in await response.text()


async def test_a_stranger_is_sent_to_sign_in(client: Client) -> None:
    response = await client.get("/inbox/settings/hours", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ["owner", "admin"])
async def test_every_settings_page_opens_for_owners_and_admins(
    client: Client, db: AsyncSession, clinic: Clinic, role: str
) -> None:
    await sign_in_page(client, db, role)
    exam = clinic.examinations["GP"]
    headings = {
        "/inbox/settings": "<h1>Settings</h1>",
        f"/inbox/settings/hours?branch={clinic.branch.id}": "<h1>Branch hours</h1>",
        f"/inbox/settings/attendance?branch={clinic.branch.id}": "dr. Andi Wijaya",
        "/inbox/settings/examinations": "<h1>Examinations</h1>",
        "/inbox/settings/examinations/new": "<h1>New examination</h1>",
        f"/inbox/settings/examinations/{exam.id}": f'value="{exam.code}"',
        "/inbox/settings/booking-form": "<h1>Booking form</h1>",
        "/inbox/settings/reminders": "<h1>Reminders</h1>",
        "/inbox/settings/messages": "Visit reminder",
        "/inbox/settings/messages?lang=id": "Halo Siti, pengingat kunjungan Anda",
        "/inbox/settings/messages/en/reminder": "a reminder of your visit",
        "/inbox/settings/queue": "<h1>Queue tracker privacy</h1>",
    }
    for path, expected in headings.items():
        response = await client.get(path)
        html = await response.text()
        assert response.status == 200, (path, html[:500])
        assert expected in html, path
        assert 'aria-label="Settings sections"' in html


async def test_a_post_without_the_pages_csrf_token_changes_nothing(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    await _owner(client, db)
    before = await _hours(db, clinic.branch.id)
    form = _week("", {0: [("10:00", "12:00")]}, branch=str(clinic.branch.id))
    del form["csrf_token"]
    response = await client.post("/inbox/settings/hours", data=form)
    assert response.status == 403
    forged = await client.post("/inbox/settings/hours", data={**form, "csrf_token": "forged"})
    assert forged.status == 403
    assert await _hours(db, clinic.branch.id) == before


# --- branch hours


async def test_saving_branch_hours_is_what_availability_uses_from_then_on(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    token = await _owner(client, db)
    page = await client.get(f"/inbox/settings/hours?branch={clinic.branch.id}")
    assert 'name="open-0" value="1" checked' in await page.text()
    # Mondays now close for lunch; Saturdays closed; Sundays open in the morning.
    week = {d: [("08:00", "20:00")] for d in range(1, 5)}
    week[0] = [("08:00", "12:00"), ("13:00", "17:00")]
    week[6] = [("09:00", "13:00")]
    response = await client.post(
        "/inbox/settings/hours", data=_week(token, week, branch=str(clinic.branch.id)), allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/inbox/settings/hours?branch={clinic.branch.id}"
    hours = await _hours(db, clinic.branch.id)
    assert (0, time(8), time(12)) in hours and (0, time(13), time(17)) in hours
    assert not [h for h in hours if h[0] == 5] and (6, time(9), time(13)) in hours
    [entry] = await _audits(db, "branch.hours_changed", clinic.branch.id)
    assert entry.data["to"]["Mon"] == ["08:00–12:00", "13:00–17:00"] and entry.data["to"]["Sat"] == []
    assert entry.actor_kind == "staff" and entry.actor_name

    followed = await client.get(response.headers["Location"])
    assert "Opening hours saved" in await followed.text()

    # Availability follows at once: no Monday slot over lunch, none at all on Saturday.
    monday = next_weekday(0, hour=0)
    _, slots = await availability.find_slots(
        db, branch_id=clinic.branch.id, examination_id=clinic.examinations["DENTAL"].id,
        start=monday, end=monday + timedelta(days=6),
    )  # fmt: skip
    local = [s.start.astimezone(ZoneInfo("Asia/Jakarta")) for s in slots]
    assert local and not [s for s in local if s.weekday() == 0 and time(12) <= s.time() < time(13)]
    assert not [s for s in local if s.weekday() == 5]

    again = await client.post(
        "/inbox/settings/hours", data=_week(token, week, branch=str(clinic.branch.id)), allow_redirects=False
    )
    assert again.status == 303
    assert len(await _audits(db, "branch.hours_changed", clinic.branch.id)) == 1  # unchanged: no second row


async def test_wrong_hours_are_named_day_by_day_and_nothing_is_saved(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    token = await _owner(client, db)
    before = await _hours(db, clinic.branch.id)
    form = _week(
        token,
        {0: [("08:00", "20:00")], 1: [("18:00", "09:00")], 2: [("08:00", "13:00"), ("12:00", "17:00")]},
        branch=str(clinic.branch.id),
    )
    form["open-3"] = "1"  # ticked, but no hours
    form["open-4"], form["starts-4-0"], form["ends-4-0"] = "1", "8 am", "17:00"
    response = await client.post("/inbox/settings/hours", data=form)
    html = await response.text()
    assert response.status == 422
    assert "Thursday: enter the hours, or untick it." in html
    assert "Friday: enter both times of a period" in html
    assert await _hours(db, clinic.branch.id) == before

    form = _week(
        token, {1: [("18:00", "09:00")], 2: [("08:00", "13:00"), ("12:00", "17:00")]}, branch=str(clinic.branch.id)
    )
    response = await client.post("/inbox/settings/hours", data=form)
    html = await response.text()
    assert response.status == 422
    assert "Tuesday: 18:00 is not before 09:00." in html
    assert "Wednesday: 08:00–13:00 and 12:00–17:00 overlap." in html
    assert 'id="err-day-1"' in html and 'aria-invalid="true"' in html
    assert 'value="18:00"' in html  # what was typed stays in the form
    assert await _hours(db, clinic.branch.id) == before
    assert await _audits(db, "branch.hours_changed", clinic.branch.id) == []


async def test_a_branch_admin_manages_only_their_own_branch(client: Client, db: AsyncSession) -> None:
    mine, other = await build_clinic(db), await build_clinic(db)
    token = await _owner(client, db, "admin", mine.branch.id)
    page = await client.get("/inbox/settings/hours")
    html = await page.text()
    assert page.status == 200 and f'name="branch" value="{mine.branch.id}"' in html
    assert (await client.get(f"/inbox/settings/hours?branch={other.branch.id}")).status == 404
    assert (await client.get(f"/inbox/settings/attendance?branch={other.branch.id}")).status == 404
    before = await _hours(db, other.branch.id)
    response = await client.post(
        "/inbox/settings/hours",
        data=_week(token, {0: [("10:00", "11:00")]}, branch=str(other.branch.id)),
        headers={"Referer": "/inbox/settings/hours"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert await _hours(db, other.branch.id) == before
    # Their own branch: fine.
    saved = await client.post(
        "/inbox/settings/hours", data=_week(token, {0: [("10:00", "11:00")]}, branch=str(mine.branch.id)),
        allow_redirects=False,
    )  # fmt: skip
    assert saved.status == 303 and await _hours(db, mine.branch.id) == [(0, time(10), time(11))]
    # Another branch's dated change cannot be removed either.
    change = AttendanceOverride(
        doctor_id=other.doctors["andi"].id, branch_id=other.branch.id,
        day=datetime.now(UTC).date() + timedelta(days=9), note="Leave",
    )  # fmt: skip
    db.add(change)
    await db.commit()
    removed = await client.post(
        f"/inbox/settings/attendance/changes/{change.id}/remove", data={"csrf_token": token}, allow_redirects=False
    )
    assert removed.status == 303
    assert await db.get(AttendanceOverride, change.id, populate_existing=True) is not None


async def test_clinic_wide_settings_are_read_only_for_a_branch_admin(
    client: Client, db: AsyncSession, clinic: Clinic, clinic_wide: None
) -> None:
    token = await _owner(client, db, "admin", clinic.branch.id)
    page = await client.get("/inbox/settings/reminders")
    html = await page.text()
    assert page.status == 200 and "the owner or an admin of the whole clinic changes them" in html
    assert "Save reminder times" not in html
    before = await _setting(db, "reminder_offsets_min")
    response = await client.post(
        "/inbox/settings/reminders", data={"csrf_token": token, "amount-0": "3", "unit-0": "hours"},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    refused = await client.get(response.headers["Location"])
    assert "every branch" in await refused.text()
    assert await _setting(db, "reminder_offsets_min") == before


# --- doctor attendance


async def test_a_doctors_weekly_days_and_dated_changes(client: Client, db: AsyncSession, clinic: Clinic) -> None:
    token = await _owner(client, db)
    andi, branch = clinic.doctors["andi"], clinic.branch
    page = await client.get(f"/inbox/settings/attendance?branch={branch.id}&doctor={andi.id}")
    html = await page.text()
    assert page.status == 200 and "dr. Andi Wijaya at Klinik Sehat Test" in html
    assert "branch open 08:00–20:00" in html

    response = await client.post(
        "/inbox/settings/attendance",
        data=_week(token, {1: [("09:00", "12:00")], 3: [("13:00", "19:00")]}, branch=str(branch.id),
                   doctor=str(andi.id)),
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303, await response.text()
    rows = (
        await db.execute(
            select(DoctorAttendance.weekday, DoctorAttendance.starts, DoctorAttendance.ends)
            .where(DoctorAttendance.doctor_id == andi.id, DoctorAttendance.branch_id == branch.id)
            .order_by(DoctorAttendance.weekday)
        )
    ).all()
    assert [tuple(r) for r in rows] == [(1, time(9), time(12)), (3, time(13), time(19))]
    [entry] = await _audits(db, "attendance.changed", andi.id)
    assert entry.data["to"]["Tue"] == ["09:00–12:00"] and entry.data["from"]["Mon"] == ["09:00–17:00"]

    day = (datetime.now(ZoneInfo(branch.tz)) + timedelta(days=10)).date()
    off = await client.post(
        "/inbox/settings/attendance/changes",
        data={"csrf_token": token, "branch": str(branch.id), "doctor": str(andi.id), "day": day.isoformat(),
              "kind": "off", "note": "Conference <b>Bali</b>"},
        allow_redirects=False,
    )  # fmt: skip
    assert off.status == 303, await off.text()
    listing = await (await client.get(f"/inbox/settings/attendance?branch={branch.id}")).text()
    assert "Conference &lt;b&gt;Bali&lt;/b&gt;" in listing and "Day off" in listing

    # Hours on a day off, a day in the past, a period backwards: each refused next to its field.
    for data, message in [
        ({"day": day.isoformat(), "kind": "hours", "starts": "09:00", "ends": "11:00"}, "has a day off on"),
        ({"day": (day - timedelta(days=30)).isoformat(), "kind": "off"}, "That day is in the past."),
        ({"day": (day + timedelta(days=1)).isoformat(), "kind": "hours", "starts": "15:00", "ends": "10:00"},
         "15:00 is not before 10:00."),
        ({"day": "", "kind": "off"}, "Choose the date of the change."),
    ]:  # fmt: skip
        refused = await client.post(
            "/inbox/settings/attendance/changes",
            data={"csrf_token": token, "branch": str(branch.id), "doctor": str(andi.id), **data},
        )
        assert refused.status == 422
        assert message in await refused.text()
    changes = list(
        (await db.execute(select(AttendanceOverride).where(AttendanceOverride.doctor_id == andi.id))).scalars()
    )
    assert [(c.day, c.starts, c.note) for c in changes] == [(day, None, "Conference <b>Bali</b>")]

    removed = await client.post(
        f"/inbox/settings/attendance/changes/{changes[0].id}/remove", data={"csrf_token": token},
        allow_redirects=False,
    )  # fmt: skip
    assert removed.status == 303
    assert await db.get(AttendanceOverride, changes[0].id, populate_existing=True) is None
    assert len(await _audits(db, "attendance.override_removed", andi.id)) == 1


# --- examinations


def _exam_form(token: str, clinic: Clinic, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "code": unique("ECG"),
        "name": "Electrocardiogram <script>alert(1)</script>",
        "description": "Heart rhythm check",
        "price": "175000",
        "currency": "IDR",
        "duration_min": "20",
        "room_kind": "consultation",
        "min_notice_min": "60",
        "horizon_days": "30",
        "buffer_before_min": "0",
        "buffer_after_min": "5",
        "cancel_cutoff_min": "120",
        "keywords": "ekg, jantung",
        f"branch-{clinic.branch.id}": "1",
        f"doctor-{clinic.doctors['andi'].id}": "1",
        "window-day-0": "0",
        "window-starts-0": "08:00",
        "window-ends-0": "12:00",
        "window-day-1": "",
        "doctor_commission_kind": "percent",
        "doctor_commission_value": "25",
        "manager_commission_kind": "fixed",
        "manager_commission_value": "5000",
    }
    form.update(changes)
    return form


async def test_adding_editing_and_withdrawing_an_examination(client: Client, db: AsyncSession, clinic: Clinic) -> None:
    token = await _owner(client, db)
    form = _exam_form(token, clinic)
    created = await client.post("/inbox/settings/examinations", data=form, allow_redirects=False)
    assert created.status == 303, await created.text()
    exam = (await db.execute(select(Examination).where(Examination.code == form["code"]))).scalar_one()
    assert exam.price == 175000 and exam.duration_min == 20 and exam.keywords == ["ekg", "jantung"]
    assert created.headers["Location"] == f"/inbox/settings/examinations/{exam.id}"
    assert len(await _audits(db, "examination.created", exam.id)) == 1

    listing = await (await client.get("/inbox/settings/examinations")).text()
    assert "Electrocardiogram &lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert(1)</script>" not in listing

    # A price finer than the rupiah has, a duration out of range: refused next to the field, nothing saved.
    for changes, field, message in [
        ({"price": "150000.50"}, "price", "IDR has no minor units"),
        ({"duration_min": "1000"}, "duration_min", "Duration: Input should be less than or equal to 720"),
        ({"price": "lots"}, "price", "Price: enter a number"),
        ({"window-day-0": "0", "window-starts-0": "12:00", "window-ends-0": "08:00"}, "windows", "starts before"),
        ({"code": clinic.examinations["GP"].code}, "code", "already uses the code"),
    ]:
        refused = await client.post(f"/inbox/settings/examinations/{exam.id}", data={**form, **changes})
        html = await refused.text()
        assert refused.status == 422, (changes, html[:300])
        assert message in html and f'id="err-{field}"' in html, changes
    await db.refresh(exam)
    assert exam.price == 175000 and exam.duration_min == 20

    edited = await client.post(
        f"/inbox/settings/examinations/{exam.id}", data={**form, "price": "185000", "cancel_cutoff_min": "240"},
        allow_redirects=False,
    )  # fmt: skip
    assert edited.status == 303
    await db.refresh(exam)
    assert exam.price == 185000 and exam.cancel_cutoff_min == 240
    [entry] = await _audits(db, "examination.updated", exam.id)
    assert entry.data["changed"]["price"] == {"from": "175000", "to": "185000"}

    withdrawn = await client.post(
        f"/inbox/settings/examinations/{exam.id}/withdraw", data={"csrf_token": token}, allow_redirects=False
    )
    assert withdrawn.status == 303
    await db.refresh(exam)
    assert exam.active is False
    assert "Withdrawn" in await (await client.get(f"/inbox/settings/examinations/{exam.id}")).text()
    restored = await client.post(
        f"/inbox/settings/examinations/{exam.id}/restore", data={"csrf_token": token}, allow_redirects=False
    )
    assert restored.status == 303
    await db.refresh(exam)
    assert exam.active is True


async def test_ticking_a_branch_where_none_of_the_examinations_doctors_works_is_refused_and_old_ones_are_flagged(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    other = await build_clinic(db)  # its own doctors; this clinic's dr. Andi never works there
    token = await _owner(client, db)
    form = _exam_form(token, clinic)
    created = await client.post("/inbox/settings/examinations", data=form, allow_redirects=False)
    assert created.status == 303, await created.text()
    exam = (await db.execute(select(Examination).where(Examination.code == form["code"]))).scalar_one()

    ticked = await client.post(
        f"/inbox/settings/examinations/{exam.id}", data={**form, f"branch-{other.branch.id}": "1"}
    )
    html = await ticked.text()
    assert ticked.status == 422
    assert 'id="err-branch_ids"' in html and "None of this examination&#39;s doctors works at Klinik Sehat Test" in html
    assert "Choose a doctor who attends there (or add their attendance first), or leave the branch out." in html
    offered = await db.execute(select(ExaminationBranch.branch_id).where(ExaminationBranch.examination_id == exam.id))
    assert offered.scalars().all() == [clinic.branch.id]

    db.add(ExaminationBranch(examination_id=exam.id, branch_id=other.branch.id))  # as an older catalog could have it
    await db.commit()
    listing = await (await client.get("/inbox/settings/examinations")).text()
    row = listing[listing.index(f'href="/inbox/settings/examinations/{exam.id}"') :]
    assert "no doctor works here" in row[: row.index("</tr>")]


async def test_another_branchs_examination_is_not_found_for_a_branch_admin(client: Client, db: AsyncSession) -> None:
    mine, other = await build_clinic(db), await build_clinic(db)
    token = await _owner(client, db, "admin", mine.branch.id)
    theirs = other.examinations["GP"]
    assert (await client.get(f"/inbox/settings/examinations/{theirs.id}")).status == 404
    response = await client.post(
        f"/inbox/settings/examinations/{theirs.id}/withdraw", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    await db.refresh(theirs)
    assert theirs.active is True


# --- booking form, reminders, queue tracker


async def test_the_booking_form_settings_shape_the_public_form(
    client: Client, db: AsyncSession, clinic: Clinic, clinic_wide: None
) -> None:
    token = await _owner(client, db)
    modes = {f"mode-{name}": "optional" for name in settings_service.FORM_FIELD_LABELS}
    modes.update({"mode-phone": "required", "mode-email": "hidden", "mode-note": "required"})
    exam_id = clinic.examinations["GP"].id
    response = await client.post(
        "/inbox/settings/booking-form",
        data={"csrf_token": token, **modes, "branches": "chosen", f"branch-{clinic.branch.id}": "1",
              "examinations": "chosen", f"exam-{exam_id}": "1"},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303, await response.text()
    setup = await webform.form_setup(db)
    assert not setup.shows("email") and setup.required("note") and not setup.required("name")
    assert [b.id for b in setup.branches] == [clinic.branch.id]
    assert [e.id for e in setup.examinations] == [exam_id]
    assert len(await _audits(db, "settings.booking_form_changed")) >= 1

    for changes, message in [
        ({"mode-phone": "optional", "mode-email": "optional"}, "Require the phone number or the email"),
        ({"mode-preferred_date": "hidden", "mode-preferred_time": "optional"}, "A preferred time needs the"),
        ({"branches": "chosen", f"branch-{clinic.branch.id}": ""}, "Offer at least one branch"),
        ({"mode-note": "mandatory"}, "choose required, optional or hidden"),
    ]:  # fmt: skip
        data = {"csrf_token": token, **modes, "branches": "all", "examinations": "all", **changes}
        data = {k: v for k, v in data.items() if v}
        refused = await client.post("/inbox/settings/booking-form", data=data)
        assert refused.status == 422
        assert message in await refused.text()
    assert [b.id for b in (await webform.form_setup(db)).branches] == [clinic.branch.id]


async def test_reminder_times_are_saved_as_minutes_and_checked(
    client: Client, db: AsyncSession, clinic_wide: None
) -> None:
    token = await _owner(client, db)
    page = await (await client.get("/inbox/settings/reminders")).text()
    assert 'id="amount-0"' in page
    response = await client.post(
        "/inbox/settings/reminders",
        data={"csrf_token": token, "amount-0": "2", "unit-0": "days", "amount-2": "90", "unit-2": "minutes"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert await _setting(db, "reminder_offsets_min") == [2880, 90]
    [*_, entry] = await _audits(db, "settings.reminders_changed")
    assert entry.data["to"] == [2880, 90]

    for data, message in [
        ({"amount-0": "5", "unit-0": "minutes"}, "between 10 minutes and 14 days"),
        ({"amount-0": "1", "unit-0": "days", "amount-1": "24", "unit-1": "hours"}, "Two reminders are set for"),
        ({"amount-0": "soon", "unit-0": "hours"}, "Enter a whole number"),
    ]:  # fmt: skip
        refused = await client.post("/inbox/settings/reminders", data={"csrf_token": token, **data})
        assert refused.status == 422
        assert message in await refused.text()
    assert await _setting(db, "reminder_offsets_min") == [2880, 90]


async def test_queue_tracker_privacy(client: Client, db: AsyncSession, clinic_wide: None) -> None:
    token = await _owner(client, db)
    page = await (await client.get("/inbox/settings/queue")).text()
    assert "“Siti Rahmawati” shows as “S.”" in page and "“Siti Rahmawati” shows as “Siti”" in page
    response = await client.post(
        "/inbox/settings/queue", data={"csrf_token": token, "show_name": "initial", "show_eta": "1"},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    assert await settings_service.queue_privacy(db) == QueuePrivacy("initial", False, True)
    refused = await client.post("/inbox/settings/queue", data={"csrf_token": token, "show_name": "everything"})
    assert refused.status == 422 and "Choose how names are shown." in await refused.text()
    assert (await settings_service.queue_privacy(db)).show_name == "initial"


# --- message texts


async def _lead(sessionmaker: Sessions, name: str = "Dewi Anggraini") -> int:
    """A patient writes on Telegram (in English): a new lead."""
    chat = str(5_000_000_000 + secrets.randbelow(10**9))
    inbound = InboundMessage(
        channel="telegram", external_id=f"tg-{secrets.token_hex(8)}",
        contact=ContactRef(channel="telegram", external_id=chat, display_name=name, language_code="en"),
        received_at=datetime.now(UTC), text="Can I see a doctor this week?",
    )  # fmt: skip
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, inbound)
    assert received.lead_id is not None
    return received.lead_id


async def _accept(sessionmaker: Sessions, lead_id: int) -> str:
    """Staff accept the lead; the text the patient is sent."""
    async with sessionmaker() as db, db.begin():
        decision = await lead_actions.accept(db, lead_id, actor=SYSTEM)
    assert decision.outbox_id is not None
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, decision.outbox_id)
        assert row is not None
        return str(row.payload["text"])


async def test_the_clinics_own_text_is_used_by_the_next_message_and_reset_brings_back_the_standard(
    client: Client, db: AsyncSession, sessionmaker: Sessions, clinic_wide: None
) -> None:
    token = await _owner(client, db)
    path = "/inbox/settings/messages/en/lead_accepted"
    own = "Dear {{ name }}, we have your request{% if examination %} for {{ examination }}{% endif %}. See you soon!"
    preview = await client.post(path, data={"csrf_token": token, "text": own, "action": "preview"})
    html = await preview.text()
    assert preview.status == 200 and "Dear Siti, we have your request for Dental check-up. See you soon!" in html
    assert "(not saved yet)" in html
    assert "good news" in await _accept(sessionmaker, await _lead(sessionmaker))  # a preview saves nothing

    saved = await client.post(path, data={"csrf_token": token, "text": own, "action": "save"}, allow_redirects=False)
    assert saved.status == 303
    assert "Clinic's own" in await (await client.get("/inbox/settings/messages")).text()
    assert (
        await _accept(sessionmaker, await _lead(sessionmaker))
        == "Dear Dewi Anggraini, we have your request. See you soon!"
    )
    [*_, entry] = await _audits(db, "settings.message_changed")
    assert entry.data == {"lang": "en", "message": "lead_accepted", "from": None, "to": own}

    # The other language keeps its standard text.
    assert (await _setting(db, messages.OVERRIDES_SETTING)) == {"en": {"lead_accepted": own}}

    reset = await client.post(f"{path}/reset", data={"csrf_token": token}, allow_redirects=False)
    assert reset.status == 303
    assert "good news: we have accepted your request" in await _accept(sessionmaker, await _lead(sessionmaker))
    assert len(await _audits(db, "settings.message_reset")) >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello {{ name ", "Check the {{ }} and {% %} marks."),
        ("Hello {% if name %}{{ name }}", "Check the {{ }} and {% %} marks."),
        ("Hello {{ patient_name }}", "This message has no value {{ patient_name }}. You can use:"),
        ("Hello {{ name|shout }}", "No filter named &#39;shout&#39;"),
        ("Hello {{ name.__class__.__mro__ }}", "cannot be shown with sample values"),
        ("   ", "The message is empty."),
    ],
)
async def test_a_text_that_cannot_work_is_refused_and_nothing_is_saved(
    client: Client, db: AsyncSession, clinic_wide: None, text: str, message: str
) -> None:
    token = await _owner(client, db)
    before = await _setting(db, messages.OVERRIDES_SETTING)
    response = await client.post(
        "/inbox/settings/messages/en/reminder", data={"csrf_token": token, "text": text, "action": "save"}
    )
    html = await response.text()
    assert response.status == 422
    assert message in html, html[html.find("Not saved") :][:300]
    assert 'role="alert">Not saved' in html
    assert await _setting(db, messages.OVERRIDES_SETTING) == before


async def test_the_preview_shows_patient_text_as_text(client: Client, db: AsyncSession) -> None:
    token = await _owner(client, db)
    response = await client.post(
        "/inbox/settings/messages/id/reminder",
        data={"csrf_token": token, "text": "<b>Halo</b> {{ name }}, {{ start|when }}", "action": "preview"},
    )
    html = await response.text()
    assert response.status == 200
    assert "&lt;b&gt;Halo&lt;/b&gt; Siti, Sel 1 Des, 09:30" in html
    assert "The standard text shows {{ code }}; yours does not." in html


async def test_an_unknown_message_or_language_is_not_found(client: Client, db: AsyncSession) -> None:
    await _owner(client, db)
    for path in ("/inbox/settings/messages/fr/reminder", "/inbox/settings/messages/en/_buttons",
                 "/inbox/settings/messages/en/nothing_here", "/inbox/settings/messages?lang=xx"):  # fmt: skip
        assert (await client.get(path)).status == 404, path


async def test_a_stored_text_that_fails_falls_back_to_the_standard_one(clinic_wide: None) -> None:
    """A clinic text that stopped fitting (e.g. after an upgrade) never costs the patient their message."""
    messages.use_overrides({"en": {"reminder_time": "{{ start|when }} {{ gone_value }}"}})
    assert messages.render("en", "reminder_time", start="2026-12-01T09:30:00+07:00") == "Tue 1 Dec, 09:30"


def test_every_standard_text_can_be_previewed_and_saved_back_unchanged() -> None:
    """The editor starts from the standard text: each one must pass the same check as the clinic's own."""
    for lang, names in messages.overridable().items():
        assert "reminder" in names and "_buttons" not in names and "confirmation_buttons" not in names
        for name in names:
            standard = messages.default_text(lang, name)
            assert messages.check_override(lang, name, standard) == standard.strip(), (lang, name)
            assert messages.preview(lang, name), (lang, name)
