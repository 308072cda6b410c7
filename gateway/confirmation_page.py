"""The patient's confirmation page, ``GET,POST /c/{token}``: the visit, and confirm, cancel (reason) or reschedule.

A request meets, in order: a per-IP rate limit in Redis (429 page), the link token (signed, expiring, naming the
session and its booking code: anything else is the readable "This link is not valid any more" page, 404), and on
POST a CSRF token signed with the server secret and bound to the link token (403 page, nothing written). A change
runs in one transaction; its messages (the check-in QR) are delivered after the commit, and the browser is sent
back to the page (303) to see the result. Refusals (the cut-off, a time taken meanwhile) re-render the page with
the reason and the clinic's phone.

The link is the patient's key: the page is never cached, never sent as a referrer and never framed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from babel.dates import format_date, format_datetime, format_time
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError

from booking_core.domain.links import PAGE_CANCEL_REASONS
from booking_core.services import confirmation, followups, visit_link, visit_messages
from booking_core.services.errors import NotFound, ServiceError
from gateway import jobs
from gateway.forms import posted_form
from gateway.keys import REDIS, SESSIONMAKER, SETTINGS
from gateway.limits import limit_address, retry_after
from infra.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

CSRF_SALT = "frontdesk.confirmation-page.csrf"
CSRF_MAX_AGE = 12 * 3600
VIEWS_PER_WINDOW = 120  # page views per client IP (a clinic's patients may share a mobile carrier's address) ...
POSTS_PER_WINDOW = 30  # ... and changes per client IP ...
WINDOW = 10 * 60  # ... per ten minutes
LANGUAGES = ("en", "id")
NOTICES = ("confirmed", "already_confirmed", "cancelled", "rescheduled")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your visit",
        "intro": "Please check your visit and let us know whether you will come.",
        "patient": "Patient",
        "date": "Date",
        "time": "Time",
        "doctor": "Doctor",
        "branch": "Clinic",
        "examination": "Examination",
        "code": "Booking code",
        "status": "Status",
        "status_waiting": "Waiting for your confirmation",
        "status_confirmed": "Confirmed",
        "status_cancelled": "Cancelled",
        "status_completed": "Completed",
        "status_started": "In progress",
        "confirm_button": "Confirm my visit",
        "cancel_title": "Cancel this visit",
        "reason": "Why are you cancelling?",
        "reason_patient_request": "I can't come",
        "reason_other": "Another reason",
        "note": "Anything we should know?",
        "note_hint": "Needed if you choose “Another reason”. Up to 500 characters.",
        "cancel_button": "Cancel my visit",
        "reschedule_title": "Move to another time",
        "reschedule_link": "Choose another time",
        "reschedule_intro": "Free times for {examination} at {branch} in the next 14 days.",
        "slot": "New time",
        "reschedule_button": "Move my visit",
        "no_slots": "There are no free times in the next 14 days. Please call the clinic.",
        "back": "Back to my visit",
        "deadline": "You can cancel or move this visit online until {deadline}.",
        "too_late": "It is too close to your visit to cancel or move it online.",
        "checked_in": "You are checked in for this visit, so it can no longer be changed online.",
        "cancelled": "This visit is cancelled.",
        "completed": "This visit has taken place. Thank you for coming!",
        "started": "This visit has started.",
        "call": "Please call the clinic:",
        "call_no_phone": "Please contact the clinic.",
        "done_confirmed": "Thank you! Your visit is confirmed. We are sending you the check-in QR code.",
        "done_already_confirmed": "Your visit was already confirmed.",
        "done_cancelled": "Your visit is cancelled. Thank you for letting us know.",
        "done_rescheduled": "Your visit has been moved. Your new booking code is {code}.",
        "checkin_title": "Check-in",
        "checkin_text": "Show this QR code at the front desk when you arrive, or tell them your booking code.",
        "checkin_alt": "Check-in QR code for booking {code}",
        "gone_title": "This link is not valid any more",
        "gone_text": (
            "The link may have expired, or the visit was changed. Please use the latest message from the clinic, "
            "or contact the clinic."
        ),
        "csrf_failed": "This page has expired. Please reload it and try again.",
        "rate_limited": "Too many requests from your connection. Please wait a few minutes and try again.",
        "error_title": "That did not work",
        "slot_taken": "That time has just been taken. Please choose another time.",
        "slot_unavailable": "That time can no longer be booked. Please choose another time.",
        "invalid_slot": "Please choose one of the free times.",
        "note_required": "Please tell us why you are cancelling.",
        "invalid_reason": "Please choose why you are cancelling.",
        "not_waiting": "This visit can no longer be confirmed.",
        "generic": "We could not change your visit.",
        "switch": "Bahasa Indonesia",
    },
    "id": {
        "title": "Kunjungan Anda",
        "intro": "Mohon periksa kunjungan Anda dan beri tahu kami apakah Anda akan datang.",
        "patient": "Pasien",
        "date": "Tanggal",
        "time": "Jam",
        "doctor": "Dokter",
        "branch": "Klinik",
        "examination": "Pemeriksaan",
        "code": "Kode booking",
        "status": "Status",
        "status_waiting": "Menunggu konfirmasi Anda",
        "status_confirmed": "Dikonfirmasi",
        "status_cancelled": "Dibatalkan",
        "status_completed": "Selesai",
        "status_started": "Sedang berlangsung",
        "confirm_button": "Konfirmasi kunjungan saya",
        "cancel_title": "Batalkan kunjungan ini",
        "reason": "Mengapa Anda membatalkan?",
        "reason_patient_request": "Saya tidak bisa datang",
        "reason_other": "Alasan lain",
        "note": "Ada yang perlu kami ketahui?",
        "note_hint": "Wajib diisi jika memilih “Alasan lain”. Maksimal 500 karakter.",
        "cancel_button": "Batalkan kunjungan saya",
        "reschedule_title": "Pindah ke waktu lain",
        "reschedule_link": "Pilih waktu lain",
        "reschedule_intro": "Waktu kosong untuk {examination} di {branch} dalam 14 hari ke depan.",
        "slot": "Waktu baru",
        "reschedule_button": "Pindahkan kunjungan saya",
        "no_slots": "Tidak ada waktu kosong dalam 14 hari ke depan. Silakan hubungi klinik.",
        "back": "Kembali ke kunjungan saya",
        "deadline": "Anda dapat membatalkan atau memindahkan kunjungan ini secara online sampai {deadline}.",
        "too_late": "Kunjungan Anda sudah terlalu dekat untuk dibatalkan atau dipindahkan secara online.",
        "checked_in": "Anda sudah check-in untuk kunjungan ini, jadi tidak dapat diubah secara online.",
        "cancelled": "Kunjungan ini dibatalkan.",
        "completed": "Kunjungan ini sudah selesai. Terima kasih atas kedatangan Anda!",
        "started": "Kunjungan ini sedang berlangsung.",
        "call": "Silakan hubungi klinik:",
        "call_no_phone": "Silakan hubungi klinik.",
        "done_confirmed": "Terima kasih! Kunjungan Anda sudah dikonfirmasi. Kami mengirimkan kode QR check-in Anda.",
        "done_already_confirmed": "Kunjungan Anda sudah dikonfirmasi sebelumnya.",
        "done_cancelled": "Kunjungan Anda sudah dibatalkan. Terima kasih telah memberi tahu kami.",
        "done_rescheduled": "Kunjungan Anda sudah dipindahkan. Kode booking baru Anda {code}.",
        "checkin_title": "Check-in",
        "checkin_text": "Tunjukkan kode QR ini di meja depan saat Anda datang, atau sebutkan kode booking Anda.",
        "checkin_alt": "Kode QR check-in untuk booking {code}",
        "gone_title": "Tautan ini sudah tidak berlaku",
        "gone_text": (
            "Tautan ini mungkin sudah kedaluwarsa, atau kunjungannya sudah berubah. Gunakan pesan terbaru dari "
            "klinik, atau hubungi klinik."
        ),
        "csrf_failed": "Halaman ini sudah kedaluwarsa. Muat ulang halaman lalu coba lagi.",
        "rate_limited": "Terlalu banyak permintaan dari koneksi Anda. Tunggu beberapa menit lalu coba lagi.",
        "error_title": "Tidak berhasil",
        "slot_taken": "Waktu itu baru saja diambil orang lain. Silakan pilih waktu lain.",
        "slot_unavailable": "Waktu itu tidak dapat dipesan lagi. Silakan pilih waktu lain.",
        "invalid_slot": "Silakan pilih salah satu waktu yang kosong.",
        "note_required": "Mohon tuliskan alasan pembatalan Anda.",
        "invalid_reason": "Silakan pilih alasan pembatalan.",
        "not_waiting": "Kunjungan ini tidak dapat dikonfirmasi lagi.",
        "generic": "Kami tidak dapat mengubah kunjungan Anda.",
        "switch": "English",
    },
}
#: Refusals the page explains in the patient's words; anything else is "generic" (with the clinic's phone).
ERRORS = frozenset(
    {
        "too_late",
        "checked_in",
        "cancelled",
        "completed",
        "started",
        "slot_taken",
        "slot_unavailable",
        "invalid_slot",
        "note_required",
        "invalid_reason",
        "not_waiting",
    }
)


# --- small pieces


def _chosen_language(request: web.Request, form: dict[str, str] | None = None) -> str | None:
    chosen = (form or {}).get("lang") or request.query.get("lang")
    return chosen if chosen in LANGUAGES else None


def _private(response: web.StreamResponse) -> web.StreamResponse:
    # The URL is the patient's key: never cached, never sent on as a referrer, never framed by another site.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _message_page(request: web.Request, lang: str, status: int, code: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "code": code, "message": TEXTS[lang][code], "lang": lang},
        status=status,
    )  # fmt: skip
    return _private(response)


def _gone(request: web.Request, lang: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "public/confirm_gone.html", request, {"lang": lang, "t": TEXTS[lang]}, status=404
    )
    return _private(response)


async def _limited(request: web.Request, key: str, count: int) -> float:
    """Seconds until the limit has room (0: go ahead). With Redis away the patient's request is taken uncounted:
    the link is signed, and confirming or moving a visit must not fail because of an outage."""
    app = request.app
    limit = Limit(f"confirm:{key}:ip:{limit_address(request)}", count, WINDOW)
    try:
        return await RateLimiter(app[REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX).try_acquire([limit])
    except RedisError:
        log.warning("the confirmation page's rate limit is not counted: Redis is unreachable")
        return 0.0


def _too_many(request: web.Request, lang: str, wait: float) -> web.StreamResponse:
    response = _message_page(request, lang, 429, "rate_limited")
    response.headers["Retry-After"] = retry_after(wait)
    return response


# --- CSRF: signed with the server secret, bound to this link's token (a token from another link does not fit)


def _csrf_serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=CSRF_SALT)


def _link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def csrf_token(secret: str, token: str) -> str:
    """The CSRF token the page's forms carry for the link ``token``."""
    return str(_csrf_serializer(secret).dumps(_link_digest(token)))


