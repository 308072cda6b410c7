"""How the inbox shows leads: times in the branch's zone and in the clinic's words, and the rows, messages and
history entries the inbox and a lead's page list."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.services import leads

CHANNELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat", "webform": "Booking form"}
STATUS_LABELS = {"new": "New", "accepted": "Accepted", "rejected": "Rejected", "converted": "Booked"}
AUTHORS = {"patient": "Patient", "bot": "Bot", "staff": "Staff"}


def zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):  # pragma: no cover - branch zones are validated when saved
        return ZoneInfo("UTC")


def when(value: datetime | None, tz: str | None, *, with_day: bool = True) -> str:
    """``Tue 2 Dec, 10:00`` in the branch's time zone."""
    if value is None:
        return ""
    local = value.astimezone(zone(tz))
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


def minutes_left(until: datetime, now: datetime) -> int:
    return max(0, int((until - now).total_seconds() // 60))


def inbox_row(row: leads.InboxRow, now: datetime, default_tz: str) -> dict[str, Any]:
    """One line of the inbox."""
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


def lead_context(page: leads.LeadPage, now: datetime, *, is_open: bool) -> dict[str, Any]:
    """What a lead's page shows of the lead: who, what they asked for, its hold or session, the conversation and
    the history (the slot picker and the reply form's key are the handler's)."""
    lead, tz, hold, session = page.lead, page.tz, page.hold, page.session
    return {
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
            "minutes": minutes_left(hold.expires_at, now),
            "until": when(hold.expires_at, tz, with_day=False),
            "expires_iso": hold.expires_at.isoformat(),
        },
        "session": None
        if session is None
        else {
            "id": session.id,
            "code": session.booking_code,
            "time": when(session.starts_at, tz),
            "doctor": session.doctor_name,
            "room": session.room_name,
            "status": session.status,
            "href": f"/inbox/sessions/{session.id}",
        },
        "patient": page.patient,
        "channels": CHANNELS,
        "thread": [_thread_view(m, tz) for m in page.thread],
        "reply_channel": CHANNELS.get(page.reply_channel or "", ""),
        "reply_to": page.reply_to,
        "bot_paused": page.bot_paused,
        "history": [_history_view(h, tz) for h in page.history],
        "tz": tz,
    }


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
