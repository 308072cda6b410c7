"""The web chat's resources stay bounded: sockets cost no Redis connection, replies find exactly their visitor's
sockets on whichever gateway holds them, new visitors are limited per address and clinic-wide, and a message that
meets a busy database is answered "try again" and kept when it comes again — never dropped.

The gateways run in-process against real Postgres and Redis (see conftest.py); "another process" publishing a reply
is a WebchatAdapter with a Redis client of its own, as a worker builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, Conversation, Message
from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from channels.webchat.adapter import WebchatAdapter
from channels.webchat.token import VisitorTokens
from gateway.app import REDIS_MAX_CONNECTIONS, create_app
from gateway.keys import ENGINE, RAW_DB, WEBCHAT_HUB
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.servers import private_redis
from tests.waiting import eventually

Client = TestClient[Any, Any]
Socket = aiohttp.ClientWebSocketResponse
CLINIC_SITE = "http://testserver.local"  # PUBLIC_BASE_URL of the test settings
tokens = VisitorTokens(TEST_SECRET)
#: The test client connects from loopback: trusted as a proxy, its X-Forwarded-For names the visitor's address.
LOCAL_PROXY = (ip_network("127.0.0.1/32"), ip_network("::1/128"))


def own_settings(settings: Settings, **changes: Any) -> Settings:
    """The test settings with a Redis prefix of this test's own (fresh limit counters, its own reply channels)."""
    return settings.model_copy(update={"FRONTDESK_REDIS_PREFIX": f"wcr{secrets.token_hex(4)}", **changes})


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings))) as http:
        yield http


def app_of(client: Client) -> web.Application:
    app = client.app
    assert app is not None
    return app


async def next_frame(ws: Socket, *kinds: str) -> dict[str, Any]:
    """The next frame of one of ``kinds``, skipping chatbot replies ("message") that may come at any moment."""
    while True:
        msg = await ws.receive(timeout=20)
        assert msg.type == WSMsgType.TEXT, msg
        frame: dict[str, Any] = json.loads(msg.data)
        if frame["type"] in kinds:
            return frame
        assert frame["type"] == "message", frame


async def hello(
    client: Client, token: str | None = None, *, address: str | None = None
) -> tuple[Socket, dict[str, Any]]:
    """Open a socket (from ``address`` via the trusted proxy's X-Forwarded-For) and say hello; the first answer."""
    headers = {"Origin": CLINIC_SITE}
    if address is not None:
        headers["X-Forwarded-For"] = address
    ws = await client.ws_connect("/webchat/ws", headers=headers)
    await ws.send_json({"type": "hello", "token": token, "language": "en"})
    return ws, await next_frame(ws, "welcome", "error")


async def close_code(ws: Socket) -> int | None:
    """Read until the server closes the socket; its close code."""
    while True:
        msg = await ws.receive(timeout=20)
        if msg.type == WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
            return ws.close_code
        assert msg.type == WSMsgType.TEXT, msg


# --- sockets and Redis connections


