"""The web chat as the widget speaks it: websocket frames in, persisted and acknowledged; replies over Redis pub/sub.

The gateway runs in-process against real Postgres and Redis. Frames the dialog may push in between (bot replies)
are skipped by :func:`frame_of`, so these tests hold before and after the chatbot answers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries import clinic as clinic_queries
from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message
from booking_core.domain.messages import Button, Image, OutboundMessage
from booking_core.services import outbox
from channels.webchat.adapter import WebchatAdapter
from channels.webchat.token import VisitorTokens, new_visitor_id
from gateway.app import create_app
from infra.settings import Settings
from tests.conftest import TEST_SECRET

Client = TestClient[Any, Any]
Socket = aiohttp.ClientWebSocketResponse
CLINIC_SITE = "http://testserver.local"  # PUBLIC_BASE_URL of the test settings
tokens = VisitorTokens(TEST_SECRET)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    """The gateway in-process; every test here starts new visitors from 127.0.0.1, far more than the per-address
    limit allows (its own tests are in test_webchat_resources.py)."""
    roomy = settings.model_copy(update={"FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS": 100_000})
    async with TestClient(TestServer(create_app(roomy))) as http:
        yield http


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.REDIS_URL or "")
    yield client
    await client.aclose()


@pytest.fixture
def adapter(redis: Redis, settings: Settings) -> WebchatAdapter:
    """The adapter as a worker builds it: its own Redis client, the same prefix."""
    return WebchatAdapter(redis=redis, prefix=settings.FRONTDESK_REDIS_PREFIX)


async def frame_of(ws: Socket, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping pushed replies (the chatbot may answer at any moment)."""
    while True:
        msg = await ws.receive(timeout=15)
        assert msg.type == WSMsgType.TEXT, msg
        frame: dict[str, Any] = json.loads(msg.data)
        if frame["type"] == kind:
            return frame
        assert frame["type"] == "message", frame


async def connect(client: Client, token: str | None = None, *, language: str = "en") -> tuple[Socket, dict[str, Any]]:
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": CLINIC_SITE})
    await ws.send_json({"type": "hello", "token": token, "language": language})
    return ws, await frame_of(ws, "welcome")


async def say(ws: Socket, text: str, frame_id: str | None = None) -> str:
    frame_id = frame_id or str(uuid.uuid4())
    await ws.send_json({"type": "message", "id": frame_id, "text": text})
    return frame_id


async def messages_of(db: AsyncSession, visitor_id: str) -> list[Message]:
    result = await db.execute(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == visitor_id)
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


# --- who may connect


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.local.evil.example", "null", None])
async def test_a_page_on_another_site_cannot_open_the_chat(client: Client, origin: str | None) -> None:
    headers = {"Origin": origin} if origin else {}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/webchat/ws", headers=headers)
    assert refused.value.status == 403


async def test_a_clinic_site_listed_in_the_settings_may_embed_the_chat(client: Client, db: AsyncSession) -> None:
    site = f"https://www.klinik-{uuid.uuid4().hex[:8]}.example"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/webchat/ws", headers={"Origin": site})
    await clinic_queries.put_setting(db, "webchat_allowed_origins", [site + "/"])
    await db.commit()
    try:
        ws = await client.ws_connect("/webchat/ws", headers={"Origin": site})
        await ws.send_json({"type": "hello", "token": None, "language": "id"})
        assert (await frame_of(ws, "welcome"))["token"]
        await ws.close()
    finally:
        await clinic_queries.put_setting(db, "webchat_allowed_origins", [])
        await db.commit()


# --- hello and welcome


async def test_a_first_visit_gets_a_signed_token_and_an_empty_history(client: Client) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    assert welcome["history"] == []
    await ws.close()


async def test_a_returning_visitor_keeps_their_id_and_sees_their_history(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    first = await say(ws, "Is the dentist in on Saturday?")
    await frame_of(ws, "ack")
    await ws.close()

    again, welcome_back = await connect(client, welcome["token"])
    assert tokens.read(welcome_back["token"]) == visitor_id
    mine = [h for h in welcome_back["history"] if h["direction"] == "in"]
    assert [(h["id"], h["text"]) for h in mine] == [(first, "Is the dentist in on Saturday?")]
    await again.close()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        VisitorTokens("another-clinics-secret-key").issue(new_visitor_id()),
        tokens.issue(new_visitor_id())[:-3] + "abc",
    ],
    ids=["garbage", "signed-by-someone-else", "tampered"],
)
async def test_a_forged_or_broken_token_starts_a_new_visitor(client: Client, token: str) -> None:
    ws, welcome = await connect(client, token)
    assert welcome["token"] != token
    assert tokens.read(welcome["token"]) is not None
    assert welcome["history"] == []
    await ws.close()


async def test_a_message_before_hello_is_answered_with_an_error(client: Client) -> None:
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": CLINIC_SITE})
    await ws.send_json({"type": "message", "text": "hi"})
    assert (await frame_of(ws, "error"))["code"] == "hello_first"
    await ws.send_json({"type": "hello", "token": None, "language": "en"})
    assert (await frame_of(ws, "welcome"))["token"]
    await ws.close()


