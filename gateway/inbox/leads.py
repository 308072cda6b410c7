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
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.exceptions import RedisError

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.services import availability, booking, catalog, conversation, failures, lead_actions, leads
from booking_core.services.errors import Conflict, Invalid, NotFound, ServiceError
from gateway.api.booking import plan_followups
from gateway.api.common import transaction
from gateway.inbox.web import ALL, DESK, View, back, form_of, render, staff_page
from gateway.keys import RQ_REDIS, SESSIONMAKER, SETTINGS
from infra import job_names, queues

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_PAGE = 4000
MAX_SLOTS = 96  # free times shown for one day (a day of 15-minute steps for a few doctors)
CHANNELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat", "webform": "Booking form"}
STATUS_LABELS = {"new": "New", "accepted": "Accepted", "rejected": "Rejected", "converted": "Booked"}
AUTHORS = {"patient": "Patient", "bot": "Bot", "staff": "Staff"}
DOCTORS_HOME = "/inbox/queue"


# --- formatting (times in the branch's zone, in the clinic's words)


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):  # pragma: no cover - branch zones are validated when saved
        return ZoneInfo("UTC")


def when(value: datetime | None, tz: str | None, *, with_day: bool = True) -> str:
    """``Tue 2 Dec, 10:00`` in the branch's time zone."""
    if value is None:
        return ""
    local = value.astimezone(_zone(tz))
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}" if with_day else f"{local:%H:%M}"


