"""The public booking form, ``GET,POST /book``: a lead from anyone with a browser, without an account.

Protection, in the order a POST meets it: a per-IP rate limit in Redis (429 page), a signed CSRF token bound to an
HttpOnly SameSite=Lax cookie (403 page, nothing written), a honeypot field (filled: we pretend success and store
nothing). Then the form is checked; errors re-render it with the values kept and each field's error linked to it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from redis.exceptions import RedisError

from booking_core.services import webform
from gateway.csrf import Csrf
from gateway.forms import posted_form
from gateway.keys import REDIS, SESSIONMAKER, SETTINGS
from gateway.limits import limit_address, retry_after
from infra.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

CSRF_COOKIE = "fd_book"
CSRF_SALT = "frontdesk.booking-form.csrf"
CSRF_MAX_AGE = 12 * 3600  # a form left open longer than this asks to be reloaded
HONEYPOT = "website"  # humans never see it; form-filling bots fill it
POSTS_PER_WINDOW = 5  # posts per client IP ...
POST_WINDOW = 10 * 60  # ... per ten minutes
LANGUAGES = ("en", "id")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Book an appointment",
        "intro": "Tell us what you need and when suits you. We will contact you to confirm.",
        "name": "Full name",
        "phone": "Phone (WhatsApp)",
        "phone_hint": "For example 0812 3456 7890",
        "email": "Email",
        "branch": "Branch",
        "examination": "Examination",
        "preferred_date": "Preferred date",
        "preferred_time": "Preferred time",
        "note": "Anything we should know?",
        "note_hint": "Up to 1,000 characters.",
        "optional": "optional",
        "choose": "Choose…",
        "submit": "Send request",
        "honeypot": "Leave this field empty",
        "errors_title": "Please check the form",
        "error_prefix": "Error:",
        "thanks_title": "Thank you",
        "thanks_named": "Thank you, {name}. We have your request.",
        "thanks_anonymous": "Thank you. We have your request.",
        "thanks_next": "Our staff will contact you soon to confirm the time.",
        "back": "Back to the form",
        "switch": "Bahasa Indonesia",
        "csrf_failed": "This form has expired or was not sent from our page. Please reload the form and try again.",
        "rate_limited": "You have sent the form too many times. Please wait a few minutes and try again.",
        "required": "This field is required.",
        "too_long": "This is too long.",
        "invalid_phone": "Enter a valid phone number, for example 0812 3456 7890.",
        "invalid_email": "Enter a valid email address, for example name@example.com.",
        "invalid_choice": "Choose one of the options.",
        "not_at_branch": "This examination is not offered at the chosen branch.",
        "invalid_date": "Enter a valid date.",
        "past_date": "Choose today or a later date.",
        "too_far": "Choose a date within the next year.",
        "date_needed": "Choose a date for the time you picked.",
        "invalid_time": "Enter a valid time.",
        "past_time": "That time has passed today; choose a later time.",
    },
    "id": {
        "title": "Buat janji temu",
        "intro": "Beri tahu kami kebutuhan Anda dan waktu yang cocok. Kami akan menghubungi Anda untuk konfirmasi.",
        "name": "Nama lengkap",
        "phone": "Telepon (WhatsApp)",
        "phone_hint": "Contoh 0812 3456 7890",
        "email": "Email",
        "branch": "Cabang",
        "examination": "Pemeriksaan",
        "preferred_date": "Tanggal yang diinginkan",
        "preferred_time": "Jam yang diinginkan",
        "note": "Ada yang perlu kami ketahui?",
        "note_hint": "Maksimal 1.000 karakter.",
        "optional": "opsional",
        "choose": "Pilih…",
        "submit": "Kirim permintaan",
        "honeypot": "Kosongkan kolom ini",
        "errors_title": "Mohon periksa formulir",
        "error_prefix": "Kesalahan:",
        "thanks_title": "Terima kasih",
        "thanks_named": "Terima kasih, {name}. Permintaan Anda sudah kami terima.",
        "thanks_anonymous": "Terima kasih. Permintaan Anda sudah kami terima.",
        "thanks_next": "Staf kami akan segera menghubungi Anda untuk mengonfirmasi waktunya.",
        "back": "Kembali ke formulir",
        "switch": "English",
        "csrf_failed": (
            "Formulir ini kedaluwarsa atau tidak dikirim dari halaman kami. Muat ulang formulir lalu coba lagi."
        ),
        "rate_limited": "Anda sudah terlalu sering mengirim formulir. Tunggu beberapa menit lalu coba lagi.",
        "required": "Kolom ini wajib diisi.",
        "too_long": "Isian ini terlalu panjang.",
        "invalid_phone": "Masukkan nomor telepon yang valid, contoh 0812 3456 7890.",
        "invalid_email": "Masukkan alamat email yang valid, contoh nama@contoh.com.",
        "invalid_choice": "Pilih salah satu pilihan.",
        "not_at_branch": "Pemeriksaan ini tidak tersedia di cabang yang dipilih.",
        "invalid_date": "Masukkan tanggal yang valid.",
        "past_date": "Pilih hari ini atau tanggal berikutnya.",
        "too_far": "Pilih tanggal dalam satu tahun ke depan.",
        "date_needed": "Pilih tanggal untuk jam yang Anda pilih.",
        "invalid_time": "Masukkan jam yang valid.",
        "past_time": "Jam itu sudah lewat hari ini; pilih jam berikutnya.",
    },
}


def language(request: web.Request, form: dict[str, Any] | None = None) -> str:
    """``?lang=`` (or the form's hidden ``lang``), else the best of Accept-Language, else DEFAULT_LANGUAGE."""
    chosen = (form or {}).get("lang") or request.query.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    best: tuple[float, str] | None = None
    for part in request.headers.get("Accept-Language", "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower().split("-")[0]
        if code not in LANGUAGES:
            continue
        try:
            quality = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, code)
    return best[1] if best else request.app[SETTINGS].DEFAULT_LANGUAGE


# --- CSRF: a random value in an HttpOnly cookie scoped to /book, and the same value signed in the form

CSRF = Csrf(cookie=CSRF_COOKIE, salt=CSRF_SALT, path="/book", max_age=CSRF_MAX_AGE)


# --- pages


def _private(response: web.StreamResponse) -> web.StreamResponse:
    # Forms and thank-you pages carry personal data and one-time tokens: never cached, never restored from history.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _message_page(request: web.Request, lang: str, status: int, code: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "code": code, "message": TEXTS[lang][code], "lang": lang},
        status=status,
    )  # fmt: skip
    return _private(response)