# --- messages in


async def test_a_message_is_stored_before_it_is_acknowledged_and_makes_a_lead(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client, language="id")
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    frame_id = await say(ws, "  Saya mau periksa gigi besok  ")
    assert (await frame_of(ws, "ack")) == {"type": "ack", "id": frame_id}
    stored = [m for m in await messages_of(db, visitor_id) if m.direction == "in"]
    assert [(m.channel, m.external_id, m.text) for m in stored] == [
        ("webchat", frame_id, "Saya mau periksa gigi besok")
    ]
    conversation = await db.get(Conversation, stored[0].conversation_id)
    assert conversation is not None and conversation.language == "id"
    lead = (await db.execute(select(Lead).where(Lead.conversation_id == conversation.id))).scalar_one()
    assert lead.channel == "webchat"
    await ws.close()


async def test_a_pressed_reply_button_arrives_as_button_data(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    frame_id = str(uuid.uuid4())
    await ws.send_json({"type": "button", "id": frame_id, "data": "exam:42", "text": "Dental check-up"})
    await frame_of(ws, "ack")
    (stored,) = [m for m in await messages_of(db, visitor_id) if m.direction == "in"]
    assert stored.text == "Dental check-up"
    assert stored.payload["kind"] == "button" and stored.payload["button_data"] == "exam:42"
    await ws.close()


async def test_a_resent_frame_is_acknowledged_again_but_stored_once(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    frame_id = str(uuid.uuid4())
    for _ in range(3):  # the widget re-sends unacknowledged frames after a reconnect, with the same id
        await say(ws, "Hello, is anyone there?", frame_id)
        assert (await frame_of(ws, "ack"))["id"] == frame_id
    stored = [m for m in await messages_of(db, visitor_id) if m.direction == "in"]
    assert len(stored) == 1
    leads = await db.execute(
        select(func.count()).select_from(Lead).where(Lead.conversation_id == stored[0].conversation_id)
    )
    assert leads.scalar_one() == 1
    await ws.close()


async def test_too_long_messages_are_refused_and_the_chat_goes_on(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    too_many_chars = await say(ws, "a" * 2001)
    error = await frame_of(ws, "error")
    assert (error["code"], error["id"]) == ("too_long", too_many_chars)
    await say(ws, "ü" * 1900)  # under 2,000 characters but over 4 KiB on the wire
    assert (await frame_of(ws, "error"))["code"] == "too_long"
    fits = await say(ws, "b" * 2000)
    assert (await frame_of(ws, "ack"))["id"] == fits
    stored = [m for m in await messages_of(db, visitor_id) if m.direction == "in"]
    assert [m.external_id for m in stored] == [fits]
    await ws.close()


async def test_a_visitor_who_floods_the_chat_is_slowed_down(client: Client, db: AsyncSession) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    for n in range(10):
        await say(ws, f"message {n}")
        await frame_of(ws, "ack")
    eleventh = await say(ws, "message 10")
    error = await frame_of(ws, "error")
    assert (error["code"], error["id"]) == ("rate_limited", eleventh)
    assert len([m for m in await messages_of(db, visitor_id) if m.direction == "in"]) == 10
    # Another visitor is not held back by this one.
    other, _ = await connect(client)
    await say(other, "hello")
    await frame_of(other, "ack")
    await ws.close()
    await other.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "malformed"),
        ("[1, 2, 3]", "malformed"),
        ('{"text": "no type"}', "malformed"),
        ('{"type": "shout", "text": "?"}', "unsupported"),
        ('{"type": "message", "text": 42}', "malformed"),
        ('{"type": "message", "text": "   "}', "empty"),
        ('{"type": "message", "id": "not-a-uuid", "text": "hi"}', "bad_id"),
        ('{"type": "button", "text": "Yes"}', "malformed"),
        ('{"type": "hello", "token": null}', "unsupported"),
    ],
)
async def test_malformed_frames_get_an_error_frame_and_the_connection_stays(
    client: Client, frame: str, code: str
) -> None:
    ws, _ = await connect(client)
    await ws.send_str(frame)
    assert (await frame_of(ws, "error"))["code"] == code
    await ws.send_bytes(b"\x00\x01binary")
    assert (await frame_of(ws, "error"))["code"] == "malformed"
    frame_id = await say(ws, "still here?")
    assert (await frame_of(ws, "ack"))["id"] == frame_id
    await ws.close()


# --- replies out


