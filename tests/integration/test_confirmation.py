"""`GET,POST /c/{token}`: the patient's confirmation page, and the same answers given in the chat.

Every test books its own visit in its own clinic. The page is opened first (it carries the CSRF token bound to the
link), then posted to. All requests come from 127.0.0.1, so the per-IP limits are reset before each test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis import Redis as SyncRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, Occupancy, OutboxMessage, Session
from booking_core.domain.actors import Actor
from booking_core.domain.codes import mask_name
from booking_core.domain.links import link_expires_at
from booking_core.services import booking, followups, lifecycle, session_deletion, visit_link, visit_messages
from devtools.builders import Clinic, add_patient, insert_session, next_weekday
from gateway import confirmation_page
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.integration.test_conversation import Chat, buttons, text

Client = TestClient[Any, Any]
DESK = Actor(kind="staff", name="desk", role="staff")
OWNER = Actor(kind="staff", name="owner", role="owner")


@pytest.fixture(autouse=True)
def fresh_rate_limits(sync_redis: SyncRedis, settings: Settings) -> Iterator[None]:
    keys = [f"{settings.FRONTDESK_REDIS_PREFIX}:rate:confirm:{kind}:ip:127.0.0.1" for kind in ("view", "post")]
    sync_redis.delete(*keys)
    yield
    sync_redis.delete(*keys)


@pytest.fixture
def tuesday_ten() -> datetime:
    """Next week's Tuesday at 10:00 in Jakarta: dr. Andi attends, far from any cut-off."""
    return next_weekday(1, hour=10)


_SENT: dict[tuple[int, str, str], str] = {}


def link(visit: Session, *, secret: str = TEST_SECRET) -> str:
    """The path of the link sent for ``visit`` (one per visit: a token made a second later differs)."""
    key = (visit.id, visit.booking_code, secret)
    if key not in _SENT:
        expires_at = link_expires_at(visit.ends_at)
        _SENT[key] = "/c/" + visit_link.link_token(secret, visit.id, visit.booking_code, expires_at=expires_at)
    return _SENT[key]


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return html.unescape(found.group(1))


async def open_page(client: Client, path: str, query: str = "") -> str:
    response = await client.get(path + query)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    return await response.text()


async def post(client: Client, path: str, **form: str) -> Any:
    """Open the page (for its CSRF token), then post ``form``; redirects are not followed."""
    page = await open_page(client, path)
    data = {"csrf_token": hidden(page, "csrf_token"), **form}
    return await client.post(path, data=data, allow_redirects=False)


async def reloaded(db: AsyncSession, visit: Session) -> Session:
    found = (
        await db.execute(select(Session).where(Session.id == visit.id).execution_options(populate_existing=True))
    ).scalar_one()
    await db.commit()
    return found


async def audit_rows(db: AsyncSession, session_id: int) -> list[AuditEntry]:
    rows = await db.execute(
        select(AuditEntry).where(AuditEntry.entity == "session", AuditEntry.entity_id == session_id)
    )
    found = list(rows.scalars())
    await db.commit()
    return found


async def outbox_rows(db: AsyncSession, dedupe_key: str) -> list[OutboxMessage]:
    rows = list((await db.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))).scalars())
    await db.commit()
    return rows


# --- what the page shows ---------------------------------------------------------------------------------


