"""The queue board (/inbox/queue) against the real database: what the desk sees, reordering, calling in, cancelling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from booking_core.db.queries.clinic import get_setting, put_setting
from booking_core.db.tables import AuditEntry, QueueEntry, Session
from booking_core.services import queue, queue_actions
from devtools.builders import Clinic
from tests.integration.queue_pages import (
    DESK,
    Client,
    at,
    checked_in,
    flash_of,
    midday_clinic,
    setting_kept,
    sign_in_doctor,
    tokens_in,
    visit,
)
from tests.integration.staff_pages import sign_in_page


@pytest.fixture(autouse=True)
async def queue_order_kept(db: AsyncSession) -> AsyncIterator[None]:
    """Moving a patient makes the clinic's calling order manual; the next test starts from the default."""
    async with setting_kept(db, queue.SORT_SETTING):
        yield


async def morning(db: AsyncSession, clinic: Clinic) -> list[Session]:
    """Three of dr. Andi's patients who arrived at 09:50, 09:40 and 09:30 for visits at 09:00, 10:00 and 11:00."""
    names = ("Ani Suryani", "Bayu Pratama", "Citra Dewi")
    sessions = [await visit(db, clinic, at(clinic, 9 + i), name=name) for i, name in enumerate(names)]
    for i, session in enumerate(sessions):
        await checked_in(db, session, arrived=at(clinic, 9, 50 - 10 * i))
    return sessions


def board_url(clinic: Clinic, **params: str) -> str:
    return str(URL("/inbox/queue").with_query({"branch": str(clinic.branch.id), **params}))