def redis_connections(redis_url: str) -> int:
    """Established TCP connections from this process (the gateway runs in it) to Redis."""
    port = urlsplit(redis_url).port or 6379
    return sum(
        1
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def test_open_and_closed_chat_sockets_add_no_redis_connections(settings: Settings) -> None:
    redis_url = settings.REDIS_URL or ""
    admin = Redis.from_url(redis_url)
    roomy = own_settings(
        settings, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000, FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS=1000
    )
    visitors = 60  # more than the gateway's whole Redis pool: a connection per socket could not hide
    try:
        async with gateway(roomy) as client:
            hub = app_of(client)[WEBCHAT_HUB]
            before = redis_connections(redis_url)
            while_open, after = [], []
            for _ in range(3):
                opened = await asyncio.gather(*(hello(client) for _ in range(visitors)))
                assert all(first["type"] == "welcome" for _, first in opened)
                assert hub.sockets == visitors
                while_open.append(redis_connections(redis_url))
                for n, (ws, _) in enumerate(opened):
                    if n % 2:
                        await ws.close()
                    else:  # the visitor's phone lost its network: no close frame, the connection just ends
                        transport = ws._response.connection.transport  # type: ignore[union-attr]
                        assert transport is not None
                        transport.abort()
                        with contextlib.suppress(Exception):  # the client's own bookkeeping of the dead connection
                            await ws.close()
                await eventually(lambda: hub.sockets == 0, what="closed sockets leaving the hub")
                after.append(redis_connections(redis_url))
            subscriptions = [
                c for c in await admin.client_list() if c.get("name") == f"frontdesk-webchat-{os.getpid()}"
            ]
            assert len(subscriptions) == 1, subscriptions
        # One subscription and at most the bounded pool, whatever the number of sockets; nothing grows per round.
        assert max(while_open) - before <= REDIS_MAX_CONNECTIONS + 1, (before, while_open)
        assert after[1] <= after[0] and after[2] <= after[0], after
        assert not [c for c in await admin.client_list() if c.get("name") == f"frontdesk-webchat-{os.getpid()}"], (
            "the subscription outlived the gateway"
        )
    finally:
        await admin.aclose()


# --- replies find their visitor


async def test_a_reply_reaches_every_socket_of_its_visitor_and_no_other_on_any_gateway(settings: Settings) -> None:
    shared = own_settings(settings)  # two gateways of one clinic: the same Redis prefix
    worker_redis = Redis.from_url(settings.REDIS_URL or "")
    adapter = WebchatAdapter(redis=worker_redis, prefix=shared.FRONTDESK_REDIS_PREFIX)
    try:
        async with gateway(shared) as one, gateway(shared) as two:
            first_tab, welcome = await hello(one)
            second_tab, _ = await hello(two, welcome["token"])  # the same visitor in another tab, on gateway two
            visitor = tokens.read(welcome["token"])
            assert visitor is not None
            others = [await hello(one), await hello(two)]
            sent = await adapter.send(OutboundMessage(channel="webchat", recipient=visitor, text="Your visit: 10:30"))
            for tab in (first_tab, second_tab):
                pushed = await next_frame(tab, "message")
                assert (pushed["id"], pushed["text"]) == (sent, "Your visit: 10:30")
            for ws, their_welcome in others:
                # Their own reply is the first thing each receives: the one above never reached them.
                own = tokens.read(their_welcome["token"])
                assert own is not None
                theirs = await adapter.send(OutboundMessage(channel="webchat", recipient=own, text="for you"))
                pushed = await next_frame(ws, "message")
                assert (pushed["id"], pushed["text"]) == (theirs, "for you")
            for ws in (first_tab, second_tab, *(ws for ws, _ in others)):
                await ws.close()
    finally:
        await worker_redis.aclose()


# --- new visitors: per address, then clinic-wide


async def test_new_visitors_are_limited_per_address_and_clinic_wide_and_a_flood_leaves_room_for_others(
    settings: Settings,
) -> None:
    limited = own_settings(
        settings,
        FRONTDESK_TRUSTED_PROXIES=LOCAL_PROXY,
        FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=3,
        FRONTDESK_WEBCHAT_NEW_VISITORS_PER_MINUTE=6,
    )
    flooder, refusals = "203.0.113.7", []
    async with gateway(limited) as client:
        admitted = []
        for _ in range(20):  # one address opens socket after socket, each a new visitor
            ws, first = await hello(client, address=flooder)
            if first["type"] == "welcome":
                admitted.append(first["token"])
            else:
                refusals.append(first)
                assert await close_code(ws) == aiohttp.WSCloseCode.TRY_AGAIN_LATER
            await ws.close()
        assert len(admitted) == 3
        assert {(r["code"], "network" in r["message"]) for r in refusals} == {("busy", True)}
        assert all(1 <= r["retry_after"] <= 600 for r in refusals)

        # A visitor of that address who has chatted before is no new visitor: still welcome.
        ws, first = await hello(client, admitted[0], address=flooder)
        assert first["type"] == "welcome" and tokens.read(first["token"]) == tokens.read(admitted[0])
        await ws.close()

        # The flood took only its own three places of the clinic's six: visitors elsewhere get the other three.
        for n in range(3):
            ws, first = await hello(client, address=f"198.51.100.{n + 1}")
            assert first["type"] == "welcome", first
            await ws.close()
        ws, first = await hello(client, address="192.0.2.99")
        assert (first["type"], first["code"]) == ("error", "busy")
        assert 1 <= first["retry_after"] <= 60 and "network" not in first["message"]
        assert await close_code(ws) == aiohttp.WSCloseCode.TRY_AGAIN_LATER


async def test_too_many_open_sockets_from_one_address_get_429_with_retry_after(settings: Settings) -> None:
    limited = own_settings(
        settings,
        FRONTDESK_TRUSTED_PROXIES=LOCAL_PROXY,
        FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS=2,
    )
    async with gateway(limited) as client:
        held = [await hello(client, address="203.0.113.8") for _ in range(2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/webchat/ws", headers={"Origin": CLINIC_SITE, "X-Forwarded-For": "203.0.113.8"})
        assert refused.value.status == 429
        assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
        other, first = await hello(client, address="203.0.113.9")
        assert first["type"] == "welcome"
        await held[0][0].close()
        hub = app_of(client)[WEBCHAT_HUB]
        await eventually(lambda: hub.sockets == 2, what="the closed socket leaving")
        again, first = await hello(client, address="203.0.113.8")
        assert first["type"] == "welcome"
        for ws in (held[1][0], other, again):
            await ws.close()


# --- a busy database


async def stored_copies(db: AsyncSession, frame_id: str) -> int:
    result = await db.execute(
        select(func.count()).select_from(Message).where(Message.channel == "webchat", Message.external_id == frame_id)
    )
    return int(result.scalar_one())


async def test_a_message_that_meets_an_exhausted_database_pool_is_retried_and_kept_once(
    settings: Settings, db: AsyncSession
) -> None:
    impatient = own_settings(
        settings, FRONTDESK_WEBCHAT_STORE_WITHIN=1.0, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000
    )
    async with gateway(impatient) as client:
        ws, welcome = await hello(client)
        assert welcome["type"] == "welcome"
        app = app_of(client)
        engine, raw = app[ENGINE], app[RAW_DB]
        # Every connection of the gateway's pools is taken, as in the burst of the report: the ORM pool's (its size
        # again as overflow, see make_engine) and the hot path's.
        taken = [await engine.connect() for _ in range(2 * engine.pool.size())]  # type: ignore[attr-defined]
        raw_taken = [await raw.acquire() for _ in range(raw.get_max_size())]
        frame_id = str(uuid.uuid4())
        try:
            await ws.send_json({"type": "message", "id": frame_id, "text": "Can I come in today?"})
            answer = await next_frame(ws, "ack", "error")
            assert (answer["type"], answer["code"], answer["id"]) == ("error", "unavailable", frame_id)
            assert answer["retry_after"] >= 1  # "try again", not "failed": the widget keeps it and sends it again
        finally:
            for conn in taken:
                await conn.close()
            for conn in raw_taken:
                await raw.release(conn)
        # The widget sends the same frame again after retry_after: taken once, acknowledged.
        await ws.send_json({"type": "message", "id": frame_id, "text": "Can I come in today?"})
        assert (await next_frame(ws, "ack", "error")) == {"type": "ack", "id": frame_id}
        hub = app[WEBCHAT_HUB]
        await eventually(lambda: hub.left_behind == 0, what="the first attempt finishing")
        assert await stored_copies(db, frame_id) == 1
        await ws.close()


# --- Redis going away, replies published while the visitor is away


async def test_after_redis_comes_back_the_gateway_subscribes_again_and_replies_flow(settings: Settings) -> None:
    with private_redis() as server:
        own = own_settings(settings, REDIS_URL=server.url, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000)
        async with gateway(own) as client:
            hub = app_of(client)[WEBCHAT_HUB]
            ws, welcome = await hello(client)
            assert welcome["type"] == "welcome"
            await asyncio.to_thread(server.stop)
            # Replies published now would reach nobody: the socket is closed, so the widget reconnects and reloads.
            assert await close_code(ws) == aiohttp.WSCloseCode.INTERNAL_ERROR
            await asyncio.to_thread(server.start)
            await eventually(hub.subscribed.is_set, what="the subscription coming back")
            again, welcome_back = await hello(client, welcome["token"])
            assert welcome_back["type"] == "welcome"
            visitor = tokens.read(welcome["token"])
            assert visitor is not None
            worker_redis = Redis.from_url(server.url)
            try:
                adapter = WebchatAdapter(redis=worker_redis, prefix=own.FRONTDESK_REDIS_PREFIX)
                sent = await adapter.send(OutboundMessage(channel="webchat", recipient=visitor, text="We are back"))
            finally:
                await worker_redis.aclose()
            assert (await next_frame(again, "message"))["id"] == sent
            await again.close()


async def test_a_reply_sent_while_the_visitor_was_away_is_in_the_history_when_they_return(
    settings: Settings, db: AsyncSession
) -> None:
    own = own_settings(settings, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000)
    async with gateway(own) as client:
        ws, welcome = await hello(client)
        visitor = tokens.read(welcome["token"])
        assert visitor is not None
        await ws.send_json({"type": "message", "id": str(uuid.uuid4()), "text": "Do you open on Saturday?"})
        await next_frame(ws, "ack")
        await ws.close()
        conversation = (
            await db.execute(
                select(Conversation)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == visitor)
            )
        ).scalar_one()
        await db.commit()
        reply = OutboundMessage(channel="webchat", recipient=visitor, text="Yes, 08:00 to 12:00.")
        async with db.begin():
            outbox_id = await outbox.add(
                db, reply, conversation_id=conversation.id, identity_id=conversation.identity_id, author="staff"
            )
        assert outbox_id is not None
        worker_redis = Redis.from_url(settings.REDIS_URL or "")
        try:
            adapter = WebchatAdapter(redis=worker_redis, prefix=own.FRONTDESK_REDIS_PREFIX)
            outcome = await outbox.deliver(db, outbox_id, outbox.Sending({"webchat": adapter}))  # published to nobody
        finally:
            await worker_redis.aclose()
        assert outcome.status == "sent"
        back, welcome_back = await hello(client, welcome["token"])
        assert [(h["id"], h["text"]) for h in welcome_back["history"] if h["direction"] == "out"][-1:] == [
            (outcome.provider_id, "Yes, 08:00 to 12:00.")
        ]
        await back.close()


async def test_a_stopping_gateway_closes_its_sockets_and_its_subscription(settings: Settings) -> None:
    own = own_settings(settings, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000)
    admin = Redis.from_url(settings.REDIS_URL or "")
    try:
        async with gateway(own) as client:
            sockets = [(await hello(client))[0] for _ in range(3)]
            await client.server.close()  # as on SIGTERM: the sockets are told to go (their widgets reconnect)
            assert [await close_code(ws) for ws in sockets] == [aiohttp.WSCloseCode.SERVICE_RESTART] * 3
            names = [c.get("name") for c in await admin.client_list()]
            assert f"frontdesk-webchat-{os.getpid()}" not in names
    finally:
        await admin.aclose()