def _render_form(
    request: web.Request,
    setup: webform.FormSetup,
    *,
    lang: str,
    values: dict[str, str],
    errors: dict[str, str],
    submission_id: str,
    status: int = 200,
) -> web.StreamResponse:
    csrf_token, new_cookie = CSRF.token(request)
    branch_names = {b.id: b.name for b in setup.branches}
    texts = TEXTS[lang]
    context = {
        "lang": lang,
        "t": texts,
        "other_lang": "id" if lang == "en" else "en",
        "fields": setup.fields,
        "branches": setup.branches,
        "examinations": [
            {
                "id": e.id,
                "name": e.name,
                "branch_ids": " ".join(str(b) for b in e.branch_ids),
                "branch_names": ", ".join(branch_names[b] for b in e.branch_ids),
            }
            for e in setup.examinations
        ],
        "values": values,
        "errors": {name: texts[code] for name, code in errors.items()},
        "csrf_token": csrf_token,
        "submission_id": submission_id,
        "honeypot": HONEYPOT,
        "today": datetime.now(UTC).date().isoformat(),
        "max_note": webform.MAX_NOTE,
        "max_name": webform.MAX_NAME,
    }
    response = aiohttp_jinja2.render_template("public/book.html", request, context, status=status)
    if new_cookie is not None:
        CSRF.set_cookie(request, response, new_cookie)
    return _private(response)


def _thanks(request: web.Request, lang: str, first_name: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "public/book_thanks.html", request, {"lang": lang, "t": TEXTS[lang], "first_name": first_name}
    )
    return _private(response)


async def _setup(request: web.Request) -> webform.FormSetup:
    async with request.app[SESSIONMAKER]() as db:
        return await webform.form_setup(db)


async def show_form(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    setup = await _setup(request)
    values = {}
    if len(setup.branches) == 1:
        values["branch"] = str(setup.branches[0].id)
    return _render_form(request, setup, lang=lang, values=values, errors={}, submission_id=str(uuid.uuid4()))


def _submission_id(value: object) -> str:
    """The form's own uuid (a double submit carries the same one: one lead); a fresh one if missing or odd."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    return str(uuid.uuid4())


async def _limited(app: web.Application, limit: Limit) -> float:
    """Seconds until the posting limit has room (0: go ahead). With Redis away the visitor's request is taken (the
    limit is not counted): a booking must not be lost to an outage; CSRF and the honeypot still apply."""
    try:
        return await RateLimiter(app[REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX).try_acquire([limit])
    except RedisError:
        log.warning("the booking form's rate limit is not counted: Redis is unreachable")
        return 0.0


async def submit_form(request: web.Request) -> web.StreamResponse:
    app = request.app
    form = await posted_form(request)
    lang = language(request, form)
    limit = Limit(f"book:ip:{limit_address(request)}", POSTS_PER_WINDOW, POST_WINDOW)
    wait = await _limited(app, limit)
    if wait > 0:
        response = _message_page(request, lang, 429, "rate_limited")
        response.headers["Retry-After"] = retry_after(wait)
        return response
    if not CSRF.ok(request, form.get("csrf_token")):
        return _message_page(request, lang, 403, "csrf_failed")
    first_name = (form.get("name") or "").split()[0][:60] if (form.get("name") or "").split() else ""
    if form.get(HONEYPOT):
        return _thanks(request, lang, first_name)  # a bot: let it believe it worked
    setup = await _setup(request)
    submission_id = _submission_id(form.get("submission_id"))
    checked = webform.check(form, setup, now=datetime.now(UTC))
    if checked.request is None:
        values = {name: form.get(name, "") for name in webform.FIELDS}
        return _render_form(
            request, setup, lang=lang, values=values, errors=checked.errors, submission_id=submission_id, status=422
        )
    async with app[SESSIONMAKER]() as db, db.begin():
        await webform.submit(
            db,
            checked.request,
            form=setup,
            submission_id=submission_id,
            language=lang,
            default_language=app[SETTINGS].DEFAULT_LANGUAGE,
        )
    return _thanks(request, lang, checked.request.first_name)


def setup(app: web.Application) -> None:
    app.router.add_get("/book", show_form)
    app.router.add_post("/book", submit_form)