async def post(client: Client, path: str, data: dict[str, str], *, from_page: str) -> str:
    """Post a board form the way the browser does (from the page), follow the redirect, return the page."""
    response = await client.post(path, data=data, headers={"Referer": from_page}, allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await client.get(response.headers["Location"])
    assert page.status == 200
    return await page.text()


async def test_the_board_shows_each_waiting_patient_with_token_doctor_examination_and_eta(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    response = await client.get("/inbox/queue")
    html = await response.text()

    assert response.status == 200
    assert tokens_in(html) == ["A-003", "A-002", "A-001"]  # arrival order: Citra came first
    for text in ("Citra Dewi", "dr. Andi Wijaya", "General consultation", "Next for dr. Andi Wijaya", "ETA "):
        assert text in html
    assert "#2 for dr. Andi Wijaya · 1 ahead" in html and "(~30 min)" in html  # after Citra's 30 minutes
    assert 'data-live="queue_entries,sessions"' in html
    assert 'Patients are called in <strong id="calling-order">arrival order</strong>' in html


async def test_the_board_sorts_by_appointment_time_or_newest_arrival(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    await sign_in_page(client, db, "owner")

    by_time = await (await client.get(board_url(clinic, sort="time"))).text()
    newest = await (await client.get(board_url(clinic, sort="newest"))).text()

    assert tokens_in(by_time) == ["A-001", "A-002", "A-003"]
    assert tokens_in(newest) == ["A-001", "A-002", "A-003"]  # A-001 arrived last, at 09:50
    # Newest first is a way to look at the queue: the places stay those of the calling order (arrival).
    assert "Next for dr. Andi Wijaya" in newest.split('data-token="A-003"')[1].split("</li>")[0]


async def test_moving_a_patient_up_is_kept_and_becomes_the_calling_order(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    first, second, third = await morning(db, clinic)  # shown
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    entry = (await db.execute(select(QueueEntry).where(QueueEntry.session_id == first.id))).scalar_one()
    above = (await db.execute(select(QueueEntry).where(QueueEntry.session_id == second.id))).scalar_one()

    page = board_url(clinic, sort="arrival")
    html = await post(
        client,
        f"/inbox/queue/{entry.id}/move",
        {"csrf_token": csrf, "before": str(above.id), "branch": str(clinic.branch.id), "sort": "arrival"},
        from_page=page,
    )

    assert tokens_in(html) == ["A-003", "A-001", "A-002"]
    assert "A-001 moved. Patients are now called in the order on this board" in flash_of(html)
    assert await get_setting(db, queue.SORT_SETTING) == "manual"
    reloaded = await (await client.get("/inbox/queue")).text()
    assert tokens_in(reloaded) == ["A-003", "A-001", "A-002"]
    actions = (
        await db.execute(
            select(AuditEntry.action).where(AuditEntry.entity_id == entry.id, AuditEntry.action == "queue.moved")
        )
    ).scalars()
    assert list(actions) == ["queue.moved"]
    await db.refresh(third)
    assert third.status == "waiting"


async def test_moving_down_in_the_time_view_moves_past_the_patient_shown_below(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    await put_setting(db, queue.SORT_SETTING, "manual")
    await db.commit()
    csrf = await sign_in_page(client, db, "owner")
    by_time = board_url(clinic, sort="time")
    html = await (await client.get(by_time)).text()
    assert tokens_in(html) == ["A-001", "A-002", "A-003"]
    entries = {
        e.token: e.id
        for e in (await db.execute(select(QueueEntry).where(QueueEntry.branch_id == clinic.branch.id))).scalars()
    }

    moved = await post(
        client,
        f"/inbox/queue/{entries['A-001']}/move",
        {"csrf_token": csrf, "after": str(entries["A-002"]), "branch": str(clinic.branch.id), "sort": "time"},
        from_page=by_time,
    )

    assert tokens_in(moved) == ["A-002", "A-001", "A-003"]  # shown in manual order from now on
    assert flash_of(moved) == "A-001 moved."


async def test_the_up_and_down_buttons_name_the_neighbours_for_keyboard_users(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await (await client.get("/inbox/queue")).text()

    assert 'aria-label="Move A-003 up"' not in html and 'aria-label="Move A-003 down"' in html
    assert 'aria-label="Move A-002 up"' in html and 'aria-label="Move A-001 down"' not in html
    assert html.count(' draggable="true">') == 3


async def test_call_next_opens_the_visit_of_the_doctors_next_patient(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    sessions = await morning(db, clinic)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    page = board_url(clinic)
    call = {"csrf_token": csrf, "branch": str(clinic.branch.id), "doctor": str(clinic.doctors["andi"].id)}

    html = await post(client, "/inbox/queue/call-next", call, from_page=page)

    assert "A-003 Citra Dewi is called in to dr. Andi Wijaya." in flash_of(html)
    assert tokens_in(html, "in-progress") == ["A-003"] and tokens_in(html) == ["A-002", "A-001"]
    await db.refresh(sessions[2])
    assert sessions[2].status == "open"
    busy = await post(client, "/inbox/queue/call-next", call, from_page=page)
    assert "dr. Andi Wijaya is still with a patient" in flash_of(busy)
    assert tokens_in(busy) == ["A-002", "A-001"]


async def test_completing_the_visit_in_progress_takes_it_off_the_board(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    sessions = await morning(db, clinic)
    await queue_actions.call_next(db, clinic.branch.id, clinic.doctors["andi"].id, actor=DESK)
    await db.commit()
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await post(
        client, f"/inbox/queue/sessions/{sessions[2].id}/complete",
        {"csrf_token": csrf, "branch": str(clinic.branch.id)}, from_page=board_url(clinic),
    )  # fmt: skip

    assert f"Visit {sessions[2].booking_code} completed." in flash_of(html)
    assert tokens_in(html, "in-progress") == [] and "Nobody is with a doctor right now." in html
    await db.refresh(sessions[2])
    assert sessions[2].status == "completed"


async def test_cancelling_a_waiting_visit_needs_a_reason_and_frees_the_time(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    sessions = await morning(db, clinic)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    page = board_url(clinic)
    path = f"/inbox/queue/sessions/{sessions[1].id}/cancel"

    refused = await post(client, path, {"csrf_token": csrf, "reason": "other", "note": " "}, from_page=page)
    await db.refresh(sessions[1])
    assert "needs a note" in flash_of(refused) and sessions[1].status == "waiting"
    html = await (await client.get(page)).text()
    assert 'data-confirm="Cancel the visit of Bayu Pratama (A-002)?' in html

    done = await post(client, path, {"csrf_token": csrf, "reason": "patient_request"}, from_page=page)

    assert f"Visit {sessions[1].booking_code} cancelled" in flash_of(done)
    assert tokens_in(done) == ["A-003", "A-001"]
    await db.refresh(sessions[1])
    assert (sessions[1].status, sessions[1].cancel_reason) == ("cancelled", "patient_request")


async def test_the_desk_chooses_the_calling_order_but_never_newest_first(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    csrf = await sign_in_page(client, db, "admin")
    page = board_url(clinic)

    chosen = await post(client, "/inbox/queue/order", {"csrf_token": csrf, "order": "time",
                                                       "branch": str(clinic.branch.id)}, from_page=page)  # fmt: skip
    refused = await post(client, "/inbox/queue/order", {"csrf_token": csrf, "order": "newest",
                                                        "branch": str(clinic.branch.id)}, from_page=page)  # fmt: skip

    assert "Patients are now called in appointment time." in flash_of(chosen)
    assert tokens_in(chosen) == ["A-001", "A-002", "A-003"]
    assert "Choose arrival, time or manual order." in flash_of(refused)
    assert await get_setting(db, queue.SORT_SETTING) == "time"
    changed = await db.execute(
        select(AuditEntry).where(AuditEntry.action == "queue.order_changed").order_by(AuditEntry.id)
    )
    assert [row.data["to"] for row in changed.scalars()][-1] == "time"


async def test_a_doctor_sees_their_own_patients_and_calls_only_them(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await morning(db, clinic)
    sari_patient = await visit(db, clinic, at(clinic, 9), name="Sinta Maharani", doctor="sari")
    await checked_in(db, sari_patient)
    csrf = await sign_in_doctor(client, db, clinic, "andi")

    html = await (await client.get("/inbox/queue")).text()

    assert tokens_in(html) == ["A-003", "A-002", "A-001"] and "Sinta Maharani" not in html
    assert "Call my next patient (3 waiting)" in html
    assert ' draggable="true">' not in html and "Cancel visit" not in html and "Save order" not in html
    entry = (await db.execute(select(QueueEntry).where(QueueEntry.session_id == sari_patient.id))).scalar_one()
    move = await client.post(f"/inbox/queue/{entry.id}/move", data={"csrf_token": csrf, "after": "1"})
    assert move.status == 403
    for_sari = await post(
        client, "/inbox/queue/call-next",
        {"csrf_token": csrf, "branch": str(clinic.branch.id), "doctor": str(clinic.doctors["sari"].id)},
        from_page="/inbox/queue",
    )  # fmt: skip
    assert "A doctor can only call their own next patient." in flash_of(for_sari)


async def test_branch_staff_never_see_or_change_another_branchs_queue(client: Client, db: AsyncSession) -> None:
    ours = await midday_clinic(db)
    theirs = await midday_clinic(db, token_prefix="B")
    (other, *_rest) = await morning(db, theirs)
    their_entry = (await db.execute(select(QueueEntry).where(QueueEntry.session_id == other.id))).scalar_one()
    rank = their_entry.rank
    csrf = await sign_in_page(client, db, "staff", branch_id=ours.branch.id)

    html = await (await client.get(board_url(theirs))).text()
    assert f"Queue · {ours.branch.name}" in html and tokens_in(html) == []
    moved = await post(client, f"/inbox/queue/{their_entry.id}/move",
                       {"csrf_token": csrf, "after": "1", "sort": "manual"}, from_page="/inbox/queue")  # fmt: skip
    cancelled = await post(client, f"/inbox/queue/sessions/{other.id}/cancel",
                           {"csrf_token": csrf, "reason": "patient_request"}, from_page="/inbox/queue")  # fmt: skip
    completed = await post(client, f"/inbox/queue/sessions/{other.id}/complete",
                           {"csrf_token": csrf}, from_page="/inbox/queue")  # fmt: skip

    assert f"There is no queue entry {their_entry.id}." in flash_of(moved)
    assert f"There is no session {other.id}." in flash_of(cancelled)
    assert f"There is no session {other.id}." in flash_of(completed)
    await db.refresh(other)
    await db.refresh(their_entry)
    assert (other.status, their_entry.rank) == ("waiting", rank)


async def test_board_posts_without_the_pages_csrf_token_change_nothing(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    sessions = await morning(db, clinic)
    await sign_in_page(client, db, "owner")

    responses = [
        await client.post("/inbox/queue/call-next", data={"branch": str(clinic.branch.id),
                                                          "doctor": str(clinic.doctors["andi"].id)}),
        await client.post(f"/inbox/queue/sessions/{sessions[0].id}/cancel",
                          data={"csrf_token": "forged", "reason": "patient_request"}),
        await client.post("/inbox/queue/order", data={"csrf_token": "", "order": "time"}),
    ]  # fmt: skip

    assert [r.status for r in responses] == [403, 403, 403]
    for session in sessions:
        await db.refresh(session)
    assert {s.status for s in sessions} == {"waiting"}
    assert await queue.default_sort(db) is queue.SortMode.ARRIVAL


async def test_patient_names_with_markup_show_as_text(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await checked_in(db, await visit(db, clinic, at(clinic, 9), name="<script>alert(1)</script> <b>Budi</b>"))
    await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await (await client.get("/inbox/queue")).text()

    assert "<script>alert(1)</script>" not in html and "<b>Budi</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;Budi&lt;/b&gt;" in html


async def test_an_empty_day_says_how_patients_get_on_the_board(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await checked_in(db, await visit(db, clinic, at(clinic, 9), name="Dewi Lestari"))
    await sign_in_page(client, db, "owner")
    tomorrow = (at(clinic, 12) + timedelta(days=1)).astimezone(ZoneInfo(clinic.branch.tz)).date()

    html = await (await client.get(board_url(clinic, day=tomorrow.isoformat()))).text()

    assert "Nobody is waiting on this day — patients appear here when they check in at the desk" in html
    assert "Dewi Lestari" not in html and "Call the next patient" not in html


async def test_a_stranger_is_sent_to_sign_in(client: Client) -> None:
    response = await client.get("/inbox/queue?branch=1", allow_redirects=False)
    assert response.status == 303
    assert URL(response.headers["Location"]).query["next"] == "/inbox/queue?branch=1"
