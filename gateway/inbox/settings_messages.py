"""Settings: the words of every message patients receive, per language, with a preview and "reset to default".

The standard texts are the files under templates/messages/<lang>/; the clinic's own text is stored in the clinic
settings and used by every outbound message from then on (see booking_core/services/messages.py). A text that does
not compile, uses a value the message does not have, or fails with sample values is refused and nothing is saved.
"""

from __future__ import annotations

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.domain.dialog import LANGUAGES
from booking_core.services import message_texts, messages
from booking_core.services.errors import Invalid, NotFound
from gateway.inbox.settings_common import settings_page
from gateway.inbox.web import MANAGERS, back, form_of, staff_page
from gateway.keys import SESSIONMAKER

TEXTS = "/inbox/settings/messages"
HINT_LINE = '{% include lang ~ "/_hint.txt" %}'
LANGUAGE_NAMES = {"en": "English", "id": "Bahasa Indonesia"}
#: What each message is for, in the clinic's words (the rest get their name, readable).
ABOUT = {
    "welcome": "Greeting when a patient first writes",
    "menu": "The main menu question",
    "help": "What the assistant can do",
    "booked": "A booking made in chat",
    "booking_received": "A booking request received (staff confirm it)",
    "confirmation": "Asks the patient to confirm a visit, with the confirmation link",
    "confirmation_confirmed": "Thanks after the patient confirmed",
    "checkin_qr": "Sent with the check-in QR code",
    "reminder": "Visit reminder (see Reminders for when)",
    "reminder_time": "The visit time inside WhatsApp template reminders",
    "lead_accepted": "Staff accepted a request",
    "lead_rejected": "Staff could not take a request",
    "cancelled": "A visit was cancelled",
    "rescheduled": "A visit was moved",
    "queue_position": "Place in the queue",
    "queue_soon": "Almost your turn",
    "thank_you": "Thanks after a visit, asking for a rating",
    "cancelled_by_clinic": "The clinic cancelled a visit (the patient is told why and how to book again)",
    "rating_thanks": "Thanks for the rating",
    "waitlist_offer": "A waiting-list slot came free",
    "waitlist_booked": "A waiting-list slot was taken by this patient",
    "waitlist_gone": "The waiting-list slot went to someone else",
    "handoff": "A person from the clinic takes over the chat",
    "closed": "Outside opening hours",
}


def about(name: str) -> str:
    if name in ABOUT:
        return ABOUT[name]
    readable = name.replace("_", " ")
    return f"Chat hint: {readable[5:]}" if name.startswith("hint_") else readable.capitalize()


def gist(text: message_texts.MessageText) -> str:
    """The start of a message as patients read it (sample values), for the list."""
    try:
        shown = messages.preview(text.lang, text.name, text.text)
    except Invalid:
        shown = text.text.replace(HINT_LINE, "")
    words = " ".join(shown.split())
    return words if len(words) <= 90 else words[:89].rstrip() + "…"


def _lang(raw: str | None) -> str:
    if raw is None or raw == "":
        return LANGUAGES[0]
    if raw not in LANGUAGES:
        raise NotFound("not_found", "There is no such language.")
    return raw


@staff_page(MANAGERS)
async def text_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    lang = _lang(request.query.get("lang"))
    async with request.app[SESSIONMAKER]() as db:
        texts = await message_texts.message_texts(db, lang, actor=actor)
    context = {
        "text_lang": lang,
        "languages": LANGUAGE_NAMES,
        "texts": sorted(texts, key=lambda t: (t.name.startswith("hint_"), t.name not in ABOUT, t.name)),
        "about": about,
        "gist": gist,
    }
    return settings_page(request, actor, "inbox/settings_messages.html", context, title="Message texts")


async def _editor(
    request: web.Request,
    actor: Actor,
    lang: str,
    name: str,
    *,
    draft: str | None = None,
    error: str = "",
    status: int = 200,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        text = await message_texts.message_text(db, lang, name, actor=actor)
    shown = text.text if draft is None else draft
    preview, preview_error = "", error
    if not error:
        try:
            preview = messages.preview(lang, name, shown)
        except Invalid as exc:  # a stored text that no longer fits (or an odd draft): say so, do not fail
            preview_error = exc.message
    context = {
        "text_lang": lang,
        "language_name": LANGUAGE_NAMES.get(lang, lang),
        "message": text,
        "about": about(name),
        "draft": shown,
        "preview": preview,
        "error": preview_error,
        "warnings": messages.override_warnings(lang, name, shown) if not preview_error else [],
        "placeholders": [f"{{{{ {v} }}}}" for v in text.variables if v not in ("lang", "hint")],
        "samples": messages.sample_values(lang, name),
        "is_draft": draft is not None,
    }
    return settings_page(
        request, actor, "inbox/settings_message.html", context, title=f"Message: {name}", status=status
    )


def _names(request: web.Request) -> tuple[str, str]:
    lang, name = request.match_info["lang"], request.match_info["name"]
    messages.default_text(lang, name)  # 404 for an unknown language or message
    return lang, name


@staff_page(MANAGERS)
async def text_editor(request: web.Request, actor: Actor) -> web.StreamResponse:
    lang, name = _names(request)
    return await _editor(request, actor, lang, name)


@staff_page(MANAGERS, refused_to=TEXTS)
async def save_text(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Preview (nothing saved) or save the clinic's text; a refused text comes back with the reason."""
    lang, name = _names(request)
    form = await form_of(request)
    draft = form.get("text", "")
    if form.get("action") == "preview":
        return await _editor(request, actor, lang, name, draft=draft)
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            changed = await message_texts.save_message_text(db, lang, name, draft, actor=actor)
    except Invalid as exc:
        return await _editor(request, actor, lang, name, draft=draft, error=exc.message, status=422)
    messages.forget_overrides()  # this process sends the new text from its next message on
    notice = "Saved: the next messages use this text." if changed else "Nothing changed."
    return back(request, f"{TEXTS}/{lang}/{name}", notice=notice)


@staff_page(MANAGERS, refused_to=TEXTS)
async def reset_text(request: web.Request, actor: Actor) -> web.StreamResponse:
    lang, name = _names(request)
    async with request.app[SESSIONMAKER]() as db, db.begin():
        changed = await message_texts.reset_message_text(db, lang, name, actor=actor)
    messages.forget_overrides()
    notice = "Back to the standard text." if changed else "This message already uses the standard text."
    return back(request, f"{TEXTS}/{lang}/{name}", notice=notice)


def setup(app: web.Application) -> None:
    app.router.add_get(TEXTS, text_list)
    app.router.add_get(TEXTS + r"/{lang:[a-z]{2}}/{name:[a-z_]{1,60}}", text_editor)
    app.router.add_post(TEXTS + r"/{lang:[a-z]{2}}/{name:[a-z_]{1,60}}", save_text)
    app.router.add_post(TEXTS + r"/{lang:[a-z]{2}}/{name:[a-z_]{1,60}}/reset", reset_text)
