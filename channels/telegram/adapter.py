"""Telegram through aiogram 3: verify the webhook secret, parse an Update, send with the real ``Bot``.

Everything Telegram-specific stays here: chat ids, ``/start`` deep links, inline keyboards and their 64-byte
callback data, shared contacts, answering callback queries, and what Telegram's error answers mean for a retry.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from aiogram.types.update import UpdateTypeLookupError
from aiohttp import web
from pydantic import ValidationError

from booking_core.domain.text import storable, storable_payload
from channels.base import (
    Button,
    Channel,
    ContactRef,
    DeliveryFailed,
    InboundMessage,
    OutboundMessage,
    RateLimit,
    Refused,
)
from channels.network import may_have_reached
from channels.telegram.client import make_bot

log = logging.getLogger(__name__)

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)

#: Update types we act on; also what ``setWebhook`` asks Telegram for (``allowed_updates``).
HANDLED_UPDATES: Final = ("message", "callback_query")

#: Update types ignored on purpose: answered 200 (so Telegram does not retry) and counted as "ignored".
#: Edits would rewrite what staff already read; channels, groups and membership changes are not patients writing.
IGNORED_UPDATES: Final = frozenset(
    {
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "guest_message",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
        "managed_bot",
        "subscription",
        "stopped_message_generation",
    }
)

#: Message contents that are something to look at rather than text: the dialog answers them politely.
MEDIA_FIELDS: Final = (
    "photo",
    "sticker",
    "voice",
    "video",
    "video_note",
    "audio",
    "document",
    "animation",
    "location",
    "venue",
    "dice",
    "poll",
    "story",
    "paid_media",
)

MAX_CALLBACK_DATA_BYTES: Final = 64  # Telegram's limit for InlineKeyboardButton.callback_data
MAX_CAPTION: Final = 1024  # Telegram's limit for a photo caption
SHORT_LABEL: Final = 16  # buttons whose labels all fit this many characters go two to a row
MAX_NAME: Final = 120  # patients.name is 120 characters; Telegram allows 64 + 64
ACK_TIMEOUT: Final = 5  # seconds for answerCallbackQuery: it must never hold up the webhook for long

_START = re.compile(r"/start(?:@\w+)?(?:\s+(?P<payload>.*))?", re.DOTALL)


class InvalidUpdate(ValueError):
    """The body is JSON but not a Telegram Update (the webhook answers 400 ``invalid_update``)."""


class TelegramAdapter:
    """The Telegram channel: ``verify`` → ``parse`` on the way in, ``send`` (and ``acknowledge``) on the way out."""

    channel: Channel = "telegram"

    def __init__(self, *, token: str, webhook_secret: str, api_url: str) -> None:
        if not webhook_secret:
            # Without the secret anyone could post updates to the webhook in a patient's name.
            raise ValueError("a Telegram webhook secret is required")
        self._secret = webhook_secret.encode()
        self.bot: Bot = make_bot(token, api_url=api_url)

    # --- inbound ---

    async def verify(self, request: web.Request) -> None:
        """Refuse (401) unless the secret token header matches; checked before the body is read."""
        given = request.headers.get(SECRET_HEADER)
        if not given:
            raise Refused(401, "the Telegram secret token header is missing")
        # Bytes, not str: compare_digest refuses non-ASCII strings, and a forged header may hold anything.
        if not secrets.compare_digest(given.encode("utf-8", "surrogateescape"), self._secret):
            raise Refused(401, "the Telegram secret token does not match")

    def parse(self, raw: Any) -> InboundMessage | None:
        """The patient's message in an Update; None for updates ignored on purpose.

        Raises :class:`InvalidUpdate` when ``raw`` is not an Update at all.
        """
        if not isinstance(raw, dict):
            raise InvalidUpdate("a Telegram Update is a JSON object")
        # Nearly every update is a person writing text: read that straight from the JSON, the rest with aiogram.
        plain = _plain_text_message(raw)
        return plain if plain is not None else _parse_update(raw)

    async def acknowledge(self, inbound: InboundMessage) -> None:
        """Stop the spinner on a pressed button (``answerCallbackQuery``); best effort, never raises."""
        if inbound.kind != "button":
            return
        query = inbound.raw.get("callback_query")
        query_id = query.get("id") if isinstance(query, dict) else None
        if not isinstance(query_id, str) or not query_id:
            return
        try:
            await self.bot.answer_callback_query(query_id, request_timeout=ACK_TIMEOUT)
        except (AiogramError, OSError, TimeoutError) as exc:
            # An unanswered query only leaves a spinner for a few seconds; the message itself is safe.
            log.warning("could not answer Telegram callback query %s: %s", query_id, exc)

    # --- outbound ---

    def rate_limits(self, message: OutboundMessage) -> list[RateLimit]:
        """Telegram's published limits: about 30 messages a second per bot, one a second per chat."""
        return [
            RateLimit(f"telegram:bot:{self.bot.id}", 30, 1.0),
            RateLimit(f"telegram:chat:{self.bot.id}:{message.recipient}", 1, 1.0),
        ]

    async def send(self, message: OutboundMessage) -> str:
        """Send text (with an inline keyboard for the buttons) or a photo captioned with the text.

        Returns Telegram's message id. Raises ``ValueError`` before any call when a button cannot be sent
        (callback data longer than 64 bytes), :class:`DeliveryFailed` when Telegram does not take it.
        """
        markup = inline_keyboard(message.buttons)
        chat_id = _chat_id(message.recipient)
        try:
            if message.image is None:
                sent = await self.bot.send_message(chat_id, message.text, reply_markup=markup)
            else:
                photo = BufferedInputFile(message.image.content, filename=message.image.filename)
                if len(message.text) <= MAX_CAPTION:
                    sent = await self.bot.send_photo(chat_id, photo, caption=message.text or None, reply_markup=markup)
                else:
                    # Too long for a caption: the photo first, then the text carrying the buttons.
                    await self.bot.send_photo(chat_id, photo)
                    sent = await self.bot.send_message(chat_id, message.text, reply_markup=markup)
        except (AiogramError, TimeoutError) as exc:
            raise delivery_failure(exc) from exc
        return str(sent.message_id)

    async def close(self) -> None:
        await self.bot.session.close()