async def test_the_page_shows_the_visit_in_the_branch_time_with_a_masked_name(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    page = await open_page(client, link(visit))  # Siti's language is Indonesian
    assert "Kunjungan Anda" in page and "10:00" in page and "Selasa" in page
    assert "dr. Andi Wijaya" in page and "General consultation" in page and visit.booking_code in page
    assert html.escape(mask_name("Siti Rahmawati")) in page and "Siti Rahmawati" not in page
    english = await open_page(client, link(visit), "?lang=en")
    assert "Your visit" in english and "Tuesday" in english and "Confirm my visit" in english


# --- confirm ---------------------------------------------------------------------------------------------


async def test_confirming_accepts_the_visit_and_plans_the_check_in_qr(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    response = await post(client, link(visit), action="confirm", lang="en")
    assert response.status == 303
    assert response.headers["Location"] == f"{link(visit)}?done=confirmed&lang=en"
    confirmed = await reloaded(db, visit)
    assert confirmed.accepted and confirmed.confirmed_at is not None and confirmed.status == "waiting"
    (row,) = [r for r in await audit_rows(db, visit.id) if r.action == "session.confirmed"]
    assert row.actor_kind == "patient" and row.actor_id == clinic.patients["siti"].id and row.data["via"] == "link"
    (qr,) = await outbox_rows(db, f"checkin-qr:{visit.id}")
    assert qr.kind == "checkin_qr" and qr.payload["image"]["content_type"] == "image/png"
    page = await open_page(client, response.headers["Location"])
    assert "Your visit is confirmed" in page and 'data-state="confirmed"' in page
    assert 'src="data:image/svg+xml' in page and "Confirm my visit" not in page


async def test_confirming_twice_changes_nothing_the_second_time(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    first = await post(client, link(visit), action="confirm")
    when = (await reloaded(db, visit)).confirmed_at
    # The second post comes from the tab opened before the first confirmation (same CSRF token, same form).
    page = await open_page(client, link(visit))
    assert first.status == 303
    again = await client.post(
        link(visit),
        data={"csrf_token": hidden(page, "csrf_token"), "action": "confirm"},
        allow_redirects=False,
    )
    assert again.status == 303 and "done=already_confirmed" in again.headers["Location"]
    assert (await reloaded(db, visit)).confirmed_at == when
    assert [r.action for r in await audit_rows(db, visit.id)].count("session.confirmed") == 1
    assert len(await outbox_rows(db, f"checkin-qr:{visit.id}")) == 1


# --- cancel ----------------------------------------------------------------------------------------------


async def test_cancelling_with_a_reason_frees_the_time(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    response = await post(client, link(visit), action="cancel", reason="patient_request", note="Ada acara keluarga")
    assert response.status == 303 and "done=cancelled" in response.headers["Location"]
    cancelled = await reloaded(db, visit)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "patient_request"
    assert cancelled.cancel_note == "Ada acara keluarga"
    claim = await db.get(Occupancy, visit.occupancy_id)
    assert claim is not None and not claim.active
    (row,) = [r for r in await audit_rows(db, visit.id) if r.action == "session.cancelled"]
    assert row.actor_kind == "patient"
    # The time is free: another patient is booked into it at the desk.
    budi = await add_patient(db)
    async with db.begin():
        again = await booking.book(
            db, actor=DESK, branch_id=clinic.branch.id, patient_id=budi.id,
            examination_ids=[clinic.examinations["GP"].id], start=tuesday_ten, doctor_id=clinic.doctors["andi"].id,
        )  # fmt: skip
    assert again.starts_at == tuesday_ten
    page = await open_page(client, response.headers["Location"])
    assert "Kunjungan Anda sudah dibatalkan" in page and "Konfirmasi kunjungan saya" not in page


async def test_another_reason_needs_a_note_and_nothing_changes_without_it(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    response = await post(client, link(visit), action="cancel", reason="other", note="   ", lang="en")
    assert response.status == 422
    assert "Please tell us why you are cancelling." in await response.text()
    assert (await reloaded(db, visit)).status == "waiting"


# --- reschedule ------------------------------------------------------------------------------------------


def offered_slots(page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'<option value="([^"]+)"', page)]


async def test_rescheduling_moves_the_visit_to_a_free_time_in_one_step(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    picker = await open_page(client, link(visit), "?view=reschedule&lang=en")
    slots = offered_slots(picker)
    assert slots and "Move my visit" in picker
    wednesday = [s for s in slots if datetime.fromisoformat(s.split("|")[0]) >= tuesday_ten + timedelta(days=1)]
    chosen = wednesday[0]
    new_start = datetime.fromisoformat(chosen.split("|")[0])
    response = await client.post(
        link(visit),
        data={"csrf_token": hidden(picker, "csrf_token"), "action": "reschedule", "slot": chosen, "lang": "en"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert "done=rescheduled" in location and not location.startswith(link(visit))
    old = await reloaded(db, visit)
    assert old.status == "cancelled" and old.cancel_reason == "patient_request"
    new = (
        await db.execute(
            select(Session).where(Session.patient_id == visit.patient_id, Session.status == "waiting",
                                  Session.branch_id == clinic.branch.id)
        )
    ).scalar_one()  # fmt: skip
    await db.commit()
    assert new.starts_at == new_start and new.accepted and new.confirmed_at is not None
    moved = [r for r in await audit_rows(db, new.id) if r.action == "session.rescheduled"]
    assert moved and moved[0].actor_kind == "patient" and moved[0].data["from_session"] == visit.id
    page = await open_page(client, location)
    assert f"Your new booking code is {new.booking_code}" in page
    gone = await client.get(link(visit))  # the old link still shows the old, cancelled visit
    assert gone.status == 200 and 'data-state="cancelled"' in await gone.text()


async def test_a_time_taken_meanwhile_keeps_the_old_visit(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    picker = await open_page(client, link(visit), "?view=reschedule&lang=en")
    chosen = next(s for s in offered_slots(picker) if s.endswith(f"|{clinic.doctors['andi'].id}"))
    start = datetime.fromisoformat(chosen.split("|")[0])
    await insert_session(db, clinic, starts_at=start, room="consult-2")  # the desk was faster
    response = await client.post(
        link(visit),
        data={"csrf_token": hidden(picker, "csrf_token"), "action": "reschedule", "slot": chosen, "lang": "en"},
        allow_redirects=False,
    )
    assert response.status == 409
    assert "That time has just been taken" in await response.text()
    kept = await reloaded(db, visit)
    assert kept.status == "waiting"
    claim = await db.get(Occupancy, visit.occupancy_id)
    assert claim is not None and claim.active


# --- the cut-off -----------------------------------------------------------------------------------------


async def test_inside_the_cut_off_cancel_and_reschedule_are_refused_with_the_clinic_phone(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    clinic.branch.phone = "+62215550123"
    await db.commit()
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=60)  # the cut-off is 120 minutes
    visit = await insert_session(db, clinic, starts_at=soon)
    page = await open_page(client, link(visit), "?lang=en")
    assert "too close to your visit" in page and "+62215550123" in page
    assert 'value="cancel"' not in page and "Choose another time" not in page
    for form in ({"action": "cancel", "reason": "patient_request"}, {"action": "reschedule",
                 "slot": f"{(soon + timedelta(days=2)).isoformat()}|{clinic.doctors['andi'].id}"}):  # fmt: skip
        response = await client.post(
            link(visit), data={"csrf_token": hidden(page, "csrf_token"), "lang": "en", **form}, allow_redirects=False
        )
        assert response.status == 409, form
        refusal = await response.text()
        assert "too close to your visit" in refusal and 'href="tel:+62215550123"' in refusal
    assert (await reloaded(db, visit)).status == "waiting"
    # Confirming is still possible: the patient may always say they will come.
    assert (await post(client, link(visit), action="confirm")).status == 303


# --- refused links and forms -----------------------------------------------------------------------------


def _signed(
    payload: dict[str, Any],
    *,
    secret: str = TEST_SECRET,
    salt: str = visit_link.LINK_SALT,
    signed_at: datetime | None = None,
) -> str:
    """A token made as our serializer makes them, but with any secret, salt and signing time."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((signed_at or datetime.now(UTC)).timestamp())

    return str(URLSafeTimedSerializer(secret, salt=salt, signer=Then).dumps(payload))


def _tokens(visit: Session) -> dict[str, str]:
    future = int((visit.ends_at + timedelta(days=1)).timestamp())
    good = link(visit).removeprefix("/c/")
    body, dot, signature = good.rpartition(".")
    return {
        "tampered": body[:-3] + ("AAA" if body[-3:] != "AAA" else "BBB") + dot + signature,
        "tampered_signature": body + dot + signature[::-1],
        "expired": _signed(
            {"s": visit.id, "c": visit.booking_code, "x": int((datetime.now(UTC) - timedelta(hours=1)).timestamp())},
            signed_at=datetime.now(UTC) - timedelta(days=3),
        ),
        "too_old": _signed(
            {"s": visit.id, "c": visit.booking_code, "x": future}, signed_at=datetime.now(UTC) - timedelta(days=401)
        ),
        "foreign_secret": _signed({"s": visit.id, "c": visit.booking_code, "x": future}, secret="another-clinic-key"),
        "foreign_purpose": _signed({"s": visit.id, "c": visit.booking_code, "x": future}, salt="frontdesk.other"),
        "another_code": _signed({"s": visit.id, "c": "ZZZZ2222", "x": future}),
        "unknown_session": _signed({"s": 2_000_000_000, "c": visit.booking_code, "x": future}),
        "garbage": "not-a-token-at-all-but-long-enough",
    }


BAD_LINKS = ["tampered", "tampered_signature", "expired", "too_old", "foreign_secret", "foreign_purpose",
             "another_code", "unknown_session", "garbage"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_LINKS)
async def test_a_bad_link_opens_nothing_and_changes_nothing(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime, kind: str
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    token = _tokens(visit)[kind]
    shown = await client.get(f"/c/{token}")
    assert shown.status == 404
    assert "This link is not valid any more" in await shown.text()
    csrf = confirmation_page.csrf_token(TEST_SECRET, token)
    for form in ({"action": "confirm"}, {"action": "cancel", "reason": "patient_request"}):
        response = await client.post(f"/c/{token}", data={"csrf_token": csrf, **form}, allow_redirects=False)
        assert response.status == 404
        assert "This link is not valid any more" in await response.text()
    unchanged = await reloaded(db, visit)
    assert unchanged.status == "waiting" and not unchanged.accepted and unchanged.confirmed_at is None
    assert await audit_rows(db, visit.id) == []


async def test_a_link_to_a_deleted_visit_opens_nothing(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    path = link(visit)
    async with db.begin():
        await session_deletion.delete_permanently(db, visit.id, actor=OWNER, confirm=f"DELETE {visit.booking_code}")
    response = await client.get(path)
    assert response.status == 404 and "This link is not valid any more" in await response.text()


async def test_a_post_without_the_pages_csrf_token_is_refused(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    other = await insert_session(db, clinic, starts_at=tuesday_ten + timedelta(hours=2))
    other_page = await open_page(client, link(other))
    for csrf in (None, "", "forged", hidden(other_page, "csrf_token")):  # missing, empty, made up, another link's
        data = {"action": "confirm"} if csrf is None else {"action": "confirm", "csrf_token": csrf}
        response = await client.post(link(visit), data=data, allow_redirects=False)
        assert response.status == 403, csrf
    unchanged = await reloaded(db, visit)
    assert not unchanged.accepted and unchanged.confirmed_at is None


async def test_too_many_posts_from_one_address_are_slowed_down(
    client: Client, db: AsyncSession, clinic: Clinic, tuesday_ten: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confirmation_page, "POSTS_PER_WINDOW", 2)
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    page = await open_page(client, link(visit))
    statuses = []
    for _ in range(3):
        response = await client.post(link(visit), data={"action": "nothing"}, allow_redirects=False)
        statuses.append(response.status)
    assert statuses == [403, 403, 429]
    refused = await client.post(
        link(visit), data={"csrf_token": hidden(page, "csrf_token"), "action": "confirm"}, allow_redirects=False
    )
    assert refused.status == 429 and refused.headers["Retry-After"]
    assert not (await reloaded(db, visit)).accepted


# --- the same answers in the chat ------------------------------------------------------------------------


def siti_on_whatsapp(sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, now: datetime) -> Chat:
    return Chat(sessionmaker=sessionmaker, now=now, channel="whatsapp", phone=clinic.patients["siti"].phone_e164,
                language="en")  # fmt: skip


async def _send_confirmation(sessionmaker: async_sessionmaker[AsyncSession], visit: Session) -> list[int]:
    async with sessionmaker() as db, db.begin():
        return await visit_messages.send_confirmation(db, visit.id, secret=TEST_SECRET, base_url="http://clinic.test")


async def test_replying_1_to_the_confirmation_confirms_the_visit(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    now = tuesday_ten - timedelta(days=1)
    assert await _send_confirmation(sessionmaker, visit)
    siti = siti_on_whatsapp(sessionmaker, clinic, now)
    replies = await siti.send("1")
    assert "is confirmed" in text(replies) and visit.booking_code in text(replies)
    assert any(r.get("image") for r in replies)  # the check-in QR goes out with the answer
    confirmed = await reloaded(db, visit)
    assert confirmed.accepted and confirmed.confirmed_at is not None
    (row,) = [r for r in await audit_rows(db, visit.id) if r.action == "session.confirmed"]
    assert row.actor_kind == "patient" and row.data["via"] == "chat"
    # "1" now means the menu's first option again (book a visit): the confirmation is no longer the latest message.
    again = await siti.send("1")
    assert any(d.startswith("ex:") for d in buttons(again)) and "is confirmed" not in text(again)
    assert [r.action for r in await audit_rows(db, visit.id)].count("session.confirmed") == 1


async def test_replying_2_to_the_confirmation_cancels_with_a_reason(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    now = tuesday_ten - timedelta(days=1)
    await _send_confirmation(sessionmaker, visit)
    siti = siti_on_whatsapp(sessionmaker, clinic, now)
    asked = await siti.send("2")
    assert "rs:cant_come" in buttons(asked) and visit.booking_code in text(asked)
    assert (await reloaded(db, visit)).status == "waiting"  # nothing happens before the reason
    done = await siti.send("1")  # WhatsApp: the first reason, "I can't come"
    assert "is cancelled" in text(done)
    cancelled = await reloaded(db, visit)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "patient_request"
    (row,) = [r for r in await audit_rows(db, visit.id) if r.action == "session.cancelled"]
    assert row.actor_kind == "patient"


async def test_the_confirm_button_works_and_a_button_for_someone_elses_visit_does_not(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic, tuesday_ten: datetime
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    budi = await add_patient(db)
    clinic.patients["budi"] = budi
    theirs = await insert_session(db, clinic, starts_at=tuesday_ten + timedelta(hours=2), patient="budi")
    siti = siti_on_whatsapp(sessionmaker, clinic, tuesday_ten - timedelta(days=1))
    refused = await siti.send(button=f"cf:yes:{theirs.id}")
    assert "couldn't change" in text(refused)
    assert not (await reloaded(db, theirs)).accepted
    replies = await siti.send(button=f"cf:yes:{visit.id}")
    assert "is confirmed" in text(replies)
    assert (await reloaded(db, visit)).accepted


# --- the rating ------------------------------------------------------------------------------------------


async def test_a_completed_visit_gets_a_thank_you_and_the_rating_is_stored_once(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession, clinic: Clinic
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    visit = await insert_session(db, clinic, starts_at=start, accepted=True)  # the desk accepted it
    async with sessionmaker() as desk, desk.begin():
        await lifecycle.start(desk, visit.id, actor=DESK)
        done = await lifecycle.complete(desk, visit.id, actor=DESK)
        await followups.run(desk, done.follow_ups)
    (thanks,) = await outbox_rows(db, f"thanks:{visit.id}")
    assert thanks.kind == "thank_you" and thanks.channel == "whatsapp"
    assert [b["data"] for b in thanks.payload["buttons"]] == [f"rate:{visit.id}:{n}" for n in range(1, 6)]
    siti = siti_on_whatsapp(sessionmaker, clinic, datetime.now(UTC))
    rated = await siti.send("5")  # WhatsApp shows the stars as options 1-5
    assert "Thank you for your rating (5 of 5)" in text(rated)
    assert (await reloaded(db, visit)).rating == 5
    again = await siti.send(button=f"rate:{visit.id}:2")
    assert "already rated" in text(again)
    assert (await reloaded(db, visit)).rating == 5
    assert [r.action for r in await audit_rows(db, visit.id)].count("session.rated") == 1
    assert await siti.send(button=f"rate:{visit.id}:9") != []  # not a rating: the bot still answers
    assert (await reloaded(db, visit)).rating == 5


async def test_completing_a_visit_of_an_unreachable_patient_is_recorded_and_sends_nothing(
    db: AsyncSession, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    budi = await add_patient(db)  # no channel identity at all
    clinic.patients["budi"] = budi
    visit = await insert_session(db, clinic, starts_at=datetime.now(UTC) - timedelta(minutes=20), patient="budi",
                                 accepted=True)  # fmt: skip
    async with sessionmaker() as desk, desk.begin():
        await lifecycle.start(desk, visit.id, actor=DESK)
        done = await lifecycle.complete(desk, visit.id, actor=DESK)
        await followups.run(desk, done.follow_ups)
    assert done.session.status == "completed"
    assert await outbox_rows(db, f"thanks:{visit.id}") == []
    actions = [r.action for r in await audit_rows(db, visit.id)]
    assert "thank_you.unreachable" in actions and "session.completed" in actions