def _csrf_ok(request: web.Request, token: str, submitted: object) -> bool:
    if not isinstance(submitted, str) or not submitted or len(submitted) > 200:
        return False
    try:
        signed = _csrf_serializer(request.app[SETTINGS].SECRET_KEY).loads(submitted, max_age=CSRF_MAX_AGE)
    except BadSignature:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed, _link_digest(token))


# --- the page


def _visit(view: confirmation.PageView, lang: str) -> dict[str, Any]:
    record = view.record
    zone = ZoneInfo(record.branch.tz)
    starts = record.session.starts_at.astimezone(zone)
    status = record.session.status
    if status == "waiting":
        state = "confirmed" if view.choices.confirmed else "waiting"
    else:
        state = {"open": "started"}.get(status, status)
    return {
        "patient": view.masked_name,
        "date": format_date(starts.date(), "EEEE, d MMMM y", locale=lang),
        "time": format_time(starts, "HH:mm", locale=lang),
        "tz": starts.tzname() or record.branch.tz,
        "doctor": record.doctor.name,
        "branch": record.branch.name,
        "address": record.branch.address,
        "phone": record.branch.phone,
        "examinations": [e.name for e in record.examinations],
        "code": record.session.booking_code,
        "state": state,
        "deadline": format_datetime(view.deadline.astimezone(zone), "EEEE d MMMM, HH:mm", locale=lang),
    }