# --- parsing ---


def _parse_update(raw: dict[str, Any]) -> InboundMessage | None:
    """:meth:`TelegramAdapter.parse` through aiogram's ``Update`` model (every kind of update)."""
    try:
        update = Update.model_validate(raw)
    except ValidationError as exc:
        raise InvalidUpdate(f"not a Telegram Update: {exc.error_count()} invalid field(s)") from None
    try:
        kind = update.event_type
    except UpdateTypeLookupError:
        _ignored(update, "unknown update type")
        return None
    if kind in IGNORED_UPDATES:
        _ignored(update, kind)
        return None
    try:
        stored = _without_nuls(raw)
    except RecursionError:  # only a forged body nests this deep; Telegram's updates are shallow
        raise InvalidUpdate("the update is nested too deeply") from None
    if update.message is not None:
        return _from_message(update, update.message, stored)
    if update.callback_query is not None:
        return _from_callback(update, update.callback_query, stored)
    _ignored(update, f"{kind} is not handled")
    return None


def _ignored(update: Update, reason: str) -> None:
    log.info("Telegram update %s ignored: %s", update.update_id, reason)


def _from_message(update: Update, message: Message, raw: dict[str, Any]) -> InboundMessage | None:
    sender = message.from_user
    if message.chat.type != "private":
        _ignored(update, f"message in a {message.chat.type} chat")
        return None
    if sender is None or sender.is_bot:
        _ignored(update, "message not from a person")
        return None
    common: dict[str, Any] = {
        "channel": "telegram",
        "external_id": f"{message.chat.id}:{message.message_id}",
        "received_at": message.date,
        "raw": raw,
    }
    if message.text is not None:
        return _text_message(common, _contact(message.chat.id, sender), message.text)
    if message.contact is not None:
        # Only the sender's own card is their phone; a friend's shared contact must not become the patient's number.
        own = message.contact.user_id == sender.id
        phone = message.contact.phone_number if own else None
        return InboundMessage(**common, contact=_contact(message.chat.id, sender, phone=phone), kind="contact")
    if any(getattr(message, name, None) is not None for name in MEDIA_FIELDS):
        caption = _clean(message.caption or "")
        return InboundMessage(
            **common,
            contact=_contact(message.chat.id, sender),
            kind="text" if caption else "media",
            text=caption,
            media_count=1,
        )
    _ignored(update, "service message")
    return None


