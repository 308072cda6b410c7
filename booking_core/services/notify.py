"""Telling a patient something: the one path every notice, reminder and chat reply takes to the outbox.

1. **Reach** the patient (:func:`patient_reach`): their most recently used Telegram, WhatsApp or web-chat identity
   (or the channel a lead or offer came from), and the language they speak there.
2. **Render** the message in that language (the caller's ``compose(lang)``, from ``templates/messages/<lang>/``):
   a :class:`Notice` of text, buttons as data, an optional image, and the values of its template.
3. **Plan** it (:func:`write`): a channel-neutral :class:`~booking_core.domain.messages.OutboundMessage` with the
   clinic's approved template for its kind attached, written to the outbox in the caller's transaction. The caller
   (or the sweep) enqueues delivery after commit.

Everything channel-specific happens at send time in the channel's adapter: whether the template is needed at all
(WhatsApp, outside its 24-hour window) and how its values are numbered there, how buttons are shown (Telegram's
inline keyboard, WhatsApp's numbered options), the providers' length limits.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import cast

from booking_core.db.engine import Db
from booking_core.db.queries import reach as queries
from booking_core.db.tables import ChannelIdentity
from booking_core.domain.messages import Button, Channel, Image, OutboundMessage
from booking_core.services import messages, outbox, settings

__all__ = [
    "TEMPLATES_SETTING",
    "TEMPLATE_FIELDS",
    "Chat",
    "Notice",
    "Reach",
    "Told",
    "options_offered",
    "patient_reach",
    "tell",
    "write",
]

#: The variables of each notice's approved template, in the template's order (WhatsApp: {{1}}, {{2}}, …). A clinic
#: registering its templates with the provider writes them with these values in this order. Kinds not listed
#: (chat replies, "it has gone") never go out as a template.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "confirmation": ("name", "code", "link"),  # first name, booking code, confirmation link
    "checkin_qr": ("name", "code", "link"),  # the link is empty
    "thank_you": ("name", "code", "link"),  # the link is empty
    "reminder": ("name", "when", "doctor", "branch", "code"),  # full name; "when" in the patient's language
    "waitlist_offer": ("examination", "when", "doctor", "branch"),
    "queue_position": ("token", "position", "doctor", "eta"),  # eta as HH:MM in the branch's time
    "cancelled_by_clinic": ("text",),  # the whole notice on one line
    "lead_accepted": ("text",),
    "lead_rejected": ("text",),
    "staff_reply": ("text",),
}

#: Clinic setting mapping a notice's kind ("reminder", "confirmation", "queue_position", "waitlist_offer", …) to
#: the approved template (a Twilio Content sid, "HX…") sent instead of the text when WhatsApp allows no free text
#: (the patient last wrote more than 24 hours ago).
TEMPLATES_SETTING = "whatsapp_templates"


@dataclass(frozen=True)
class Chat:
    """Where a message goes: one channel identity of the patient (and its open conversation, if any)."""

    channel: Channel
    recipient: str  # the identity's external id (chat id, E.164 number, visitor id)
    identity_id: int
    conversation_id: int | None

    @classmethod
    def of(cls, identity: ChannelIdentity, conversation_id: int | None) -> Chat:
        return cls(cast(Channel, identity.channel), identity.external_id, identity.id, conversation_id)


@dataclass(frozen=True)
class Reach(Chat):
    """The chat to write to a patient on, with the language to write in."""

    language: str = "en"


@dataclass(frozen=True)
class Notice:
    """One message, already in the patient's language.

    ``template_values`` are the values of the clinic's approved template for the notice's kind, by name (the kind's
    :data:`TEMPLATE_FIELDS` say which and in what order).
    """

    text: str
    buttons: tuple[Button, ...] = ()
    image: Image | None = None
    template_values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Told:
    """A notice planned for ``where``; ``outbox_id`` is None when the same notice (dedupe key) was planned before."""

    where: Reach
    outbox_id: int | None


async def patient_reach(
    db: Db, patient_id: int, *, prefer_channel: str | None = None, default_language: str = "en"
) -> Reach | None:
    """The chat to write to (``prefer_channel`` first, e.g. the lead's), or None: nobody to send to."""
    rows = await queries.identities(db, patient_id)
    if not rows:
        return None
    patient = await queries.patient(db, patient_id)
    chosen = next((r for r in rows if r[0].channel == prefer_channel), rows[0])
    identity, conversation_id, language = chosen
    chat = Chat.of(identity, conversation_id)
    return Reach(
        chat.channel,
        chat.recipient,
        chat.identity_id,
        chat.conversation_id,
        language=language or (patient.language if patient and patient.language else default_language),
    )


async def options_offered(db: Db, identity_id: int, kinds: Collection[str]) -> tuple[str, ...]:
    """The button data of the last message planned for this chat when it is of one of ``kinds`` (else empty): a bare
    "1".."n" the patient types now answers it (WhatsApp shows buttons as numbered options).

    The outbox, not the conversation, is asked: a notice may reach a chat with no open conversation yet (a visit
    booked at the desk, a waitlist offer), and the patient's first reply opens one."""
    latest = await queries.latest_outbox(db, identity_id)
    if latest is None or latest[0] not in kinds:
        return ()
    buttons = latest[1].get("buttons") or []
    return tuple(str(b["data"]) for b in buttons if isinstance(b, dict) and isinstance(b.get("data"), str))


async def tell(
    db: Db,
    patient_id: int,
    kind: str,
    compose: Callable[[str], Notice],
    *,
    dedupe_key: str,
    prefer_channel: str | None = None,
    author: str = "bot",
    default_language: str = "en",
) -> Told | None:
    """Reach the patient, render ``compose(language)`` and plan it as a ``kind`` message, in the caller's
    transaction; None when the patient has no chat to reach them on (nothing is written)."""
    where = await patient_reach(db, patient_id, prefer_channel=prefer_channel, default_language=default_language)
    if where is None:
        return None
    await messages.refresh_overrides(db)
    outbox_id = await write(db, where, kind, compose(where.language), dedupe_key=dedupe_key, author=author)
    return Told(where, outbox_id)


async def write(
    db: Db, to: Chat, kind: str, notice: Notice, *, dedupe_key: str | None, author: str = "bot"
) -> int | None:
    """Plan ``notice`` for the chat ``to`` (an outbox row of ``kind``); None when ``dedupe_key`` was planned before.

    A notice of a kind in :data:`TEMPLATE_FIELDS` gets the clinic's template for ``kind`` (setting
    :data:`TEMPLATES_SETTING`), if there is one, with its values in order; the channel's adapter decides at send
    time whether to use it."""
    fields = TEMPLATE_FIELDS.get(kind, ())
    template = await _template(db, kind) if fields else None
    message = OutboundMessage(
        channel=to.channel,
        recipient=to.recipient,
        text=notice.text,
        buttons=notice.buttons,
        image=notice.image,
        template=template,
        template_fields=tuple((name, notice.template_values[name]) for name in fields) if template else (),
    )
    return await outbox.add(
        db,
        message,
        kind=kind,
        conversation_id=to.conversation_id,
        identity_id=to.identity_id,
        dedupe_key=dedupe_key,
        author=author,
    )


async def _template(db: Db, kind: str) -> str | None:
    configured = await settings.get(db, TEMPLATES_SETTING)
    sid = configured.get(kind) if isinstance(configured, dict) else None
    return sid if isinstance(sid, str) and sid else None
