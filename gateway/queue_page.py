"""The public queue tracker, ``GET,POST /queue``: a patient's token, place and expected time, in English or Indonesian.

The patient types their phone number and booking code. Protection, in the order a POST meets it: a per-IP rate
limit in Redis (429 page), a signed CSRF token bound to an HttpOnly cookie scoped to /queue (403 page). An unknown
number and a wrong code get the same answer. A match redirects to ``/queue?t=<signed link>`` (valid for a day),
which the patient can keep open: it refreshes itself and is not rate-limited, so checking again costs no guess.
What shows of the patient follows the clinic's privacy setting (``queue_privacy``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from babel.dates import format_date, format_time
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError

from booking_core.domain.codes import BOOKING_CODE_LENGTH, normalize_code
from booking_core.domain.phones import to_e164
from booking_core.services import queue as queue_service
from gateway.booking_form import language
from gateway.csrf import Csrf
from gateway.forms import posted_form
from gateway.keys import REDIS, SESSIONMAKER, SETTINGS
from gateway.limits import limit_address, retry_after
from infra.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

PATH = "/queue"
LINK_SALT = "frontdesk.queue-tracker"
LINK_MAX_AGE = 24 * 3600
LOOKUPS_PER_WINDOW = 10  # typed lookups per client IP ...
LOOKUP_WINDOW = 10 * 60  # ... per ten minutes
REFRESH_SECONDS = 30

CSRF = Csrf(cookie="fd_queue", salt="frontdesk.queue-tracker.csrf", path=PATH)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your place in the queue",
        "intro": "Enter the phone number and booking code from your booking confirmation.",
        "phone": "Phone number",
        "phone_hint": "The number you booked with, for example 0812 3456 7890.",
        "code": "Booking code",
        "code_hint": "8 letters and digits, for example K7MX2PQA.",
        "submit": "Show my place",
        "switch": "Bahasa Indonesia",
        "not_found": "We could not find a visit with this phone number and booking code. Check both and try again.",
        "link_expired": "This link has expired. Enter your phone number and booking code again.",
        "csrf_failed": "This form has expired or was not sent from our page. Please reload the page and try again.",
        "rate_limited": "Too many attempts. Please wait a few minutes and try again.",
        "unavailable": "We cannot look up places in the queue right now. Please try again in a minute.",
        "token": "Your token",
        "position": "Your place",
        "you_are_next": "You are next!",
        "place_of": "Number {position} in line",
        "ahead_one": "1 patient before you",
        "ahead_many": "{ahead} patients before you",
        "eta": "Expected call",
        "eta_value": "about {time} (in about {minutes} min)",
        "eta_now": "any moment now",
        "doctor": "Doctor",
        "name": "Name",
        "branch": "Branch",
        "with_doctor": "It is your turn: you are with the doctor.",
        "not_checked_in": "Your visit on {date} at {time} is not in the queue yet. Check in at the front desk when "
        "you arrive (show your QR code); your place shows here after that.",
        "finished": "This visit is finished. Thank you for coming!",
        "cancelled": "This visit was cancelled.",
        "refreshes": "This page updates itself every {seconds} seconds.",
        "another": "Check another visit",
    },
    "id": {
        "title": "Posisi Anda dalam antrean",
        "intro": "Masukkan nomor telepon dan kode booking dari konfirmasi booking Anda.",
        "phone": "Nomor telepon",
        "phone_hint": "Nomor yang Anda pakai saat booking, contoh 0812 3456 7890.",
        "code": "Kode booking",
        "code_hint": "8 huruf dan angka, contoh K7MX2PQA.",
        "submit": "Lihat posisi saya",
        "switch": "English",
        "not_found": "Kami tidak menemukan kunjungan dengan nomor telepon dan kode booking ini. Periksa keduanya lalu "
        "coba lagi.",
        "link_expired": "Tautan ini sudah kedaluwarsa. Masukkan lagi nomor telepon dan kode booking Anda.",
        "csrf_failed": (
            "Formulir ini kedaluwarsa atau tidak dikirim dari halaman kami. Muat ulang halaman lalu coba lagi."
        ),
        "rate_limited": "Terlalu banyak percobaan. Tunggu beberapa menit lalu coba lagi.",
        "unavailable": "Kami belum dapat mencari posisi antrean saat ini. Silakan coba lagi sebentar lagi.",
        "token": "Nomor antrean Anda",
        "position": "Posisi Anda",
        "you_are_next": "Anda berikutnya!",
        "place_of": "Urutan ke-{position}",
        "ahead_one": "1 pasien sebelum Anda",
        "ahead_many": "{ahead} pasien sebelum Anda",
        "eta": "Perkiraan dipanggil",
        "eta_value": "sekitar pukul {time} (sekitar {minutes} menit lagi)",
        "eta_now": "sebentar lagi",
        "doctor": "Dokter",
        "name": "Nama",
        "branch": "Cabang",
        "with_doctor": "Giliran Anda: Anda sedang bersama dokter.",
        "not_checked_in": "Kunjungan Anda pada {date} pukul {time} belum masuk antrean. Lakukan check-in di meja "
        "depan saat Anda tiba (tunjukkan kode QR Anda); posisi Anda akan tampil di sini setelah itu.",
        "finished": "Kunjungan ini sudah selesai. Terima kasih atas kedatangan Anda!",
        "cancelled": "Kunjungan ini dibatalkan.",
        "refreshes": "Halaman ini diperbarui otomatis setiap {seconds} detik.",
        "another": "Cek kunjungan lain",
    },
}


def _links(request: web.Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app[SETTINGS].SECRET_KEY, salt=LINK_SALT)


def _private(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _other(lang: str) -> str:
    return "id" if lang == "en" else "en"


def _form(
    request: web.Request, lang: str, *, phone: str = "", code: str = "", error: str = "", status: int = 200
) -> web.StreamResponse:
    token, new_cookie = CSRF.token(request)
    context = {
        "lang": lang,
        "other_lang": _other(lang),
        "t": TEXTS[lang],
        "csrf_token": token,
        "phone": phone[:40],
        "code": code[:20],
        "error": TEXTS[lang][error] if error else "",
        "place": None,
        "refresh": None,
        "link": "",
    }
    response = aiohttp_jinja2.render_template("public/queue.html", request, context, status=status)
    if new_cookie is not None:
        CSRF.set_cookie(request, response, new_cookie)
    return _private(response)


def _view(place: queue_service.PublicPlace, lang: str) -> dict[str, Any]:
    texts = TEXTS[lang]
    zone = ZoneInfo(place.tz)
    starts = place.starts_at.astimezone(zone)
    view: dict[str, Any] = {
        "state": place.state,
        "token": place.token,
        "patient": place.patient,
        "doctor": place.doctor_name,
        "branch": place.branch_name,
        "message": "",
        "position": "",
        "next": False,
        "ahead": "",
        "eta": "",
    }
    if place.state == "not_checked_in":
        when = {"date": format_date(starts.date(), "EEEE, d MMMM y", locale=lang), "time": format_time(starts, "HH:mm")}
        view["message"] = texts["not_checked_in"].format(**when)
    elif place.state in ("with_doctor", "finished", "cancelled"):
        view["message"] = texts[place.state]
    if place.state == "waiting" and place.position is not None:
        view["next"] = place.position == 1
        view["position"] = (
            texts["you_are_next"] if place.position == 1 else texts["place_of"].format(position=place.position)
        )
        ahead = place.ahead or 0
        view["ahead"] = texts["ahead_one"] if ahead == 1 else texts["ahead_many"].format(ahead=ahead) if ahead else ""
        if place.eta is not None and place.wait_min is not None:
            view["eta"] = (
                texts["eta_value"].format(time=format_time(place.eta.astimezone(zone), "HH:mm"), minutes=place.wait_min)
                if place.wait_min > 0
                else texts["eta_now"]
            )
    return view


async def show(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    link = request.query.get("t")
    if not link:
        return _form(request, lang)
    try:
        claim = _links(request).loads(link, max_age=LINK_MAX_AGE) if len(link) <= 400 else None
    except BadSignature:
        claim = None
    if not (isinstance(claim, list) and len(claim) == 2 and isinstance(claim[0], int) and isinstance(claim[1], str)):
        return _form(request, lang, error="link_expired", status=404)
    async with request.app[SESSIONMAKER]() as db:
        place = await queue_service.public_place(db, claim[0], claim[1], now=datetime.now(UTC))
    if place is None:
        return _form(request, lang, error="link_expired", status=404)
    texts = TEXTS[lang]
    context = {
        "lang": lang,
        "other_lang": _other(lang),
        "t": texts,
        "place": _view(place, lang),
        "refresh": REFRESH_SECONDS if place.state in ("waiting", "not_checked_in") else None,
        "refreshes": texts["refreshes"].format(seconds=REFRESH_SECONDS),
        "link": link,
    }
    return _private(aiohttp_jinja2.render_template("public/queue.html", request, context))


async def look_up(request: web.Request) -> web.StreamResponse:
    app = request.app
    form = await posted_form(request)
    lang = language(request, form)
    limit = Limit(f"queue:ip:{limit_address(request)}", LOOKUPS_PER_WINDOW, LOOKUP_WINDOW)
    try:
        wait = await RateLimiter(app[REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX).try_acquire([limit])
    except RedisError:
        # Without the limit a lookup is an unthrottled guess at a phone and booking code: refuse it for now.
        log.warning("queue lookups are refused: Redis is unreachable, so guesses could not be limited")
        response = _form(request, lang, error="unavailable", status=503)
        response.headers["Retry-After"] = "60"
        return response
    if wait > 0:
        response = _form(request, lang, error="rate_limited", status=429)
        response.headers["Retry-After"] = retry_after(wait)
        return response
    if not CSRF.ok(request, form.get("csrf_token")):
        return _form(request, lang, error="csrf_failed", status=403)
    phone, code = form.get("phone", "")[:40], form.get("code", "")[:20]
    async with app[SESSIONMAKER]() as db:
        session_id = await queue_service.find_for_tracker(db, to_e164(phone), code)
    booking_code = normalize_code(code, length=BOOKING_CODE_LENGTH)
    if session_id is None or booking_code is None:  # one answer for a wrong number and a wrong code
        return _form(request, lang, phone=phone, code=code, error="not_found")
    link = _links(request).dumps([session_id, booking_code])
    raise web.HTTPSeeOther(f"{PATH}?{urlencode({'t': link, 'lang': lang})}")


def setup(app: web.Application) -> None:
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, look_up)
