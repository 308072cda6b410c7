"""The lead inbox (``/inbox``) and a lead's page (``/inbox/leads/{id}``).

The inbox lists every channel's booking requests, new ones first, then by last activity, and refreshes by itself
(a live region on leads, messages and outbox changes). A lead's page shows the patient's whole conversation across
channels, the request and its held slot, the patient record, status and history, and lets the front desk reply on
the patient's channel (the bot pauses while staff talk), hand the chat back to the bot, accept, reject with a
reason, send a failed message again, and convert the lead into a session with a slot picker fed by live
availability. Every action is a form post to the services, answered with a redirect back and a notice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from redis.exceptions import RedisError

from booking_core.domain.actors import Actor
from booking_core.services import booking, catalog, failures, lead_actions, leads, staff_replies
from booking_core.services.errors import Conflict
from gateway.api.booking import plan_followups
from gateway.api.common import transaction
from gateway.inbox.formats import as_int
from gateway.inbox.lead_views import CHANNELS, STATUS_LABELS, inbox_row, lead_context, when
from gateway.inbox.slot_picker import picked_slot, slot_picker
from gateway.inbox.web import ALL, DESK, View, back, form_of, render, staff_page
from gateway.keys import RQ_REDIS, SESSIONMAKER, SETTINGS
from infra import queues

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_PAGE = 4000
DOCTORS_HOME = "/inbox/queue"


def _lead_id(request: web.Request) -> int:
    return int(request.match_info["lead_id"])


def _lead_url(lead_id: int, **query: str) -> str:
    kept = {k: v for k, v in query.items() if v}
    return f"/inbox/leads/{lead_id}" + (f"?{urlencode(kept)}" if kept else "")


# --- the inbox


@dataclass(frozen=True)
class Filters:
    status: str
    channel: str
    branch: int | None
    search: str
    page: int

    @classmethod
    def of(cls, request: web.Request, actor: Actor) -> Filters:
        q = request.query
        branch = as_int(q.get("branch"))
        if actor.kind == "staff" and actor.branch_id is not None:
            branch = None  # branch staff see their branch (and leads not tied to one) anyway
        page = as_int(q.get("page")) or 1
        return cls(
            status=q.get("status", "") if q.get("status") in STATUS_LABELS else "",
            channel=q.get("channel", "") if q.get("channel") in CHANNELS else "",
            branch=branch,
            search=" ".join(q.get("q", "").split())[:100],
            page=min(max(page, 1), MAX_PAGE),
        )

    def url(self, **changes: Any) -> str:
        values: dict[str, Any] = {"status": self.status, "channel": self.channel, "branch": self.branch or "",
                                  "q": self.search, "page": self.page}  # fmt: skip
        values.update(changes)
        if values["page"] == 1:  # the first page is the inbox itself
            values["page"] = ""
        kept = {k: v for k, v in values.items() if v not in ("", None)}
        return "/inbox" + (f"?{urlencode(kept)}" if kept else "")

    @property
    def any(self) -> bool:
        return bool(self.status or self.channel or self.branch or self.search)


@staff_page(ALL)
async def inbox(request: web.Request, actor: Actor) -> web.StreamResponse:
    """``GET /inbox``: the lead inbox with filters, search and paging. It is where signing in lands, so a doctor
    (who does not work the inbox) is sent on to the queue board instead of a refusal."""
    if actor.role not in DESK:
        raise web.HTTPSeeOther(DOCTORS_HOME)
    filters = Filters.of(request, actor)
    now = datetime.now(UTC)
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
        found = await leads.inbox_page(
            db,
            actor=actor,
            status=filters.status or None,
            channel=filters.channel or None,
            branch_id=filters.branch,
            search=filters.search or None,
            limit=PAGE_SIZE,
            offset=(filters.page - 1) * PAGE_SIZE,
        )
    default_tz = branches[0].tz if branches else "UTC"
    context = {
        "filters": filters,
        "rows": [inbox_row(row, now, default_tz) for row in found.rows],
        "branches": branches if not (actor.kind == "staff" and actor.branch_id is not None) else [],
        "channels": CHANNELS,
        "statuses": STATUS_LABELS,
        "newer_url": filters.url(page=filters.page - 1) if filters.page > 1 else "",
        "older_url": filters.url(page=filters.page + 1) if found.has_more else "",
        "clear_url": "/inbox",
    }
    return render(request, actor, "inbox/leads.html", context, title="Inbox")


# --- a lead's page


@staff_page(DESK)
async def lead_detail(request: web.Request, actor: Actor) -> web.StreamResponse:
    """``GET /inbox/leads/{id}``: the lead, its conversation, and what staff can do with it."""
    lead_id = _lead_id(request)
    now = datetime.now(UTC)
    async with request.app[SESSIONMAKER]() as db:
        page = await leads.lead_page(db, lead_id, actor=actor, now=now)
        is_open = page.lead.status in lead_actions.OPEN
        # A live region's refresh (X-Partial) swaps the conversation, status or history: not the picker.
        wants_picker = is_open and page.session is None and "X-Partial" not in request.headers
        picker = await slot_picker(db, request.query, actor, page, now) if wants_picker else None
    context = {
        **lead_context(page, now, is_open=is_open),
        "reply_key": secrets.token_urlsafe(12),
        "picker": picker,
    }
    return render(request, actor, "inbox/lead.html", context, title=f"Lead {page.lead.id}")


# --- actions (each a post that redirects back to the lead's page with a notice)


@staff_page(DESK)
async def reply(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead_id = _lead_id(request)
    form = await form_of(request)
    async with transaction(request) as db:  # the outbox row is handed to the workers right after the commit
        sent = await staff_replies.staff_reply(
            db, lead_id, actor=actor, text=form.get("text", ""), key=form.get("reply_key")
        )
    if sent.outbox_id is None:
        return back(request, _lead_url(lead_id), notice="That reply was sent already.")
    paused = " The bot is paused for this chat until you hand it back." if sent.paused_now else ""
    return back(
        request, _lead_url(lead_id), notice=f"Reply sent on {CHANNELS.get(sent.channel, sent.channel)}.{paused}"
    )


def _bot_switch(*, paused: bool, done: str, already: str) -> View:
    """Pause the bot for the lead's chat (staff answer) or hand the chat back to it."""

    @staff_page(DESK)
    async def switch(request: web.Request, actor: Actor) -> web.StreamResponse:
        lead_id = _lead_id(request)
        async with transaction(request) as db:
            changed = await staff_replies.set_bot_paused(db, lead_id, actor=actor, paused=paused)
        return back(request, _lead_url(lead_id), notice=done if changed else already)

    return switch


