"""The messages that follow a booking on the patient's own channel: the confirmation (the visit's link, Confirm /
Cancel buttons), the check-in QR of an accepted visit, and the thank-you with 1-5 rating buttons after it.

Each is an outbox row with a dedupe key (``confirm:<id>``, ``checkin-qr:<id>``, ``thanks:<id>``), so asking twice
writes one row; a patient with no reachable channel is recorded (audit ``<kind>.unreachable``) and skipped.
"""

from __future__ import annotations

import io
from typing import Any, Literal
from zoneinfo import ZoneInfo

import segno

from booking_core.db.engine import Db
from booking_core.db.queries import confirmation as queries
from booking_core.domain.actors import SYSTEM
from booking_core.domain.links import RATINGS, checkin_content, confirm_buttons, rating_buttons
from booking_core.domain.messages import Button, Image
from booking_core.services import audit, messages, notify
from booking_core.services.visit_link import link_url, token_for

__all__ = ["checkin_qr_png", "checkin_qr_svg", "send_checkin_qr", "send_confirmation", "send_thank_you"]

Kind = Literal["confirmation", "checkin_qr", "thank_you"]


def checkin_qr_png(booking_code: str) -> bytes:
    """The check-in QR (a full QR code, never a Micro QR that desk scanners may not read) as a PNG."""
    out = io.BytesIO()
    segno.make_qr(checkin_content(booking_code), error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def checkin_qr_svg(booking_code: str) -> str:
    """The same QR as an SVG data URI, for the confirmation page."""
    return str(segno.make_qr(checkin_content(booking_code), error="m").svg_data_uri(scale=6, border=4))


def _visit_values(record: queries.VisitRecord) -> dict[str, Any]:
    zone = ZoneInfo(record.branch.tz)
    first = record.patient.name.split()[0] if record.patient.name.split() else ""
    return {
        "name": first,
        "code": record.session.booking_code,
        "start": record.session.starts_at.astimezone(zone).isoformat(timespec="minutes"),
        "examination": ", ".join(e.name for e in record.examinations),
        "doctor": record.doctor.name,
        "branch": record.branch.name,
        "address": record.branch.address or "",
        "phone": record.branch.phone or "",
        "hint": None,
    }


async def _plan(
    db: Db,
    record: queries.VisitRecord,
    kind: Kind,
    *,
    template: str,
    values: dict[str, Any],
    buttons: list[tuple[str, str, str, dict[str, Any]]],
    image: Image | None = None,
    dedupe_key: str,
    default_language: str,
) -> list[int]:
    """Write one message of ``kind`` to the patient's channel; [] when nobody can be reached (recorded)."""

    def notice(lang: str) -> notify.Notice:
        return notify.Notice(
            messages.render(lang, template, **values),
            buttons=tuple(
                Button(messages.label(lang, key, sheet=sheet, **kw), data) for sheet, key, data, kw in buttons
            ),
            image=image,
            template_values={"name": values["name"], "code": values["code"], "link": values.get("link", "")},
        )

    told = await notify.tell(
        db, record.patient.id, kind, notice, dedupe_key=dedupe_key,
        prefer_channel=await queries.lead_channel(db, record.session.lead_id), default_language=default_language,
    )  # fmt: skip
    if told is None:
        audit.record(
            db, SYSTEM, f"{kind}.unreachable", "session", record.session.id,
            {"patient_id": record.patient.id, "reason": "no channel to reach the patient"},
        )  # fmt: skip
        return []
    return [told.outbox_id] if told.outbox_id is not None else []


async def send_confirmation(
    db: Db, session_id: int, *, secret: str, base_url: str, default_language: str = "en"
) -> list[int]:
    """Plan the confirmation message (link, Confirm / Cancel buttons) for a waiting visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "waiting":
        return []
    yes, no = confirm_buttons(session_id)
    values = {**_visit_values(record), "link": link_url(base_url, token_for(secret, record.session))}
    return await _plan(
        db, record, "confirmation", template="confirmation", values=values,
        buttons=[("confirmation_buttons", "confirm", yes, {}), ("confirmation_buttons", "cancel", no, {})],
        dedupe_key=f"confirm:{session_id}", default_language=default_language,
    )  # fmt: skip


async def send_checkin_qr(db: Db, session_id: int, *, default_language: str = "en") -> list[int]:
    """Plan the check-in QR (PNG of "FD:<booking code>") for an accepted, waiting visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "waiting" or not record.session.accepted:
        return []
    code = record.session.booking_code
    image = Image(checkin_qr_png(code), filename=f"check-in-{code}.png")
    return await _plan(
        db, record, "checkin_qr", template="checkin_qr", values=_visit_values(record), buttons=[], image=image,
        dedupe_key=f"checkin-qr:{session_id}", default_language=default_language,
    )  # fmt: skip


async def send_thank_you(db: Db, session_id: int, *, default_language: str = "en") -> list[int]:
    """Plan the thank-you with 1-5 rating buttons for a completed, unrated visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "completed" or record.session.rating is not None:
        return []
    buttons = [
        ("rating_buttons", "stars", data, {"n": n}) for n, data in zip(RATINGS, rating_buttons(session_id), strict=True)
    ]
    return await _plan(
        db, record, "thank_you", template="thank_you", values=_visit_values(record), buttons=buttons,
        dedupe_key=f"thanks:{session_id}", default_language=default_language,
    )  # fmt: skip
