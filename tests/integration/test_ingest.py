"""Ingest: every inbound message is stored once, lands on a lead, and one person is one patient across channels."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message, Patient
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import ingest


def _telegram(
    chat: str,
    text: str,
    *,
    update: str | None = None,
    phone: str | None = None,
    kind: str = "text",
    name: str = "Siti",
    language: str | None = "id",
) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        external_id=update or f"u{secrets.randbelow(10**12)}",
        contact=ContactRef(
            channel="telegram", external_id=chat, display_name=name, phone=phone, language_code=language
        ),
        received_at=datetime.now(UTC),
        kind=kind,  # type: ignore[arg-type]
        text=text,
    )


def _whatsapp(phone: str, text: str) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        external_id=f"SM{secrets.token_hex(16)}",
        contact=ContactRef(channel="whatsapp", external_id=phone, display_name="Siti R", phone=phone),
        received_at=datetime.now(UTC),
        text=text,
    )


async def _count(db: AsyncSession, table: type, *where: object) -> int:
    return int((await db.execute(select(func.count()).select_from(table).where(*where))).scalar_one())  # type: ignore[arg-type]


async def test_a_first_telegram_message_makes_a_patient_a_conversation_and_a_lead(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    chat = str(secrets.randbelow(10**9))
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, _telegram(chat, "Halo, saya mau periksa gigi"))
    assert not received.duplicate
    async with sessionmaker() as db:
        message = await db.get(Message, received.message_id)
        assert message is not None and message.direction == "in" and message.text == "Halo, saya mau periksa gigi"
        conversation = await db.get(Conversation, received.conversation_id)
        assert conversation is not None and conversation.language == "id" and conversation.patient_id is not None
        lead = await db.get(Lead, received.lead_id)
        assert lead is not None and lead.status == "new" and lead.channel == "telegram"
        assert lead.contact_name == "Siti" and lead.patient_id == received.patient_id


async def test_a_provider_retry_is_recognised_and_writes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    chat = str(secrets.randbelow(10**9))
    update = f"u{secrets.randbelow(10**12)}"
    async with sessionmaker() as db, db.begin():
        first = await ingest.receive(db, _telegram(chat, "hello", update=update))
    async with sessionmaker() as db, db.begin():
        again = await ingest.receive(db, _telegram(chat, "hello", update=update))
    assert again.duplicate and again.message_id == first.message_id
    async with sessionmaker() as db:
        assert await _count(db, Message, Message.external_id == update) == 1
        assert await _count(db, Lead, Lead.conversation_id == first.conversation_id) == 1


async def test_ten_simultaneous_deliveries_of_one_update_store_it_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    chat = str(secrets.randbelow(10**9))
    update = f"u{secrets.randbelow(10**12)}"

    async def deliver() -> bool:
        async with sessionmaker() as db, db.begin():
            return (await ingest.receive(db, _telegram(chat, "hi", update=update))).duplicate

    duplicates = await asyncio.gather(*(deliver() for _ in range(10)))
    assert duplicates.count(False) == 1
    async with sessionmaker() as db:
        assert await _count(db, Message, Message.external_id == update) == 1
        identity = (await db.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == chat))).scalar_one()
        assert await _count(db, Conversation, Conversation.identity_id == identity.id) == 1
        assert await _count(db, Lead, Lead.identity_id == identity.id) == 1


async def test_two_first_messages_of_a_new_chat_at_once_make_one_conversation_and_one_lead(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    chat = str(secrets.randbelow(10**9))

    async def deliver(text: str) -> None:
        async with sessionmaker() as db, db.begin():
            await ingest.receive(db, _telegram(chat, text))

    await asyncio.gather(deliver("halo"), deliver("mau booking"), deliver("besok bisa?"))
    async with sessionmaker() as db:
        identity = (await db.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == chat))).scalar_one()
        assert await _count(db, Conversation, Conversation.identity_id == identity.id) == 1
        assert await _count(db, Lead, Lead.identity_id == identity.id) == 1
        assert await _count(db, Patient, Patient.id == identity.patient_id) == 1


async def test_one_person_on_whatsapp_then_telegram_is_one_patient(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    phone = f"+62812{secrets.randbelow(10**8):08d}"
    chat = str(secrets.randbelow(10**9))
    async with sessionmaker() as db, db.begin():
        on_whatsapp = await ingest.receive(db, _whatsapp(phone, "Halo"))
    async with sessionmaker() as db, db.begin():
        on_telegram = await ingest.receive(db, _telegram(chat, "halo dari telegram"))
    assert on_telegram.patient_id != on_whatsapp.patient_id  # not known yet: Telegram gave no phone
    local = "0" + phone.removeprefix("+62")  # shared as a local number
    async with sessionmaker() as db, db.begin():
        shared = await ingest.receive(db, _telegram(chat, "", phone=local, kind="contact"))
    assert shared.patient_id == on_whatsapp.patient_id
    async with sessionmaker() as db:
        folded = await db.get(Patient, on_telegram.patient_id)
        assert folded is not None and folded.merged_into_id == on_whatsapp.patient_id
        identities = (
            (
                await db.execute(
                    select(ChannelIdentity.channel).where(ChannelIdentity.patient_id == on_whatsapp.patient_id)
                )
            )
            .scalars()
            .all()
        )
        assert sorted(identities) == ["telegram", "whatsapp"]
        leads = (
            (await db.execute(select(Lead.patient_id).where(Lead.identity_id == shared.identity_id))).scalars().all()
        )
        assert set(leads) == {on_whatsapp.patient_id}


async def test_long_and_strange_texts_are_kept_safely(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    chat = str(secrets.randbelow(10**9))
    odd = "‏مرحبا 👋\u200b <script>alert(1)</script>\x00 " + "x" * 10_000
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, _telegram(chat, odd, name="<b>Siti</b>"))
    async with sessionmaker() as db:
        message = await db.get(Message, received.message_id)
        assert message is not None
        assert len(message.text) == 4096 and "\x00" not in message.text and message.payload["text_cut"] is True
        assert message.text.startswith("‏مرحبا 👋\u200b <script>")
        identity = await db.get(ChannelIdentity, received.identity_id)
        assert identity is not None and identity.display_name == "<b>Siti</b>"  # stored as given; pages escape it


async def test_many_new_chats_on_one_pooled_connection_keep_finding_the_open_conversation(settings: object) -> None:
    """Postgres switches a prepared statement to a generic plan from its 6th run: the ON CONFLICT must still match."""
    from booking_core.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.async_database_url, pool_size=1)  # type: ignore[attr-defined]
    try:
        maker = make_sessionmaker(engine)
        for _ in range(8):
            async with maker() as db, db.begin():
                received = await ingest.receive(db, _telegram(str(secrets.randbelow(10**9)), "halo"))
            assert received.conversation_id is not None
    finally:
        await engine.dispose()
