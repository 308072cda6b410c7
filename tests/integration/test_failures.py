"""Failures are visible: a message Telegram refused shows up with its error, and staff can send it again."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, JobFailure, Lead, OutboxMessage
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import ingest, outbox
from channels.telegram.adapter import TelegramAdapter
from devtools.builders import Clinic, build_clinic
from devtools.fakes.control import serve
from devtools.fakes.telegram_api import running_fake_telegram
from infra import job_names
from infra.settings import Settings

SignIn = Callable[..., Awaitable[dict[str, str]]]
Sessions = async_sessionmaker[AsyncSession]
BOT_TOKEN = "123456:clinic-bot-token"
WEBHOOK_SECRET = "clinic-webhook-secret_0123456789"


@pytest.fixture
async def blocked_telegram() -> AsyncIterator[TelegramAdapter]:
    """The real adapter against a Bot API that answers as Telegram does once the patient blocked the bot."""

    async def forbidden(request: web.Request) -> web.Response:
        body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", forbidden)
    async with serve(app) as base_url:
        adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=base_url)
        yield adapter
        await adapter.close()


async def _accepted_telegram_lead(
    client: TestClient[object, object], sessionmaker: Sessions, headers: dict[str, str], *, branch_id: int
) -> tuple[int, int, str]:
    """A Telegram patient's lead at ``branch_id``, accepted by staff: (lead id, outbox id of the message, chat id)."""
    chat = str(5_000_000_000 + secrets.randbelow(10**9))
    inbound = InboundMessage(
        channel="telegram",
        external_id=f"telegram-{secrets.token_hex(8)}",
        contact=ContactRef(channel="telegram", external_id=chat, display_name="Dewi", language_code="en"),
        received_at=datetime.now(UTC),
        text="Can I come tomorrow?",
    )
    async with sessionmaker() as db, db.begin():
        received = await ingest.receive(db, inbound)
        lead = await db.get(Lead, received.lead_id)
        assert lead is not None
        lead.branch_id = branch_id
    response = await client.post(f"/api/v1/leads/{received.lead_id}/accept", headers=headers)
    assert response.status == 200, await response.text()
    async with sessionmaker() as db:
        outbox_id = (
            await db.execute(
                select(OutboxMessage.id).where(OutboxMessage.dedupe_key == f"lead-{lead.id}-lead_accepted")
            )
        ).scalar_one()
    return lead.id, outbox_id, chat


async def _failures(client: TestClient[object, object], headers: dict[str, str]) -> list[dict[str, object]]:
    response = await client.get("/api/v1/failures", headers=headers)
    assert response.status == 200, await response.text()
    return list((await response.json())["failures"])


async def test_a_message_to_a_patient_who_blocked_the_bot_is_listed_with_telegrams_error(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    clinic: Clinic,
    sign_in: SignIn,
    blocked_telegram: TelegramAdapter,
) -> None:
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    lead_id, outbox_id, chat = await _accepted_telegram_lead(client, sessionmaker, headers, branch_id=clinic.branch.id)

    async with sessionmaker() as db:
        outcome = await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": blocked_telegram}))
    assert outcome.status == "failed"

    (failure,) = [f for f in await _failures(client, headers) if f["outbox_id"] == outbox_id]
    assert (failure["channel"], failure["kind"], failure["lead_id"]) == ("telegram", "lead_accepted", lead_id)
    assert "blocked" in str(failure["error"]) and failure["retryable"] is True and failure["attempts"] == 1
    assert failure["recipient"] == f"••••{chat[-4:]}" and chat not in str(failure)
    assert failure["branch_id"] == clinic.branch.id and failure["conversation_id"] is not None