def _slots(options: list[confirmation.SlotOption], tz: str, lang: str) -> list[dict[str, Any]]:
    """Free times grouped by the branch's local day, for one ``<select>`` with an ``<optgroup>`` per day."""
    zone = ZoneInfo(tz)
    days: dict[str, list[dict[str, str]]] = {}
    for option in options:
        local = option.start.astimezone(zone)
        day = format_date(local.date(), "EEEE, d MMMM", locale=lang)
        days.setdefault(day, []).append(
            {
                "value": f"{option.start.astimezone(UTC).isoformat()}|{option.doctor_id}",
                # The day again: a closed <select> shows only the chosen option, not its group.
                "label": " · ".join(
                    (
                        format_date(local.date(), "EEE d MMM", locale=lang),
                        format_time(local, "HH:mm", locale=lang),
                        option.doctor_name,
                    )
                ),
            }
        )
    return [{"day": day, "options": items} for day, items in days.items()]


async def _render(
    request: web.Request,
    token: str,
    claim: visit_link.LinkClaim,
    *,
    chosen_lang: str | None,
    reschedule: bool = False,
    notice: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    async with request.app[SESSIONMAKER]() as db:
        try:
            view = await confirmation.page_view(db, claim)
        except NotFound:
            return _gone(request, chosen_lang or settings.DEFAULT_LANGUAGE)
        lang = chosen_lang or (view.record.patient.language if view.record.patient.language in LANGUAGES else None)
        lang = lang or settings.DEFAULT_LANGUAGE
        slots: list[dict[str, Any]] | None = None
        if reschedule and view.choices.can_change:
            try:
                options = await confirmation.reschedule_options(db, claim)
            except ServiceError as exc:
                error = error or exc.code
                options = []
            slots = _slots(options, view.record.branch.tz, lang)
    texts = TEXTS[lang]
    visit = _visit(view, lang)
    if notice is not None and not _notice_fits(notice, visit["state"]):
        notice = None  # a ?done= that does not match the visit says nothing
    context = {
        "lang": lang,
        "other_lang": "id" if lang == "en" else "en",
        "t": texts,
        "token": token,
        "visit": visit,
        "choices": view.choices,
        "csrf_token": csrf_token(settings.SECRET_KEY, token),
        "reasons": PAGE_CANCEL_REASONS,
        "notice": texts[f"done_{notice}"].format(code=visit["code"]) if notice else None,
        "error": texts[error if error in ERRORS else "generic"] if error else None,
        "values": values or {},
        "slots": slots,
        "qr": visit_messages.checkin_qr_svg(visit["code"]) if visit["state"] == "confirmed" else None,
    }
    template = "public/confirm_reschedule.html" if slots is not None else "public/confirm.html"
    return _private(aiohttp_jinja2.render_template(template, request, context, status=status))


def _notice_fits(notice: str, state: str) -> bool:
    wanted = {"confirmed": "confirmed", "already_confirmed": "confirmed", "cancelled": "cancelled"}
    return notice in NOTICES and wanted.get(notice, state) == state


async def show(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    chosen = _chosen_language(request)
    if (wait := await _limited(request, "view", VIEWS_PER_WINDOW)) > 0:
        return _too_many(request, chosen or settings.DEFAULT_LANGUAGE, wait)
    token = request.match_info["token"]
    claim = visit_link.read_link(settings.SECRET_KEY, token)
    if claim is None:
        return _gone(request, chosen or settings.DEFAULT_LANGUAGE)
    return await _render(
        request,
        token,
        claim,
        chosen_lang=chosen,
        reschedule=request.query.get("view") == "reschedule",
        notice=request.query.get("done"),
    )


def _parse_slot(value: str) -> tuple[datetime, int] | None:
    start_text, _, doctor_text = value.partition("|")
    try:
        start = datetime.fromisoformat(start_text)
    except ValueError:
        return None
    if start.tzinfo is None or not doctor_text.isdigit() or len(doctor_text) > 18:
        return None
    return start, int(doctor_text)


async def act(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    form = await posted_form(request)
    chosen = _chosen_language(request, form)
    fallback = chosen or settings.DEFAULT_LANGUAGE
    if (wait := await _limited(request, "post", POSTS_PER_WINDOW)) > 0:
        return _too_many(request, fallback, wait)
    token = request.match_info["token"]
    claim = visit_link.read_link(settings.SECRET_KEY, token)
    if claim is None:
        return _gone(request, fallback)
    if not _csrf_ok(request, token, form.get("csrf_token")):
        return _message_page(request, fallback, 403, "csrf_failed")
    action = form.get("action")
    if action not in ("confirm", "cancel", "reschedule"):
        return _message_page(request, fallback, 400, "generic")
    slot = _parse_slot(form.get("slot", "")) if action == "reschedule" else None
    if action == "reschedule" and slot is None:
        return await _render(
            request, token, claim, chosen_lang=chosen, reschedule=True, error="invalid_slot", status=422
        )
    target, notice, outbox_ids = token, "", []
    now = datetime.now(UTC)
    try:
        async with app[SESSIONMAKER]() as db, db.begin():
            if action == "confirm":
                done = await confirmation.confirm_by_link(
                    db, claim, now=now, default_language=settings.DEFAULT_LANGUAGE
                )
                notice, outbox_ids = ("already_confirmed" if done.already else "confirmed"), done.outbox_ids
            elif action == "cancel":
                cancelled = await confirmation.cancel_by_link(
                    db, claim, reason=form.get("reason", ""), note=form.get("note", "")[:2000], now=now
                )
                notice = "cancelled"
                outbox_ids = await followups.run(
                    db, cancelled.follow_ups, now=now, default_language=settings.DEFAULT_LANGUAGE
                )
            else:
                assert slot is not None
                moved = await confirmation.reschedule_by_link(
                    db, claim, start=slot[0], doctor_id=slot[1], secret=settings.SECRET_KEY, now=now,
                    default_language=settings.DEFAULT_LANGUAGE,
                )  # fmt: skip
                target, notice, outbox_ids = moved.token, "rescheduled", moved.outbox_ids
                outbox_ids += await followups.run(
                    db, moved.follow_ups, now=now, default_language=settings.DEFAULT_LANGUAGE
                )
    except NotFound:
        return _gone(request, fallback)
    except ServiceError as exc:
        return await _render(
            request,
            token,
            claim,
            chosen_lang=chosen,
            reschedule=action == "reschedule",
            error=exc.code,
            values={k: form.get(k, "") for k in ("reason", "note")},
            status=exc.status,
        )
    try:
        await jobs.deliver(app, outbox_ids)
    except (RedisError, OSError):  # committed: the sweep sends the rows once Redis is back
        log.warning("could not queue delivery of outbox rows %s; the sweep will", outbox_ids)
    query = f"done={notice}" + (f"&lang={chosen}" if chosen else "")
    raise web.HTTPSeeOther(
        f"/c/{target}?{query}", headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/c/{token}", show)
    app.router.add_post("/c/{token}", act)