def _text_message(common: dict[str, Any], contact: ContactRef, written: str) -> InboundMessage:
    text = _clean(written)
    start = _START.fullmatch(text)
    if start is not None:
        payload = (start.group("payload") or "").strip() or None
        return InboundMessage(**common, contact=contact, kind="start", text=text, start_payload=payload)
    return InboundMessage(**common, contact=contact, kind="text", text=text)


#: The fields of the one shape that is nearly all of the traffic: a person writing text in a private chat. An update
#: with any other field (or any other type of value) goes through aiogram's model instead.
_PLAIN_UPDATE: Final = frozenset({"update_id", "message"})
_PLAIN_MESSAGE: Final = frozenset({"message_id", "from", "chat", "date", "text", "entities"})
_PLAIN_CHAT: Final = frozenset({"id", "type", "first_name", "last_name", "username"})
_PLAIN_SENDER: Final = frozenset({"id", "is_bot", "first_name", "last_name", "username", "language_code", "is_premium"})
#: Formatting in the text (links, bold, custom emoji); kept in the stored payload, not read. A text mention carries a
#: whole user and goes to the model.
_PLAIN_ENTITY: Final = frozenset({"type", "offset", "length", "url", "language", "custom_emoji_id"})
#: Unix seconds up to 2286; pydantic reads larger numbers as milliseconds, so those take the model's path.
_PLAIN_DATE_MAX: Final = 10**10


def _plain_text_message(raw: dict[str, Any]) -> InboundMessage | None:
    """A private text message from a person, read straight from the JSON; None for anything else.

    What this returns is exactly what the aiogram path makes of the same update: it accepts only the fields (and
    exact JSON types) named above, each valid for the model, so a forged or unusual update still meets the model.
    """
    message = raw.get("message")
    if raw.keys() != _PLAIN_UPDATE or type(raw["update_id"]) is not int or type(message) is not dict:
        return None
    chat, sender, text = message.get("chat"), message.get("from"), message.get("text")
    date, message_id = message.get("date"), message.get("message_id")
    if not (
        message.keys() <= _PLAIN_MESSAGE
        and type(message_id) is int
        and type(date) is int
        and 0 <= date < _PLAIN_DATE_MAX
        and type(text) is str
        and type(chat) is dict
        and type(sender) is dict
        and chat.keys() <= _PLAIN_CHAT
        and sender.keys() <= _PLAIN_SENDER
    ):
        return None
    chat_id, first_name, last_name = chat.get("id"), sender.get("first_name"), sender.get("last_name")
    language_code = sender.get("language_code")
    if not (
        type(chat_id) is int
        and chat.get("type") == "private"
        and _optional_strings(chat, ("first_name", "last_name", "username"))
        and type(sender.get("id")) is int
        and sender.get("is_bot") is False
        and type(first_name) is str
        and _optional_strings(sender, ("last_name", "username", "language_code"))
        and type(sender.get("is_premium", False)) is bool
        and _plain_entities(message.get("entities", []))
    ):
        return None
    common: dict[str, Any] = {
        "channel": "telegram",
        "external_id": f"{chat_id}:{message_id}",
        "received_at": datetime.fromtimestamp(date, UTC),
        "raw": _without_nuls(raw),  # the shape checked above is four levels deep at most
    }
    return _text_message(common, _person(chat_id, first_name, last_name, language_code), text)


def _plain_entities(entities: Any) -> bool:
    return type(entities) is list and all(
        type(entity) is dict
        and entity.keys() <= _PLAIN_ENTITY
        and type(entity.get("type")) is str
        and type(entity.get("offset")) is int
        and type(entity.get("length")) is int
        and _optional_strings(entity, ("url", "language", "custom_emoji_id"))
        for entity in entities
    )