async def test_retrying_a_failed_message_sends_it_again_once(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    clinic: Clinic,
    sign_in: SignIn,
    blocked_telegram: TelegramAdapter,
    sync_redis: SyncRedis,
    settings: Settings,
) -> None:
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    _, outbox_id, chat = await _accepted_telegram_lead(client, sessionmaker, headers, branch_id=clinic.branch.id)
    async with sessionmaker() as db:
        assert (await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": blocked_telegram}))).status == "failed"

    response = await client.post(f"/api/v1/failures/{outbox_id}/retry", headers=headers)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["attempts"], body["retry"], body["enqueued"]) == ("pending", 1, 1, True)
    job = Job.fetch(f"deliver-{outbox_id}-retry-1", connection=sync_redis)
    assert (job.func_name, job.args, job.origin) == (
        job_names.DELIVER,
        (outbox_id,),
        f"{settings.FRONTDESK_REDIS_PREFIX}:outbound",
    )
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, outbox_id)
        failures = list((await db.execute(select(JobFailure).where(JobFailure.outbox_id == outbox_id))).scalars())
        audit = (
            await db.execute(select(AuditEntry).where(AuditEntry.entity == "outbox", AuditEntry.entity_id == outbox_id))
        ).scalar_one()
    assert row is not None and (row.status, row.attempts) == ("pending", 0)  # a fresh set of attempts
    assert failures and all(f.retried_at is not None for f in failures)
    assert audit.action == "outbox.retried" and audit.actor_kind == "staff"
    assert outbox_id not in [f["outbox_id"] for f in await _failures(client, headers)]
    again = await client.post(f"/api/v1/failures/{outbox_id}/retry", headers=headers)
    assert (again.status, (await again.json())["error"]["code"]) == (409, "not_failed")

    async with running_fake_telegram(tokens={BOT_TOKEN}) as telegram:  # the patient unblocked the bot
        adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=telegram.base_url)
        try:
            async with sessionmaker() as db:
                assert (await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": adapter}))).status == "sent"
                assert (await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": adapter}))).status == "skipped"
        finally:
            await adapter.close()
        assert len(telegram.sent_messages(int(chat))) == 1
    sent = await client.post(f"/api/v1/failures/{outbox_id}/retry", headers=headers)
    assert (sent.status, (await sent.json())["error"]["code"]) == (409, "already_sent")


async def test_branch_staff_see_their_branchs_failures_and_jobs_that_are_not_messages(
    client: TestClient[object, object], sessionmaker: Sessions, db: AsyncSession, clinic: Clinic, sign_in: SignIn
) -> None:
    other = await build_clinic(db)
    owner = await sign_in("owner")
    here = await sign_in("staff", branch_id=clinic.branch.id)
    there = await sign_in("staff", branch_id=other.branch.id)
    _, mine, _ = await _accepted_telegram_lead(client, sessionmaker, owner, branch_id=clinic.branch.id)
    _, theirs, _ = await _accepted_telegram_lead(client, sessionmaker, owner, branch_id=other.branch.id)
    job_name = f"waitlist_offer_{secrets.token_hex(3)}"
    async with sessionmaker() as session, session.begin():
        for outbox_id in (mine, theirs):
            row = await session.get(OutboxMessage, outbox_id)
            assert row is not None
            row.status, row.last_error = "failed", "blocked: Forbidden: bot was blocked by the user"
        session.add(JobFailure(job_name=job_name, args=[42], error="ValueError: no such slot"))

    seen_here = {f["outbox_id"] for f in await _failures(client, here)}
    assert mine in seen_here and theirs not in seen_here
    everything = await _failures(client, owner)
    assert {mine, theirs} <= {f["outbox_id"] for f in everything}
    (job,) = [f for f in everything if f["job_name"] == job_name]
    assert (job["outbox_id"], job["retryable"], job["error"]) == (None, False, "ValueError: no such slot")
    assert job_name in {f["job_name"] for f in await _failures(client, here)}  # no branch known: everyone's

    assert (await client.post(f"/api/v1/failures/{mine}/retry", headers=there)).status == 404
    assert (await client.post("/api/v1/failures/999999999/retry", headers=here)).status == 404
    assert (await client.get("/api/v1/failures", headers=await sign_in("doctor"))).status == 403
    assert (await client.post(f"/api/v1/failures/{mine}/retry", headers=here)).status == 200