take_over = _bot_switch(
    paused=True, done="The bot is paused: you answer this chat.", already="The bot was paused already."
)
hand_back = _bot_switch(
    paused=False,
    done="Handed back: the bot answers the patient's next message.",
    already="The bot was answering already.",
)


def _told(decision: lead_actions.Decision, what: str) -> str:
    if not decision.changed:
        return f"The lead was {what} already."
    told = " The patient is told on their channel." if decision.notified else " The patient has no chat to be told on."
    return f"Lead {what}.{told}"


@staff_page(DESK)
async def accept(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead_id = _lead_id(request)
    async with transaction(request) as db:
        decision = await lead_actions.accept(
            db, lead_id, actor=actor, default_language=request.app[SETTINGS].DEFAULT_LANGUAGE
        )
    return back(request, _lead_url(lead_id), notice=_told(decision, "accepted"))


@staff_page(DESK)
async def reject(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead_id = _lead_id(request)
    form = await form_of(request)
    async with transaction(request) as db:
        decision = await lead_actions.reject(
            db,
            lead_id,
            actor=actor,
            reason=form.get("reason", ""),
            default_language=request.app[SETTINGS].DEFAULT_LANGUAGE,
        )
    notice = _told(decision, "rejected")
    if decision.hold_released:
        notice += " Its held slot is free again."
    return back(request, _lead_url(lead_id), notice=notice)


@staff_page(DESK)
async def convert(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Book the picked time for the lead. A repeat (double click, two tabs) finds the same session."""
    lead_id = _lead_id(request)
    form = await form_of(request)
    start, doctor_id, branch_id, exam_id = picked_slot(form, actor, datetime.now(UTC))

    async def attempt() -> lead_actions.Conversion:  # run again whole if PostgreSQL aborts it (a deadlock)
        async with transaction(request) as db:
            done = await lead_actions.convert(
                db, lead_id, actor=actor, start=start, doctor_id=doctor_id, branch_id=branch_id,
                examination_ids=[exam_id],
            )  # fmt: skip
            if done.created:  # the confirmation link, in the same transaction (delivered after commit)
                await plan_followups(request, db, done.session.id)
        return done

    try:
        done = await booking.retrying(attempt)
    except Conflict as exc:
        if exc.code != "slot_taken":
            raise
        # Back to the picker on the same choices, with the next free times after the one that went.
        picked = {"branch": str(branch_id), "exam": str(exam_id), "doctor": form.get("doctor_choice", ""),
                  "day": form.get("day", ""), "taken": start.isoformat()}  # fmt: skip
        return back(request, _lead_url(lead_id, **picked) + "#convert", error=exc.message)
    session = done.session
    async with request.app[SESSIONMAKER]() as db:
        branch_tz = next(
            (b.tz for b in await catalog.list_branches(db, actor=actor) if b.id == session.branch_id), None
        )
    booked = f"{session.booking_code}, {when(session.starts_at, branch_tz)} with {session.doctor_name}"
    notice = f"Booked: {booked}." if done.created else f"This lead was booked already: {booked}."
    return back(request, _lead_url(lead_id), notice=notice)


@staff_page(DESK)
async def retry(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Send a failed message of this lead's conversation again (the failures service; its attempts are kept)."""
    lead_id = _lead_id(request)
    outbox_id = int(request.match_info["outbox_id"])
    async with transaction(request) as db:
        await leads.lead_page(db, lead_id, actor=actor, limit=1)  # 404 for another branch's lead
        retried = await failures.retry(db, outbox_id, actor=actor)
    try:
        await asyncio.to_thread(
            queues.enqueue_delivery,
            request.app[RQ_REDIS],
            request.app[SETTINGS].FRONTDESK_REDIS_PREFIX,
            outbox_id,
            job_id=retried.job_id,
        )
    except (RedisError, OSError):  # the row is pending and due: the sweep sends it
        log.warning("could not enqueue %s; the sweep will deliver outbox %s", retried.job_id, outbox_id)
    return back(request, _lead_url(lead_id), notice="Sending the message again.")


def setup(app: web.Application) -> None:
    app.router.add_get("/inbox", inbox)
    app.router.add_get(r"/inbox/leads/{lead_id:\d{1,9}}", lead_detail)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/reply", reply)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/take-over", take_over)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/hand-back", hand_back)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/accept", accept)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/reject", reject)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/convert", convert)
    app.router.add_post(r"/inbox/leads/{lead_id:\d{1,9}}/messages/{outbox_id:\d{1,12}}/retry", retry)
