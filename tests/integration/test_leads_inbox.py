"""Every channel's messages become leads in one inbox, newest first, with the patient's whole conversation."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import ingest

SignIn = Callable[..., Awaitable[dict[str, str]]]


def _inbound(channel: str, external: str, text: str, *, phone: str | None = None, name: str = "Dewi") -> InboundMessage:
    return InboundMessage(
        channel=channel,  # type: ignore[arg-type]
        external_id=f"{channel}-{secrets.token_hex(8)}",
        contact=ContactRef(channel=channel, external_id=external, display_name=name, phone=phone),  # type: ignore[arg-type]
        received_at=datetime.now(UTC),
        text=text,
    )


async def test_leads_from_whatsapp_telegram_and_web_chat_share_one_inbox(
    client: TestClient[object, object], sessionmaker: async_sessionmaker[AsyncSession], sign_in: SignIn
) -> None:
    marker = secrets.token_hex(4)
    async with sessionmaker() as db, db.begin():
        for channel in ("whatsapp", "telegram", "webchat"):
            external = f"+62812{secrets.randbelow(10**8):08d}" if channel == "whatsapp" else secrets.token_hex(6)
            await ingest.receive(db, _inbound(channel, external, f"booking please {marker} via {channel}"))
    headers = await sign_in("staff")
    response = await client.get("/api/v1/leads", params={"q": marker}, headers=headers)
    assert response.status == 200
    leads = (await response.json())["leads"]
    assert [lead["channel"] for lead in leads] == ["webchat", "telegram", "whatsapp"]  # newest first
    assert all(lead["status"] == "new" and marker in lead["last_text"] for lead in leads)
    only_telegram = await client.get("/api/v1/leads", params={"q": marker, "channel": "telegram"}, headers=headers)
    assert [lead["channel"] for lead in (await only_telegram.json())["leads"]] == ["telegram"]


async def test_a_lead_shows_the_patients_conversation_across_channels(
    client: TestClient[object, object], sessionmaker: async_sessionmaker[AsyncSession], sign_in: SignIn
) -> None:
    phone = f"+62812{secrets.randbelow(10**8):08d}"
    chat = secrets.token_hex(6)
    async with sessionmaker() as db, db.begin():
        await ingest.receive(db, _inbound("whatsapp", phone, "Halo dari WhatsApp", phone=phone))
    async with sessionmaker() as db, db.begin():
        later = await ingest.receive(db, _inbound("telegram", chat, "dan dari Telegram", phone=phone))
    headers = await sign_in("staff")
    response = await client.get(f"/api/v1/leads/{later.lead_id}", headers=headers)
    assert response.status == 200
    texts = [(m["channel"], m["text"]) for m in (await response.json())["messages"]]
    assert texts == [("whatsapp", "Halo dari WhatsApp"), ("telegram", "dan dari Telegram")]


async def test_an_unknown_lead_is_404_and_the_inbox_needs_a_sign_in(
    client: TestClient[object, object], sign_in: SignIn
) -> None:
    assert (await client.get("/api/v1/leads")).status == 401
    headers = await sign_in("staff")
    assert (await client.get("/api/v1/leads/999999999", headers=headers)).status == 404
    bad = await client.get("/api/v1/leads", params={"status": "maybe"}, headers=headers)
    assert bad.status == 422