def _optional_strings(fields: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Each of ``names`` is absent or a string (JSON null is left to the model: a few fields do not allow it)."""
    return all(type(fields.get(name, "")) is str for name in names)


def _from_callback(update: Update, query: CallbackQuery, raw: dict[str, Any]) -> InboundMessage | None:
    chat = query.message.chat if query.message is not None else None
    if chat is None or chat.type != "private":
        _ignored(update, "button outside a private chat")
        return None
    if query.data is None or query.from_user.is_bot:
        _ignored(update, "callback query without data")
        return None
    data = _clean(query.data)
    return InboundMessage(
        channel="telegram",
        # A callback query has no message of its own: the update id is what Telegram repeats on a retry.
        external_id=f"u{update.update_id}",
        contact=_contact(chat.id, query.from_user),
        received_at=datetime.now(UTC),
        kind="button",
        text=_pressed_label(query, query.data),
        button_data=data,
        raw=raw,
    )


def _pressed_label(query: CallbackQuery, data: str) -> str:
    """The label of the pressed button, for the staff inbox (the data alone reads like code)."""
    markup = getattr(query.message, "reply_markup", None)
    if not isinstance(markup, InlineKeyboardMarkup):
        return ""
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return _clean(button.text)
    return ""


def _contact(chat_id: int, user: User, *, phone: str | None = None) -> ContactRef:
    return _person(chat_id, user.first_name, user.last_name, user.language_code, phone=phone)


def _person(
    chat_id: int, first_name: str, last_name: str | None, language_code: str | None, *, phone: str | None = None
) -> ContactRef:
    name = " ".join(part for part in (first_name, last_name) if part)
    return ContactRef(
        channel="telegram",
        external_id=str(chat_id),
        display_name=_clean(name)[:MAX_NAME],
        phone=_clean(phone or "") or None,
        language_code=_clean(language_code or "") or None,
    )


def _clean(text: str) -> str:
    """Storable (no NULs, no lone surrogates: see ``booking_core.domain.text``) and surrounding space off.

    The cut to ``MAX_TEXT`` is left to ingest, which runs ``clean_text`` again and records ``text_cut``: cutting
    here would lose that flag.
    """
    return storable(text).strip()


def _without_nuls(value: Any) -> Any:
    """The payload as kept with the message: PostgreSQL's jsonb cannot store ``\\u0000`` or a lone surrogate."""
    return storable_payload(value)


# --- sending ---


def inline_keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Buttons as an inline keyboard: one per row, or two per row when every label is short.

    Raises ``ValueError`` for a button Telegram would refuse (empty label, callback data not 1-64 bytes).
    """
    if not buttons:
        return None
    for button in buttons:
        if not button.label.strip():
            raise ValueError("a Telegram button needs a label")
        size = len(button.data.encode())
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise ValueError(
                f"callback data of button {button.label!r} is {size} bytes; Telegram takes 1-{MAX_CALLBACK_DATA_BYTES}"
            )
    keys = [InlineKeyboardButton(text=button.label, callback_data=button.data) for button in buttons]
    per_row = 2 if all(len(button.label) <= SHORT_LABEL for button in buttons) else 1
    return InlineKeyboardMarkup(inline_keyboard=[keys[i : i + per_row] for i in range(0, len(keys), per_row)])


def _chat_id(recipient: str) -> int:
    try:
        return int(recipient)
    except ValueError:
        raise DeliveryFailed(
            f"{recipient!r} is not a Telegram chat id", transient=False, code="bad_recipient"
        ) from None


def delivery_failure(exc: BaseException) -> DeliveryFailed:
    """What an aiogram error means for the outbox: retry (when, if Telegram said) or give up."""
    message = str(exc)
    if isinstance(exc, TelegramRetryAfter):
        return DeliveryFailed(message, transient=True, retry_after=float(exc.retry_after), code="rate_limited")
    if isinstance(exc, TelegramForbiddenError):  # the patient blocked the bot (or deleted their account)
        return DeliveryFailed(message, transient=False, code="blocked")
    if isinstance(exc, TelegramBadRequest | TelegramEntityTooLarge | TelegramMigrateToChat):
        return DeliveryFailed(message, transient=False, code="bad_request")
    if isinstance(exc, TelegramNotFound):
        return DeliveryFailed(message, transient=False, code="not_found")
    if isinstance(exc, TelegramUnauthorizedError):  # the bot token was revoked: every send fails until fixed
        return DeliveryFailed(message, transient=False, code="unauthorized")
    if isinstance(exc, TelegramServerError):
        return DeliveryFailed(message, transient=True, code="server_error")
    if isinstance(exc, TelegramNetworkError | TimeoutError):
        uncertain = may_have_reached(exc)
        return DeliveryFailed(
            message or "timed out", transient=True, code="uncertain" if uncertain else "network", uncertain=uncertain
        )
    if isinstance(exc, ClientDecodeError):  # an answer we could not read (a proxy's error page): it may have gone
        return DeliveryFailed(message, transient=True, code="bad_response", uncertain=True)
    if isinstance(exc, TelegramAPIError):
        return DeliveryFailed(message, transient=False, code="telegram_error")
    return DeliveryFailed(message, transient=True, code="client_error")
