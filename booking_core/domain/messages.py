"""The channel-neutral shape of a message, in and out.

Defined here (the clinic's core) so that ingest and the dialog can use them; ``channels/base.py`` re-exports them
next to the adapter protocol. Everything channel-specific (chat ids, ``whatsapp:+E164``, keyboards, the 24-hour
window) stays inside the adapters.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Channel = Literal["telegram", "whatsapp", "webchat", "webform"]
CHANNELS: tuple[Channel, ...] = ("telegram", "whatsapp", "webchat", "webform")
#: Channels with a chat to write to (a booking-form request has none): where notices and replies can go.
CHATS: tuple[Channel, ...] = ("telegram", "whatsapp", "webchat")
InboundKind = Literal["text", "button", "contact", "start", "media"]

#: Longest text we keep from a patient; longer input is cut (and flagged) rather than refused.
MAX_TEXT = 4096
#: Longest text we put in one message to a patient: it fits every channel (Telegram's 4,096 characters is the least).
MAX_OUTBOUND_TEXT = 4000


@dataclass(frozen=True)
class ContactRef:
    """Who wrote: the channel's own id for them, plus what the channel tells us about them."""

    channel: Channel
    external_id: str  # Telegram chat id, "+E164" for WhatsApp, the web-chat visitor id
    display_name: str = ""
    phone: str | None = None  # as given (shared contact, WhatsApp sender); normalised to E.164 at ingest
    language_code: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One message from a patient, already verified and parsed by its channel's adapter."""

    channel: Channel
    external_id: str  # unique per channel: provider retries carry the same id
    contact: ContactRef
    received_at: datetime
    kind: InboundKind = "text"
    text: str = ""
    button_data: str | None = None  # data of a pressed button / chosen option: user-controlled, re-validated
    start_payload: str | None = None  # Telegram deep link /start payload
    media_count: int = 0
    raw: dict[str, Any] = field(default_factory=dict)  # the provider's payload, kept with the message


@dataclass(frozen=True)
class Button:
    """An option offered to the patient; ``data`` comes back in :attr:`InboundMessage.button_data`."""

    label: str
    data: str


@dataclass(frozen=True)
class Image:
    """An image sent with a message (e.g. the check-in QR code)."""

    content: bytes
    filename: str = "image.png"
    content_type: str = "image/png"


@dataclass(frozen=True)
class OutboundMessage:
    """A reply, confirmation or reminder: text plus buttons as data, an optional image or template."""

    channel: Channel
    recipient: str  # the ContactRef.external_id to send to
    text: str
    buttons: tuple[Button, ...] = ()
    image: Image | None = None
    # The clinic's approved template for this kind of message (a WhatsApp content sid), for a channel that allows
    # no free text at the time (WhatsApp outside its 24-hour window); other channels ignore it.
    template: str | None = None
    # The template's values, named and in its order; the channel numbers them its own way (WhatsApp: "1", "2", …).
    template_fields: tuple[tuple[str, str], ...] = ()
    # Set by the delivery service from the recipient's identity (not stored): lets an adapter apply its own rules.
    last_inbound_at: datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        """JSON for the outbox row."""
        payload: dict[str, Any] = {
            "channel": self.channel,
            "recipient": self.recipient,
            "text": self.text,
            "buttons": [{"label": b.label, "data": b.data} for b in self.buttons],
        }
        if self.image is not None:
            payload["image"] = {
                "content": base64.b64encode(self.image.content).decode(),
                "filename": self.image.filename,
                "content_type": self.image.content_type,
            }
        if self.template is not None:
            payload["template"] = self.template
            payload["template_fields"] = [[name, value] for name, value in self.template_fields]
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> OutboundMessage:
        image = payload.get("image")
        picture = Image(base64.b64decode(image["content"]), image["filename"], image["content_type"]) if image else None
        return cls(
            channel=payload["channel"],
            recipient=payload["recipient"],
            text=payload.get("text", ""),
            buttons=tuple(Button(b["label"], b["data"]) for b in payload.get("buttons", [])),
            image=picture,
            template=payload.get("template"),
            template_fields=_template_fields(payload),
        )


def _template_fields(payload: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if "template_fields" in payload:
        return tuple((str(name), str(value)) for name, value in payload["template_fields"])
    # A row planned before the fields were named holds them numbered already ({"1": …, "2": …}).
    numbered = payload.get("template_variables") or {}
    return tuple((key, str(numbered[key])) for key in sorted(numbered, key=int))


class DeliveryFailed(Exception):
    """A send did not go through. ``transient`` failures are retried (after ``retry_after`` seconds if given: the
    provider is throttling us, which delays a message and never fails it).

    ``uncertain``: the request may have reached the provider before the failure (a timeout after it left, a
    connection cut while waiting for the answer), so the patient may have it. The outbox sends such a message at
    most once more (see ``booking_core/services/outbox.py``)."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        code: str = "",
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.code = code
        self.uncertain = uncertain

    @property
    def throttled(self) -> bool:
        return self.transient and self.retry_after is not None


def clean_text(text: str) -> tuple[str, bool]:
    """Strip NULs and surrounding space, cut to :data:`MAX_TEXT`; returns (text, was_cut)."""
    cleaned = text.replace("\x00", "").strip()
    return cleaned[:MAX_TEXT], len(cleaned) > MAX_TEXT


class Sender(Protocol):
    """What delivering a message needs of its channel; every channel adapter is one (channels/base.py)."""

    async def send(self, message: OutboundMessage) -> str:
        """Deliver ``message``; return the provider's message id; raise :class:`DeliveryFailed` on failure."""
        ...