async def test_a_reply_sent_by_the_adapter_reaches_the_open_widget(client: Client, adapter: WebchatAdapter) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    sent_id = await adapter.send(
        OutboundMessage(
            channel="webchat",
            recipient=visitor_id,
            text="Which examination? <b>not bold</b>",
            buttons=(Button("General consultation", "exam:1"), Button("Dental check-up", "exam:2")),
            image=Image(b"\x89PNG fake", "qr.png", "image/png"),
        )
    )
    pushed = await frame_of(ws, "message")
    while pushed["id"] != sent_id:  # a chatbot reply may come first
        pushed = await frame_of(ws, "message")
    assert pushed == {
        "type": "message",
        "id": sent_id,
        "text": "Which examination? <b>not bold</b>",
        "buttons": [
            {"label": "General consultation", "data": "exam:1"},
            {"label": "Dental check-up", "data": "exam:2"},
        ],
        "image": "data:image/png;base64,iVBORyBmYWtl",
    }
    await ws.close()


async def test_a_reply_for_another_visitor_does_not_reach_this_one(client: Client, adapter: WebchatAdapter) -> None:
    ws, welcome = await connect(client)
    someone_else = new_visitor_id()
    await adapter.send(OutboundMessage(channel="webchat", recipient=someone_else, text="not for you"))
    mine = await adapter.send(
        OutboundMessage(channel="webchat", recipient=tokens.read(welcome["token"]) or "", text="for you")
    )
    pushed = await frame_of(ws, "message")
    while pushed["id"] != mine:
        assert pushed["text"] != "not for you"
        pushed = await frame_of(ws, "message")
    await ws.close()


async def test_a_reply_delivered_through_the_outbox_is_live_and_in_the_history_under_one_id(
    client: Client, db: AsyncSession, adapter: WebchatAdapter
) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    await say(ws, "Can I book for tomorrow?")
    await frame_of(ws, "ack")
    stored = [m for m in await messages_of(db, visitor_id) if m.direction == "in"]
    conversation = await db.get(Conversation, stored[0].conversation_id)
    assert conversation is not None
    await db.commit()
    reply = OutboundMessage(channel="webchat", recipient=visitor_id, text="Yes: 09:00 or 10:30?",
                            buttons=(Button("09:00", "slot:1"), Button("10:30", "slot:2")))  # fmt: skip
    async with db.begin():
        outbox_id = await outbox.add(
            db, reply, conversation_id=conversation.id, identity_id=conversation.identity_id, author="staff"
        )
    assert outbox_id is not None
    outcome = await outbox.deliver(db, outbox_id, outbox.Sending({"webchat": adapter}))
    assert outcome.status == "sent"
    pushed = await frame_of(ws, "message")
    while pushed["id"] != outcome.provider_id:
        pushed = await frame_of(ws, "message")
    assert pushed["text"] == "Yes: 09:00 or 10:30?"
    await ws.close()

    again, welcome_back = await connect(client, welcome["token"])
    replies = [h for h in welcome_back["history"] if h["id"] == outcome.provider_id]
    assert [(h["direction"], h["text"], h["buttons"]) for h in replies] == [
        ("out", "Yes: 09:00 or 10:30?", [{"label": "09:00", "data": "slot:1"}, {"label": "10:30", "data": "slot:2"}])
    ]
    await again.close()


async def test_a_reply_not_yet_sent_waits_for_delivery_instead_of_showing_in_the_history(
    client: Client, db: AsyncSession
) -> None:
    ws, welcome = await connect(client)
    visitor_id = tokens.read(welcome["token"])
    assert visitor_id is not None
    await say(ws, "Hello")
    await frame_of(ws, "ack")
    conversation_id = next(m for m in await messages_of(db, visitor_id) if m.direction == "in").conversation_id
    conversation = await db.get(Conversation, conversation_id)
    assert conversation is not None
    await db.commit()
    async with db.begin():
        await outbox.add(db, OutboundMessage(channel="webchat", recipient=visitor_id, text="queued reply"),
                         conversation_id=conversation.id, identity_id=conversation.identity_id,
                         due_at=conversation.created_at.replace(year=conversation.created_at.year + 1))  # fmt: skip
    await ws.close()
    again, welcome_back = await connect(client, welcome["token"])
    assert "queued reply" not in [h["text"] for h in welcome_back["history"]]
    assert "Hello" in [h["text"] for h in welcome_back["history"]]
    await again.close()


async def test_a_reply_published_while_the_visitor_is_away_is_not_an_error(adapter: WebchatAdapter) -> None:
    provider_id = await adapter.send(OutboundMessage(channel="webchat", recipient=new_visitor_id(), text="later"))
    assert len(provider_id) == 32


# --- the script and the demo page


async def test_the_widget_script_is_served_as_cacheable_javascript(client: Client) -> None:
    response = await client.get("/webchat/widget.js")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "max-age=" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = await response.text()
    assert 'role: "dialog"' in body and '"aria-modal": "true"' in body and "/webchat/ws" in body
    revalidated = await client.get("/webchat/widget.js", headers={"If-None-Match": response.headers["ETag"]})
    assert revalidated.status == 304
    assert await revalidated.read() == b""


async def test_the_demo_page_embeds_the_widget_with_one_script_tag(client: Client) -> None:
    response = await client.get("/webchat/demo?lang=id")
    assert response.status == 200
    page = await response.text()
    assert page.count('<script src="/webchat/widget.js"') == 1
    assert 'data-language="id"' in page
    assert '<html lang="id">' in page
