"""The front desk works its lead inbox in the web app: every channel's requests in one list, a lead's whole
conversation, replies on the patient's own channel (the bot steps aside), accept, reject and convert in one click."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from rq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, Conversation, Lead, Message, OutboxMessage, Session, SlotHold
from booking_core.domain.actors import SYSTEM
from booking_core.domain.messages import ContactRef, InboundMessage, OutboundMessage
from booking_core.services import booking, conversation, ingest, outbox
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday
from infra import job_names, queues
from tests.integration.staff_pages import sign_in_page

Client = TestClient[object, object]
Sessions = async_sessionmaker[AsyncSession]


def _chat_id() -> str:
    return str(5_000_000_000 + secrets.randbelow(10**9))


async def _writes(
    sessionmaker: Sessions,
    text: str,
    *,
    channel: str = "telegram",
    name: str = "Dewi Anggraini",
    external: str | None = None,
    phone: str | None = None,
) -> ingest.Received:
    """A patient writes to the clinic on ``channel``: the message lands on a (new) lead in the inbox."""
    contact = ContactRef(
        channel=channel,  # type: ignore[arg-type]
        external_id=external or (phone if channel == "whatsapp" and phone else _chat_id()),
        display_name=name,
        phone=phone,
        language_code="en",
    )
    inbound = InboundMessage(
        channel=channel,  # type: ignore[arg-type]
        external_id=f"{channel}-{secrets.token_hex(8)}",
        contact=contact,
        received_at=datetime.now(UTC),
        text=text,
    )
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, inbound)
    assert received.lead_id is not None
    return received


async def _for_branch(sessionmaker: Sessions, lead_id: int, clinic: Clinic, *, exam: str = "GP") -> None:
    async with sessionmaker() as db, db.begin():
        await db.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(branch_id=clinic.branch.id, examination_id=clinic.examinations[exam].id)
        )


async def _hold_for_lead(sessionmaker: Sessions, clinic: Clinic, lead_id: int, start: datetime) -> SlotHold:
    """The chat held a GP slot with dr. Andi for the lead (as the dialog does when the patient picks a time)."""
    async with sessionmaker() as db, db.begin():
        held = await booking.hold(
            db, actor=SYSTEM, branch_id=clinic.branch.id, examination_id=clinic.examinations["GP"].id, start=start,
            doctor_id=clinic.doctors["andi"].id,
        )  # fmt: skip
        await db.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(branch_id=clinic.branch.id, examination_id=held.examination_id, doctor_id=held.doctor_id,
                    requested_start=held.starts_at, hold_id=held.id)
        )  # fmt: skip
        return held


async def _page(client: Client, url: str, status: int = 200) -> str:
    response = await client.get(url)
    html = await response.text()
    assert response.status == status, html[:500]
    return html


async def _post(client: Client, url: str, token: str, **fields: str) -> Any:
    response = await client.post(url, data={"csrf_token": token, **fields}, allow_redirects=False)
    assert response.status == 303, (await response.text())[:500]
    return response


def _lead_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-lead="(\d+)"', html)]


def _flash(html: str) -> str:
    found = re.search(r'<div id="flash"[^>]*>(.*?)</div>', html, re.S)
    return found.group(1).strip() if found else ""


async def _scalar(sessionmaker: Sessions, statement: Any) -> Any:
    async with sessionmaker() as db:
        return (await db.execute(statement)).scalar_one_or_none()


async def _rows(sessionmaker: Sessions, statement: Any) -> list[Any]:
    async with sessionmaker() as db:
        return list((await db.execute(statement)).scalars())


async def _audit(sessionmaker: Sessions, action: str | None, entity: str, entity_id: int | None) -> list[AuditEntry]:
    statement = select(AuditEntry).where(AuditEntry.entity == entity, AuditEntry.entity_id == entity_id)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    return await _rows(sessionmaker, statement.order_by(AuditEntry.id))


# --- the inbox


async def test_the_inbox_shows_every_channels_leads_new_first_with_what_they_asked(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    marker = secrets.token_hex(4)
    phone = f"+62812{secrets.randbelow(10**8):08d}"
    first = await _writes(
        sessionmaker, f"Halo, mau periksa gigi {marker}", channel="whatsapp", name="Budi", phone=phone
    )
    second = await _writes(sessionmaker, f"Can I book a check-up? {marker}", name="Ayu")
    third = await _writes(sessionmaker, f"Hello from the website {marker}", channel="webchat", name="Rina")
    token = await sign_in_page(client, db, "staff")
    await _post(client, f"/inbox/leads/{third.lead_id}/accept", token)  # the newest, but no longer new

    html = await _page(client, f"/inbox?q={marker}")
    assert _lead_ids(html) == [second.lead_id, first.lead_id, third.lead_id]
    assert 'data-live="leads,messages,outbox,conversations"' in html
    for text in ("WhatsApp", "Telegram", "Web chat", "Budi", "Ayu", "Rina", "Accepted", f"mau periksa gigi {marker}"):
        assert text in html
    # The patient's latest message moves an older lead up among the new ones.
    await _writes(sessionmaker, f"Masih ada jadwal? {marker}", channel="whatsapp", name="Budi", phone=phone)
    html = await _page(client, f"/inbox?q={marker}")
    assert _lead_ids(html) == [first.lead_id, second.lead_id, third.lead_id]
    assert f"Masih ada jadwal? {marker}" in html


async def test_staff_filter_the_inbox_by_channel_status_and_branch_and_search_by_phone_or_words(
    client: Client, db: AsyncSession, sessionmaker: Sessions, clinic: Clinic
) -> None:
    marker = secrets.token_hex(4)
    phone = f"+62857{secrets.randbelow(10**8):08d}"
    on_whatsapp = await _writes(sessionmaker, f"jadwal dokter anak {marker}", channel="whatsapp", phone=phone)
    on_telegram = await _writes(sessionmaker, f"scaling please {marker}")
    on_web = await _writes(sessionmaker, f"facial treatment {marker}", channel="webchat", name="Maya")
    await _for_branch(sessionmaker, on_web.lead_id or 0, clinic, exam="FACIAL")
    token = await sign_in_page(client, db, "owner")
    await _post(client, f"/inbox/leads/{on_telegram.lead_id}/accept", token)

    assert _lead_ids(await _page(client, f"/inbox?q={marker}&channel=telegram")) == [on_telegram.lead_id]
    assert _lead_ids(await _page(client, f"/inbox?q={marker}&status=new")) == [on_web.lead_id, on_whatsapp.lead_id]
    assert _lead_ids(await _page(client, f"/inbox?q={marker}&branch={clinic.branch.id}")) == [on_web.lead_id]
    web_row = await _page(client, f"/inbox?q={marker}&branch={clinic.branch.id}")
    assert "Acne facial treatment" in web_row and clinic.branch.name in web_row
    # The number as a receptionist types it finds the stored +62 one; a word of the message finds its lead.
    local = "0" + phone.removeprefix("+62")
    typed = f"{local[:4]}-{local[4:8]} {local[8:]}"
    assert _lead_ids(await _page(client, f"/inbox?q={typed}")) == [on_whatsapp.lead_id]
    assert _lead_ids(await _page(client, f"/inbox?q=scaling please {marker}")) == [on_telegram.lead_id]
    nothing = await _page(client, f"/inbox?q=nobody-{marker}")
    assert "No leads match these filters" in nothing and _lead_ids(nothing) == []


async def test_the_inbox_pages_through_many_leads(client: Client, db: AsyncSession, sessionmaker: Sessions) -> None:
    marker = secrets.token_hex(4)
    written = [await _writes(sessionmaker, f"request {n} {marker}") for n in range(27)]
    await sign_in_page(client, db, "staff")
    first = await _page(client, f"/inbox?q={marker}")
    assert _lead_ids(first) == [r.lead_id for r in reversed(written)][:25]
    assert f'href="/inbox?q={marker}&amp;page=2"' in first and "Newer" not in first
    second = await _page(client, f"/inbox?q={marker}&page=2")
    assert _lead_ids(second) == [written[1].lead_id, written[0].lead_id]
    assert "Older" not in second and f'href="/inbox?q={marker}"' in second


async def test_a_failed_delivery_is_flagged_and_staff_send_it_again(
    client: Client, db: AsyncSession, sessionmaker: Sessions, sync_redis: SyncRedis
) -> None:
    marker = secrets.token_hex(4)
    chat = _chat_id()
    received = await _writes(sessionmaker, f"hello {marker}", external=chat)
    async with sessionmaker() as s, s.begin():
        outbox_id = await outbox.add(
            s, OutboundMessage(channel="telegram", recipient=chat, text=f"Which day suits you? {marker}"),
            conversation_id=received.conversation_id, identity_id=received.identity_id,
        )  # fmt: skip
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(status="failed", last_error="403: Forbidden: bot was blocked by the user")
        )
    token = await sign_in_page(client, db, "staff")
    assert "Failed delivery" in await _page(client, f"/inbox?q={marker}")
    html = await _page(client, f"/inbox/leads/{received.lead_id}")
    assert "Not delivered: 403: Forbidden: bot was blocked by the user" in html
    retry_url = f"/inbox/leads/{received.lead_id}/messages/{outbox_id}/retry"
    assert f'action="{retry_url}"' in html

    response = await _post(client, retry_url, token)
    assert response.headers["Location"] == f"/inbox/leads/{received.lead_id}"
    row = await _scalar(sessionmaker, select(OutboxMessage).where(OutboxMessage.id == outbox_id))
    assert row.status == "pending"
    retried = Job.fetch(f"deliver-{outbox_id}-retry-1", connection=sync_redis)
    assert (retried.func_name, retried.timeout) == (job_names.DELIVER, queues.DELIVER_TIMEOUT)  # as any deliver job
    assert "Failed delivery" not in await _page(client, f"/inbox?q={marker}")
    again = await client.post(retry_url, data={"csrf_token": token}, allow_redirects=True)
    assert "not failed" in _flash(await again.text())


# --- a lead's page


async def test_the_lead_page_shows_the_patients_whole_conversation_across_channels(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    phone = f"+62813{secrets.randbelow(10**8):08d}"
    chat = _chat_id()
    await _writes(sessionmaker, "Halo dari WhatsApp", channel="whatsapp", name="Siti", phone=phone)
    later = await _writes(sessionmaker, "dan dari Telegram", name="Siti R.", external=chat, phone=phone)
    async with sessionmaker() as s, s.begin():
        await outbox.add(
            s,
            OutboundMessage(channel="telegram", recipient=chat, text="Which examination would you like?"),
            conversation_id=later.conversation_id, identity_id=later.identity_id,
        )  # fmt: skip
    await sign_in_page(client, db, "staff")
    html = await _page(client, f"/inbox/leads/{later.lead_id}")
    order = [html.index(t) for t in ("Halo dari WhatsApp", "dan dari Telegram", "Which examination would you like?")]
    assert order == sorted(order)
    assert 'id="thread" data-live="messages,outbox,conversations"' in html
    assert re.search(r"<strong>Bot</strong>", html) and "Sending…" in html
    assert phone in html  # the matched patient record, with both channels
    assert html.count('class="badge ch ch-whatsapp"') >= 2 and "Reply on Telegram" in html


async def test_a_staff_reply_goes_out_on_the_patients_channel_and_pauses_the_bot(
    client: Client, db: AsyncSession, sessionmaker: Sessions, sync_redis: SyncRedis
) -> None:
    chat = _chat_id()
    received = await _writes(sessionmaker, "Is dr. Andi in on Saturday?", external=chat, name="Rizky")
    token = await sign_in_page(client, db, "staff")
    page = await _page(client, f"/inbox/leads/{received.lead_id}")
    assert "Bot active" in page and "Take over" in page
    key = re.search(r'name="reply_key" value="([^"]+)"', page)
    assert key is not None

    fields = {"text": "Yes, from 09:00 to 12:00. Shall I book you?", "reply_key": key.group(1)}
    await _post(client, f"/inbox/leads/{received.lead_id}/reply", token, **fields)
    await _post(client, f"/inbox/leads/{received.lead_id}/reply", token, **fields)  # a double submit
    rows = await _rows(
        sessionmaker, select(OutboxMessage).where(OutboxMessage.kind == "staff_reply", OutboxMessage.recipient == chat)
    )
    assert len(rows) == 1
    sent = rows[0]
    assert sent.channel == "telegram" and sent.payload["text"] == fields["text"]
    assert Job.fetch(f"deliver-{sent.id}", connection=sync_redis).func_name == job_names.DELIVER
    said = await _scalar(sessionmaker, select(Message).where(Message.outbox_id == sent.id))
    assert said.author == "staff" and said.conversation_id == received.conversation_id
    chat_row = await _scalar(sessionmaker, select(Conversation).where(Conversation.id == received.conversation_id))
    assert chat_row.bot_paused is True
    replied = await _audit(sessionmaker, "lead.replied", "lead", received.lead_id)
    assert [r.data["outbox_id"] for r in replied] == [sent.id]

    html = await _page(client, f"/inbox/leads/{received.lead_id}")
    assert "Bot paused" in html and "Hand back to bot" in html
    assert fields["text"] in html
    assert f"<strong>{replied[0].actor_name}</strong>" in html  # who wrote it
    # While staff have the chat, the bot stays quiet.
    more = await _writes(sessionmaker, "Yes please, 10:00", external=chat, name="Rizky")
    async with sessionmaker() as s, s.begin():
        assert await conversation.handle(s, more.message_id) == []


async def test_handing_the_chat_back_lets_the_bot_answer_again(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    received = await _writes(sessionmaker, "I want to talk to a person")
    token = await sign_in_page(client, db, "admin")
    response = await client.post(
        f"/inbox/leads/{received.lead_id}/take-over", data={"csrf_token": token}, allow_redirects=True
    )
    assert "The bot is paused" in _flash(await response.text())
    response = await client.post(
        f"/inbox/leads/{received.lead_id}/hand-back", data={"csrf_token": token}, allow_redirects=True
    )
    html = await response.text()
    assert "Handed back" in _flash(html) and "Take over" in html and "Handed back to the bot" in html
    chat_row = await _scalar(sessionmaker, select(Conversation).where(Conversation.id == received.conversation_id))
    assert chat_row.bot_paused is False
    actions = [a.action for a in await _audit(sessionmaker, None, "conversation", received.conversation_id)]
    assert actions == ["conversation.paused", "conversation.resumed"]


async def test_a_booking_form_lead_cannot_be_replied_to_but_shows_the_phone(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    received = await _writes(
        sessionmaker,
        "Booking form: dental check-up, Monday morning",
        channel="webform",
        external=f"form-{secrets.token_hex(6)}",
    )
    async with sessionmaker() as s, s.begin():
        await s.execute(update(Lead).where(Lead.id == received.lead_id).values(contact_phone="+6281298765432"))
    token = await sign_in_page(client, db, "staff")
    html = await _page(client, f"/inbox/leads/{received.lead_id}")
    assert "has no chat to reply to" in html and 'href="tel:+6281298765432"' in html and "Send reply" not in html
    response = await client.post(
        f"/inbox/leads/{received.lead_id}/reply", data={"csrf_token": token, "text": "Hello"}, allow_redirects=True
    )
    assert "Call them at +6281298765432" in _flash(await response.text())


async def test_accepting_and_rejecting_tell_the_patient_and_a_rejection_needs_a_reason(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    accepted = await _writes(sessionmaker, "check-up please")
    rejected = await _writes(sessionmaker, "can I get antibiotics without a visit?")
    token = await sign_in_page(client, db, "staff")
    response = await client.post(
        f"/inbox/leads/{accepted.lead_id}/accept", data={"csrf_token": token}, allow_redirects=True
    )
    assert "Lead accepted. The patient is told on their channel." in _flash(await response.text())
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == accepted.lead_id)) == "accepted"
    told = await _rows(
        sessionmaker,
        select(OutboxMessage.kind).where(OutboxMessage.dedupe_key == f"lead-{accepted.lead_id}-lead_accepted"),
    )
    assert told == ["lead_accepted"]

    no_reason = await client.post(
        f"/inbox/leads/{rejected.lead_id}/reject", data={"csrf_token": token, "reason": "  "}, allow_redirects=True
    )
    assert "Say why the request is rejected" in _flash(await no_reason.text())
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == rejected.lead_id)) == "new"
    reason = "We cannot prescribe without an examination; please book a consultation."
    response = await client.post(
        f"/inbox/leads/{rejected.lead_id}/reject", data={"csrf_token": token, "reason": reason}, allow_redirects=True
    )
    html = await response.text()
    assert "Lead rejected." in _flash(html) and reason in html and "Convert to a session" not in html
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == rejected.lead_id)) == "rejected"


async def test_converting_a_lead_with_a_hold_books_the_held_slot_in_one_click(
    client: Client, db: AsyncSession, sessionmaker: Sessions, clinic: Clinic
) -> None:
    received = await _writes(sessionmaker, "GP on Monday 10:00 please", name="Dewi")
    start = next_weekday(0, hour=10)
    held = await _hold_for_lead(sessionmaker, clinic, received.lead_id or 0, start)
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    html = await _page(client, f"/inbox/leads/{received.lead_id}")
    value = f"{start.isoformat()}|{clinic.doctors['andi'].id}"
    assert re.search(rf'value="{re.escape(value)}" checked', html), "the hold is preselected"
    assert "Held for this lead" in html and "expires in" in html

    picked = {"slot": value, "branch": str(clinic.branch.id), "exam": str(clinic.examinations["GP"].id)}
    response = await client.post(
        f"/inbox/leads/{received.lead_id}/convert", data={"csrf_token": token, **picked}, allow_redirects=True
    )
    html = await response.text()
    session = await _scalar(sessionmaker, select(Session).where(Session.lead_id == received.lead_id))
    assert session is not None and session.starts_at == start and session.doctor_id == clinic.doctors["andi"].id
    assert f"Booked: {session.booking_code}" in _flash(html)
    assert f'href="/inbox/sessions/{session.id}"' in html and "Open the session" in html
    assert await _scalar(sessionmaker, select(SlotHold.status).where(SlotHold.id == held.id)) == "converted"
    # A double click (or a second tab) finds the same session.
    again = await client.post(
        f"/inbox/leads/{received.lead_id}/convert", data={"csrf_token": token, **picked}, allow_redirects=True
    )
    assert f"This lead was booked already: {session.booking_code}" in _flash(await again.text())
    count = await _scalar(sessionmaker, select(func.count()).where(Session.lead_id == received.lead_id))
    assert count == 1


async def test_the_slot_picker_offers_live_free_times_and_a_taken_one_brings_the_next_free_times(
    client: Client, db: AsyncSession, sessionmaker: Sessions, clinic: Clinic
) -> None:
    received = await _writes(sessionmaker, "General check-up next Tuesday morning", name="Budi")
    await _for_branch(sessionmaker, received.lead_id or 0, clinic)
    andi = clinic.doctors["andi"].id
    nine = next_weekday(1, hour=9)
    await insert_session(db, clinic, starts_at=nine)  # dr. Andi sees someone at 09:00
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    day = nine.astimezone(ZoneInfo("Asia/Jakarta")).date().isoformat()
    url = f"/inbox/leads/{received.lead_id}?branch={clinic.branch.id}&exam={clinic.examinations['GP'].id}&day={day}"
    html = await _page(client, url)
    half_past = nine + timedelta(minutes=30)
    assert f'value="{half_past.isoformat()}|{andi}"' in html
    assert f'value="{nine.isoformat()}|{andi}"' not in html  # booked
    assert "Free times on" in html

    # Someone else takes 09:30 before staff press the button.
    await insert_session(db, clinic, starts_at=half_past, patient="siti", room="consult-2")
    picked = {"slot": f"{half_past.isoformat()}|{andi}", "branch": str(clinic.branch.id),
              "exam": str(clinic.examinations["GP"].id), "day": day}  # fmt: skip
    response = await _post(client, f"/inbox/leads/{received.lead_id}/convert", token, **picked)
    assert "taken=" in response.headers["Location"] and response.headers["Location"].endswith("#convert")
    html = await _page(client, response.headers["Location"].split("#")[0])
    assert "That time has just been taken." in _flash(html)
    assert 'id="alternatives"' in html and "was just taken — next free times" in html
    assert f'value="{(half_past + timedelta(minutes=30)).isoformat()}|{andi}"' in html
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == received.lead_id)) == "new"


# --- who may see what


async def test_another_branchs_lead_is_not_found_for_branch_staff(
    client: Client, db: AsyncSession, sessionmaker: Sessions, clinic: Clinic
) -> None:
    received = await _writes(sessionmaker, "for the other branch")
    await _for_branch(sessionmaker, received.lead_id or 0, clinic)
    elsewhere = await build_clinic(db)
    token = await sign_in_page(client, db, "staff", branch_id=elsewhere.branch.id)
    html = await _page(client, f"/inbox/leads/{received.lead_id}", status=404)
    assert "There is no lead" in html
    await _post(client, f"/inbox/leads/{received.lead_id}/reply", token, text="hello")
    await _post(client, f"/inbox/leads/{received.lead_id}/accept", token)
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == received.lead_id)) == "new"
    assert await _audit(sessionmaker, "lead.replied", "lead", received.lead_id) == []
    listed = await _page(client, f"/inbox?q=for the other branch&branch={clinic.branch.id}")
    assert received.lead_id not in _lead_ids(listed)


async def test_a_post_without_the_pages_token_changes_nothing(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    received = await _writes(sessionmaker, "please call me")
    await sign_in_page(client, db, "staff")
    for action, fields in (("reply", {"text": "hi"}), ("accept", {}), ("reject", {"reason": "no"})):
        response = await client.post(
            f"/inbox/leads/{received.lead_id}/{action}", data={"csrf_token": "forged", **fields}, allow_redirects=False
        )
        assert response.status == 403
    assert await _scalar(sessionmaker, select(Lead.status).where(Lead.id == received.lead_id)) == "new"
    assert (
        await _scalar(sessionmaker, select(Conversation.bot_paused).where(Conversation.id == received.conversation_id))
        is False
    )


async def test_patients_text_and_names_are_shown_as_text_never_as_markup(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    marker = secrets.token_hex(4)
    received = await _writes(
        sessionmaker, f"<b>bold</b> <img src=x onerror=alert(1)> {marker}", name="<script>alert('x')</script>"
    )
    await sign_in_page(client, db, "staff")
    for url in (f"/inbox?q={marker}", f"/inbox/leads/{received.lead_id}"):
        html = await _page(client, url)
        assert "<script>alert('x')</script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


async def test_doctors_are_sent_on_to_the_queue_and_strangers_to_sign_in(client: Client, db: AsyncSession) -> None:
    stranger = await client.get("/inbox/leads/1", allow_redirects=False)
    assert stranger.status == 303 and stranger.headers["Location"].startswith("/login?next=")
    await sign_in_page(client, db, "doctor")
    landing = await client.get("/inbox", allow_redirects=False)  # where signing in lands: on to the queue board
    assert landing.status == 303 and landing.headers["Location"] == "/inbox/queue"
    assert "A doctor may not open this page." in await _page(client, "/inbox/leads/1", status=403)


async def test_staff_see_which_messages_may_have_reached_the_patient_twice_or_may_have_been_delivered(
    client: Client, db: AsyncSession, sessionmaker: Sessions
) -> None:
    """Sends whose outcome was unknown (the provider answered too late) are shown for what they are."""
    marker = secrets.token_hex(4)
    chat = _chat_id()
    received = await _writes(sessionmaker, f"hello {marker}", external=chat)
    rows = {}
    async with sessionmaker() as s, s.begin():
        for name in ("twice", "maybe"):
            rows[name] = await outbox.add(
                s, OutboundMessage(channel="telegram", recipient=chat, text=f"{name} {marker}"),
                conversation_id=received.conversation_id, identity_id=received.identity_id,
            )  # fmt: skip
        late = datetime.now(UTC)
        await s.execute(
            update(OutboxMessage).where(OutboxMessage.id == rows["twice"]).values(status="sent", uncertain_at=late)
        )
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == rows["maybe"])
            .values(status="failed", uncertain_at=late, last_error="uncertain: uncertain: Request timeout error")
        )
    await sign_in_page(client, db, "staff")
    html = await _page(client, f"/inbox/leads/{received.lead_id}")
    assert "the patient may have it twice" in html
    assert "May have been delivered: the provider did not answer in time, twice." in html