def ago(value: datetime, now: datetime) -> str:
    seconds = max(0, int((now - value).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _minutes_left(until: datetime, now: datetime) -> int:
    return max(0, int((until - now).total_seconds() // 60))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


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
        branch = _int(q.get("branch"))
        if actor.kind == "staff" and actor.branch_id is not None:
            branch = None  # branch staff see their branch (and leads not tied to one) anyway
        page = _int(q.get("page")) or 1
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


def _inbox_row(row: leads.InboxRow, now: datetime, default_tz: str) -> dict[str, Any]:
    lead = row.lead
    tz = row.branch_tz or default_tz
    wanted = " · ".join(
        part
        for part in (
            row.examination_name,
            when(lead.requested_start, tz) if lead.requested_start else None,
            row.doctor_name,
        )
        if part
    )
    return {
        "id": lead.id,
        "href": f"/inbox/leads/{lead.id}",
        "channel": lead.channel,
        "channel_label": CHANNELS.get(lead.channel, lead.channel),
        "name": lead.patient_name or lead.contact_name or "Unknown patient",
        "phone": lead.contact_phone or "",
        "wanted": wanted,
        "branch": row.branch_name or "",
        "status": lead.status,
        "status_label": STATUS_LABELS.get(lead.status, lead.status),
        "snippet": lead.last_text[:140],
        "last_author": AUTHORS.get(row.last_author or "", ""),
        "age": ago(row.activity, now),
        "at": row.activity.isoformat(),
        "failed": row.failed_delivery,
        "paused": row.bot_paused,
    }


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
        "rows": [_inbox_row(row, now, default_tz) for row in found.rows],
        "branches": branches if not (actor.kind == "staff" and actor.branch_id is not None) else [],
        "channels": CHANNELS,
        "statuses": STATUS_LABELS,
        "newer_url": filters.url(page=filters.page - 1) if filters.page > 1 else "",
        "older_url": filters.url(page=filters.page + 1) if found.has_more else "",
        "clear_url": "/inbox",
    }
    return render(request, actor, "inbox/leads.html", context, title="Inbox")


# --- a lead's page


def _thread_view(entry: leads.ThreadEntry, tz: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "direction": entry.direction,
        "author": entry.author,
        "author_name": entry.author_name,
        "channel": entry.channel,
        "channel_label": CHANNELS.get(entry.channel, entry.channel),
        "text": entry.text,
        "at": when(entry.created_at, tz),
        "at_iso": entry.created_at.isoformat(),
        "buttons": [b for b in entry.buttons if b],
        "outbox_id": entry.outbox_id,
        "status": entry.status or "",
        "delivery_state": entry.delivery_state or "",
        "error": entry.error or "",
        "maybe_twice": entry.maybe_twice,
    }


def _history_view(entry: leads.HistoryEntry, tz: str) -> dict[str, Any]:
    detail = ""
    data = entry.data
    if entry.action == "lead.rejected":
        detail = str(data.get("reason", ""))
    elif entry.action == "lead.requested" and isinstance(data.get("starts_at"), str):
        try:
            detail = when(datetime.fromisoformat(data["starts_at"]), tz)
        except ValueError:
            detail = ""
    elif entry.action in ("lead.accepted", "lead.rejected") and data.get("notified") is False:
        detail = "patient not reachable"
    elif entry.action == "lead.created" and data.get("channel"):
        detail = f"via {CHANNELS.get(str(data['channel']), str(data['channel']))}"
    who = (
        entry.actor_name
        if entry.actor_kind == "staff"
        else {"patient": "Patient", "system": "System"}.get(entry.actor_kind, entry.actor_kind)
    )
    return {
        "label": entry.label,
        "detail": detail,
        "who": who,
        "at": when(entry.at, tz),
        "at_iso": entry.at.isoformat(),
    }


@dataclass
class Picker:
    """The slot picker of the convert form: what is chosen, and the free times for it."""

    branches: list[catalog.BranchView]
    examinations: list[catalog.ExaminationView]
    doctors: list[catalog.DoctorView]
    branch_id: int | None
    examination_id: int | None
    doctor_id: int | None
    day: date
    tz: str
    options: list[dict[str, Any]]  # the day's free times
    alternatives: list[dict[str, Any]]  # next free times (after a taken slot, or when the day has none)
    held: dict[str, Any] | None  # the lead's live hold, preselected
    taken: str  # the time that was just taken, shown in the message
    problem: str  # why no times can be shown
    selected: str


def _slot_value(start: datetime, doctor_id: int) -> str:
    return f"{start.astimezone(UTC).isoformat()}|{doctor_id}"


def _option(start: datetime, doctor_id: int, doctor_name: str, tz: str, *, with_day: bool) -> dict[str, Any]:
    return {"value": _slot_value(start, doctor_id), "time": when(start, tz, with_day=with_day), "doctor": doctor_name}


async def _picker(db: Db, request: web.Request, actor: Actor, page: leads.LeadPage, now: datetime) -> Picker:
    q = request.query
    lead, hold = page.lead, page.hold
    branches = await catalog.list_branches(db, actor=actor)
    visible = {b.id: b for b in branches}
    wanted_branch = _int(q.get("branch"))
    branch_id = next(
        (b for b in (wanted_branch, lead.branch_id, hold.branch_id if hold else None) if b in visible),
        branches[0].id if branches else None,
    )
    tz = visible[branch_id].tz if branch_id is not None else page.tz
    zone = _zone(tz)
    picker = Picker(branches, [], [], branch_id, None, None, now.astimezone(zone).date(), tz, [], [], None, "", "", "")
    if branch_id is None:
        picker.problem = "No branch is open for booking."
        return picker
    picker.examinations = await catalog.list_examinations(db, actor=actor, branch_id=branch_id, active=True)
    offered = {e.id: e for e in picker.examinations}
    wanted_exam = _int(q.get("exam"))
    exam_id = next(
        (e for e in (wanted_exam, lead.examination_id, hold.examination_id if hold else None) if e in offered),
        picker.examinations[0].id if picker.examinations else None,
    )
    picker.examination_id = exam_id
    if exam_id is None:
        picker.problem = "This branch offers no examinations yet."
        return picker
    performing = set(offered[exam_id].doctor_ids)
    picker.doctors = [d for d in await catalog.list_doctors(db, actor=actor, branch_id=branch_id) if d.id in performing]
    doctor_ids = {d.id for d in picker.doctors}
    picker.doctor_id = (
        _int(q.get("doctor")) if "doctor" in q else (lead.doctor_id if lead.examination_id == exam_id else None)
    )
    if picker.doctor_id not in doctor_ids:
        picker.doctor_id = None
    today = now.astimezone(zone).date()
    try:
        asked = date.fromisoformat(q["day"]) if q.get("day") else None
    except ValueError:
        asked = None
    requested = lead.requested_start.astimezone(zone).date() if lead.requested_start else None
    picker.day = max(asked or (requested if requested and requested >= today else today), today)
    if hold is not None and hold.live and hold.branch_id == branch_id and hold.examination_id == exam_id:
        picker.held = {
            "value": _slot_value(hold.starts_at, hold.doctor_id),
            "time": when(hold.starts_at, tz),
            "doctor": hold.doctor_name or "",
            "minutes": _minutes_left(hold.expires_at, now),
            "expires_iso": hold.expires_at.isoformat(),
        }
        picker.selected = picker.held["value"]
    start = datetime.combine(picker.day, time(0), zone)
    end = start + timedelta(days=1)
    try:
        ctx, slots = await availability.find_slots(
            db, branch_id=branch_id, examination_id=exam_id, start=max(start, now), end=end,
            doctor_id=picker.doctor_id, now=now,
        )  # fmt: skip
    except ServiceError as exc:
        picker.problem = exc.message
        return picker
    names = ctx.doctor_names
    picker.options = [_option(s.start, s.doctor_id, names.get(s.doctor_id, ""), tz, with_day=False) for s in slots]
    picker.options = picker.options[:MAX_SLOTS]
    if not picker.selected and lead.requested_start is not None:
        wanted = lead.requested_start.astimezone(UTC).isoformat()
        picker.selected = next((o["value"] for o in picker.options if o["value"].startswith(wanted)), "")
    taken = q.get("taken", "")
    after: datetime | None = None
    if taken:
        try:
            after = datetime.fromisoformat(taken)
        except ValueError:
            after = None
        if after is not None and (after.tzinfo is None or after.utcoffset() is None):
            after = None
        picker.taken = when(after, tz) if after else ""
    if after is None and not picker.options:
        after = end  # nothing that day: offer the next free times after it
    if after is not None:
        try:
            found = await booking.alternatives(
                db, branch_id=branch_id, examination_id=exam_id, after=after, doctor_id=picker.doctor_id, now=now,
                limit=6,
            )  # fmt: skip
        except ServiceError:
            found = []
        picker.alternatives = [
            _option(datetime.fromisoformat(str(a["start"])), int(str(a["doctor_id"])), str(a["doctor_name"]), tz,
                    with_day=True)
            for a in found
        ]  # fmt: skip
    return picker


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
        picker = await _picker(db, request, actor, page, now) if wants_picker else None
    lead, tz = page.lead, page.tz
    hold = page.hold
    context = {
        "lead": lead,
        "name": page.patient.name if page.patient and page.patient.name else lead.contact_name or "Unknown patient",
        "channel_label": CHANNELS.get(lead.channel, lead.channel),
        "status_label": STATUS_LABELS.get(lead.status, lead.status),
        "is_open": is_open,
        "reject_reason": page.reject_reason or "",
        "wanted": {
            "examination": page.examination_name or "",
            "doctor": page.doctor_name or "",
            "branch": page.branch_name or "",
            "start": when(lead.requested_start, tz),
            "text": lead.last_text,
        },
        "hold": None
        if hold is None
        else {
            "time": when(hold.starts_at, tz),
            "doctor": hold.doctor_name or "",
            "live": hold.live,
            "status": hold.status,
            "minutes": _minutes_left(hold.expires_at, now),
            "until": when(hold.expires_at, tz, with_day=False),
            "expires_iso": hold.expires_at.isoformat(),
        },
        "session": None
        if page.session is None
        else {
            "id": page.session.id,
            "code": page.session.booking_code,
            "time": when(page.session.starts_at, tz),
            "doctor": page.session.doctor_name,
            "room": page.session.room_name,
            "status": page.session.status,
            "href": f"/inbox/sessions/{page.session.id}",
        },
        "patient": page.patient,
        "channels": CHANNELS,
        "thread": [_thread_view(m, tz) for m in page.thread],
        "reply_channel": CHANNELS.get(page.reply_channel or "", ""),
        "reply_to": page.reply_to,
        "reply_key": secrets.token_urlsafe(12),
        "bot_paused": page.bot_paused,
        "history": [_history_view(h, tz) for h in page.history],
        "picker": picker,
        "tz": tz,
    }
    return render(request, actor, "inbox/lead.html", context, title=f"Lead {lead.id}")


# --- actions (each a post that redirects back to the lead's page with a notice)


@staff_page(DESK)
async def reply(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead_id = _lead_id(request)
    form = await form_of(request)
    async with transaction(request) as db:  # the outbox row is handed to the workers right after the commit
        sent = await conversation.staff_reply(
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
            changed = await conversation.set_bot_paused(db, lead_id, actor=actor, paused=paused)
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


def _picked(form: dict[str, str], actor: Actor, now: datetime) -> tuple[datetime, int, int, int]:
    """(start, doctor, branch, examination) from the convert form; 422 for a form not sent from the picker."""
    raw = form.get("slot", "")
    start_raw, _, doctor_raw = raw.partition("|")
    branch_id, exam_id, doctor_id = _int(form.get("branch")), _int(form.get("exam")), _int(doctor_raw)
    if not raw or doctor_id is None:
        raise Invalid("slot_required", "Choose a free time first.")
    if branch_id is None or exam_id is None:
        raise Invalid("examination_required", "Choose the branch and the examination.")
    try:
        start = datetime.fromisoformat(start_raw)
    except ValueError:
        raise Invalid("slot_required", "Choose a free time first.") from None
    if start.tzinfo is None or start.utcoffset() is None:
        raise Invalid("slot_required", "Choose a free time first.")
    if start < now - timedelta(minutes=5):
        raise Invalid("slot_in_the_past", "That time has passed; choose a later one.")
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    return start, doctor_id, branch_id, exam_id


@staff_page(DESK)
async def convert(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Book the picked time for the lead. A repeat (double click, two tabs) finds the same session."""
    lead_id = _lead_id(request)
    form = await form_of(request)
    start, doctor_id, branch_id, exam_id = _picked(form, actor, datetime.now(UTC))

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
            queues.enqueue, request.app[RQ_REDIS], request.app[SETTINGS].FRONTDESK_REDIS_PREFIX,
            job_names.DELIVER, outbox_id, queue=queues.OUTBOUND, job_id=retried.job_id,
        )  # fmt: skip
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
