"""Failures are visible: undelivered messages and failed jobs, with their error, and a retry for messages."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from booking_core.services import failures
from gateway.api import api
from gateway.api.common import caller, transaction
from gateway.api.fields import BigId
from gateway.keys import RQ_REDIS, SETTINGS
from infra import queues

log = logging.getLogger(__name__)
FRONT_DESK = ("owner", "admin", "staff")


class FailuresQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=500)


class FailureOut(BaseModel):
    outbox_id: int | None = Field(description="The message that failed; None for a job that is not a delivery")
    job_failure_id: int | None
    job_name: str
    kind: str | None = Field(description="reply, reminder, lead_accepted, ...")
    channel: str | None
    recipient: str | None = Field(description="Masked")
    error: str
    attempts: int
    failed_at: datetime
    conversation_id: int | None
    lead_id: int | None
    session_id: int | None
    branch_id: int | None
    retryable: bool
    maybe_delivered: bool = Field(
        default=False, description="a send may have reached the patient (no answer in time): check before retrying"
    )
    waits_for_channel: bool = Field(
        default=False, description="the provider kept failing; it goes out by itself once the channel answers again"
    )


class FailuresOut(BaseModel):
    failures: list[FailureOut]


class RetryOut(BaseModel):
    outbox_id: int
    status: str
    attempts: int = Field(description="Attempts it had used when it failed; the retry starts again from none")
    retry: int = Field(description="How many times staff retried this message, this one included")
    job_id: str
    enqueued: bool = Field(description="False when Redis was unreachable: the worker's sweep sends it instead")


@api.route(
    "GET",
    "/failures",
    summary="Messages that could not be delivered and jobs that exhausted their retries, newest first",
    tag="failures",
    query=FailuresQuery,
    response=FailuresOut,
    roles=FRONT_DESK,
)
async def list_failures(request: web.Request, query: FailuresQuery) -> FailuresOut:
    async with transaction(request) as db:
        found = await failures.list_failures(db, actor=caller(request), limit=query.limit)
    return FailuresOut(failures=[FailureOut.model_validate(f, from_attributes=True) for f in found])


@api.route(
    "POST",
    "/failures/{outbox_id}/retry",
    summary="Send a failed message again, with a fresh set of attempts",
    tag="failures",
    response=RetryOut,
    roles=FRONT_DESK,
    errors=(404, 409),
)
async def retry_failure(request: web.Request, outbox_id: BigId) -> RetryOut:
    async with transaction(request) as db:
        retried = await failures.retry(db, outbox_id, actor=caller(request))
    enqueued = True
    try:
        await asyncio.to_thread(
            queues.enqueue_delivery,
            request.app[RQ_REDIS],
            request.app[SETTINGS].FRONTDESK_REDIS_PREFIX,
            outbox_id,
            job_id=retried.job_id,
        )
    except (RedisError, OSError):  # the row is pending and due: the sweep re-enqueues it
        log.warning("could not enqueue %s; the sweep will deliver outbox %s", retried.job_id, outbox_id, exc_info=True)
        enqueued = False
    return RetryOut(
        outbox_id=outbox_id,
        status="pending",
        attempts=retried.attempts,
        retry=retried.retry,
        job_id=retried.job_id,
        enqueued=enqueued,
    )
