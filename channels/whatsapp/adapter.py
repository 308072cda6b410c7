"""WhatsApp through Twilio: check the signature, read the form into an InboundMessage, send through the REST API.

Inbound: Twilio posts ``application/x-www-form-urlencoded`` forms, signed with the account's auth token over the
URL it called plus the sorted POST parameters (``X-Twilio-Signature``). The form must be read to check the
signature, so :meth:`WhatsAppAdapter.verify` keeps the verified form on the request: handlers take it with
:func:`verified_form` and never read or parse the body a second time.

Outbound: WhatsApp only lets a business write freely within 24 hours of the patient's last message; outside that
window only an approved template (a Twilio Content ``HX…`` sid) may be sent. Buttons become numbered options
(:mod:`channels.whatsapp.options`). Images need a public URL Twilio can fetch: we send none of our own, so an
image without one is left out and the text goes alone.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from booking_core.domain.messages import (
    Channel,
    ContactRef,
    DeliveryFailed,
    InboundKind,
    InboundMessage,
    OutboundMessage,
    clean_text,
)
from booking_core.domain.text import storable
from channels.base import RateLimit, Refused
from channels.network import may_have_reached
from channels.whatsapp import options
from channels.whatsapp.client import DEFAULT_TIMEOUT, Throttled, twilio_client
from channels.whatsapp.status import StatusReport, report_of

log = logging.getLogger(__name__)

ADDRESS_PREFIX = "whatsapp:"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: WhatsApp's customer service window: free-form messages only this long after the patient's last message.
SERVICE_WINDOW = timedelta(hours=24)
#: Other Twilio channels that can reach the same number and webhook ("sms" = a plain "+62…" sender). Answered 2xx
#: so Twilio does not retry, and not taken in: the clinic talks to patients on WhatsApp here.
IGNORED_SENDER_CHANNELS = frozenset({"sms", "mms", "messenger", "rcs"})
#: Where Twilio posts status callbacks (relative to PUBLIC_BASE_URL); the gateway routes it.
STATUS_CALLBACK_PATH = "/webhooks/whatsapp/status"
#: The verified form, kept on the request by :meth:`WhatsAppAdapter.verify`.
VERIFIED_FORM: web.RequestKey[dict[str, str]] = web.RequestKey("whatsapp_verified_form", dict)

_E164 = re.compile(r"\+[1-9]\d{6,14}")
#: A Twilio Message sid: SM (text) or MM (media) and 32 hex digits. Anything else is not a form Twilio wrote.
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
#: Twilio sends at most 10 media items per WhatsApp message; ``NumMedia`` is their count, written in digits.
MAX_MEDIA = 10
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_NAME = 200


def verified_form(request: web.Request) -> dict[str, str]:
    """The form :meth:`WhatsAppAdapter.verify` checked (``KeyError`` if the request was never verified)."""
    return request[VERIFIED_FORM]


def sender_channel(address: str) -> str:
    """``whatsapp:+62…`` → "whatsapp"; a bare number → "sms"; ``messenger:…`` → "messenger"."""
    prefix, sep, _ = address.partition(":")
    return prefix.strip().lower() if sep else "sms"


def address(recipient: str) -> str:
    """``+62…`` → ``whatsapp:+62…`` (an address that has the prefix already is kept)."""
    return recipient if recipient.startswith(ADDRESS_PREFIX) else ADDRESS_PREFIX + recipient


def display_name(profile_name: str) -> str:
    """The WhatsApp profile name as staff will see it: one line, without control or bidi-override characters.

    Names are the patient's own words and stay as typed (HTML included: templates escape it); only characters that
    could reorder or hide text in the inbox (U+202A-U+202E, U+2066-U+2069, other controls) are dropped.
    """
    kept = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in profile_name if ch not in _BIDI_CONTROLS)
    return " ".join(kept.split())[:MAX_NAME]


def _media_count(value: str | None) -> int:
    """``NumMedia`` as Twilio writes it (absent means 0); :class:`Refused` (400) for anything else."""
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit() and len(value) <= 2 and int(value) <= MAX_MEDIA):
        raise Refused(400, f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    return int(value)


def content_variables(message: OutboundMessage) -> dict[str, str]:
    """A content template's variables as Twilio takes them: the message's template values numbered from "1", in
    the order the notice gives them (the order of the approved template's ``{{1}}``, ``{{2}}``, …)."""
    return {str(number): value for number, (_, value) in enumerate(message.template_fields, start=1)}


def _number_of(address: str) -> str:
    """``whatsapp:+62…`` or ``+62…`` → ``+62…`` (a Twilio address without its channel prefix)."""
    return address.partition(":")[2].strip() if ":" in address else address.strip()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WhatsAppAdapter:
    """The WhatsApp channel (see the module docstring). Build once per process; ``await close()`` at the end."""

    channel: Channel = "whatsapp"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_url: str,
        public_base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.account_sid = account_sid
        self.sender = address(sender)
        self.api_url = api_url
        self.public_base_url = public_base_url.rstrip("/")
        self.status_callback_url = self.public_base_url + STATUS_CALLBACK_PATH
        self._auth_token = auth_token
        self._validator = RequestValidator(auth_token)
        self._timeout = timeout
        self._clock = clock
        # Made on the first send, inside the loop that sends (it owns an aiohttp session bound to that loop).
        self._client: Client | None = None

    # --- inbound ---

    def signed_url(self, request: web.Request) -> str:
        """The URL Twilio called, as it signed it: our public base URL + the raw path and query string."""
        return self.public_base_url + request.raw_path

    async def verify(self, request: web.Request) -> None:
        """Read the form and check its Twilio signature; keep the form for :func:`verified_form`.

        Raises :class:`Refused`: 403 for a missing signature (checked before the body is read) or a wrong one, 400
        for a body that is not a readable form, 413 for one too large. Never anything else for bad input.
        """
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:  # before reading the body: an unsigned request costs us nothing
            raise Refused(403, f"missing {SIGNATURE_HEADER}")
        if request.content_type != FORM_CONTENT_TYPE:
            raise Refused(400, f"expected {FORM_CONTENT_TYPE}")
        try:
            form = await request.post()
        except web.HTTPException as exc:  # too large, too many fields
            raise Refused(exc.status, exc.reason) from None
        except (UnicodeDecodeError, LookupError, ValueError):  # not UTF-8 / unknown charset / unparsable
            raise Refused(400, "the form could not be read") from None
        if not self._validator.validate(self.signed_url(request), form, signature):
            raise Refused(403, f"wrong {SIGNATURE_HEADER}")
        # Checked as signed, kept as storable: a NUL in any field (Body, ProfileName, WaId, ErrorMessage...) is dropped.
        request[VERIFIED_FORM] = {storable(key): storable(str(value)) for key, value in form.items()}

    def parse(self, raw: Mapping[str, str]) -> InboundMessage | None:
        """The patient's message in a Twilio inbound form; None for senders on other channels (ignored on purpose).

        Raises :class:`Refused`: 400 for a form that names no message or no sender, a ``MessageSid`` that is not a
        Twilio sid (or differs from ``SmsMessageSid``/``SmsSid``), a ``NumMedia`` that is not 0-10; 403 for a
        WhatsApp message not addressed to our sender (``To``). Twilio's signature joins the sorted names and values
        without separators, so a captured signed form can be re-cut (``MessageSid`` swallowing the fields after it)
        and still verify: these checks are what refuse such a form before anything is stored.
        """
        external_id = (raw.get("MessageSid") or raw.get("SmsMessageSid") or raw.get("SmsSid") or "").strip()
        sender = (raw.get("From") or "").strip()
        if not external_id or not sender:
            raise Refused(400, "an inbound message needs MessageSid and From")
        _check_sid(raw, external_id, ("MessageSid", "SmsMessageSid", "SmsSid"))
        channel = sender_channel(sender)
        if channel != "whatsapp":
            if channel not in IGNORED_SENDER_CHANNELS:
                log.warning("whatsapp webhook: unsupported sender channel %r (message %s)", channel, external_id)
            return None
        number = sender[len(ADDRESS_PREFIX) :].strip()
        if not number:
            raise Refused(400, "From names no WhatsApp user")
        if _number_of(raw.get("To") or "") != _number_of(self.sender):
            raise Refused(403, "the message is not addressed to this clinic's WhatsApp sender (To)")
        text, _ = clean_text(raw.get("Body") or "")
        button_data = (raw.get("ButtonPayload") or "").strip() or None
        media_count = _media_count(raw.get("NumMedia"))
        kind: InboundKind = "text"
        if button_data is not None:
            kind = "button"
            text = text or clean_text(raw.get("ButtonText") or "")[0]
        elif media_count and not text:
            kind = "media"
        return InboundMessage(
            channel="whatsapp",
            external_id=external_id,
            contact=ContactRef(
                channel="whatsapp",
                external_id=number,
                display_name=display_name(raw.get("ProfileName") or ""),
                phone=number if _E164.fullmatch(number) else None,
            ),
            received_at=self._clock(),
            kind=kind,
            text=text,
            button_data=button_data,
            media_count=media_count,
            raw=dict(raw),
        )

    def parse_status(self, raw: Mapping[str, str]) -> StatusReport:
        """A status callback form; :class:`Refused`: 400 when it names no message or no status or its sid is not a
        Twilio Message sid, 403 when it is not about a message from our sender (``From``)."""
        try:
            report = report_of(raw)
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
        _check_sid(raw, report.provider_id, ("MessageSid", "SmsSid"))
        if _number_of(raw.get("From") or "") != _number_of(self.sender):
            raise Refused(403, "the callback is not about a message from this clinic's WhatsApp sender (From)")
        return report

    # --- outbound ---

    def within_window(self, message: OutboundMessage) -> bool:
        """Whether the patient wrote within the last 24 hours (free-form messages allowed)."""
        last = message.last_inbound_at
        return last is not None and self._clock() - last < SERVICE_WINDOW

    def create_params(self, message: OutboundMessage) -> dict[str, object]:
        """The ``messages.create`` arguments for ``message``; :class:`DeliveryFailed` if it cannot go out at all."""
        params: dict[str, object] = {
            "from_": self.sender,
            "to": address(message.recipient),
            "status_callback": self.status_callback_url,
        }
        if not self.within_window(message):
            if message.template is None:
                raise DeliveryFailed(
                    "the patient last wrote more than 24 hours ago: WhatsApp allows only a template message",
                    transient=False,
                    code="outside_24h_window",
                )
            params["content_sid"] = message.template
            if message.template_fields:
                params["content_variables"] = json.dumps(content_variables(message), ensure_ascii=False)
            return params
        body = options.render(message.text, message.buttons)
        media_url = getattr(message.image, "media_url", None) if message.image is not None else None
        if not body and not media_url:
            raise DeliveryFailed(
                "nothing to send: no text, and the image has no public URL", transient=False, code="empty_message"
            )
        if body:
            params["body"] = body
        if media_url:
            params["media_url"] = [media_url]
        return params

    def rate_limits(self, message: OutboundMessage) -> list[RateLimit]:
        """Twilio's limit for WhatsApp senders: 80 messages a second per sender number."""
        return [RateLimit(f"whatsapp:sender:{self.sender}", 80, 1.0)]

    async def send(self, message: OutboundMessage) -> str:
        """Send ``message``; returns the Message sid. Raises :class:`DeliveryFailed` (transient or not)."""
        params = self.create_params(message)
        try:
            created = await self._rest().messages.create_async(**params)
        except Throttled as exc:
            raise DeliveryFailed(
                "Twilio is throttling us", transient=True, retry_after=exc.retry_after, code=str(exc.code or 20429)
            ) from exc
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _failure(exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if may_have_reached(exc):
                raise DeliveryFailed(
                    f"no answer from Twilio: {type(exc).__name__}", transient=True, code="uncertain", uncertain=True
                ) from exc
            raise DeliveryFailed(f"cannot reach Twilio: {type(exc).__name__}", transient=True, code="network") from exc
        except TwilioException as exc:  # an answer we could not read: it may have been sent
            raise DeliveryFailed(
                f"unreadable answer from Twilio: {exc}", transient=True, code="bad_answer", uncertain=True
            ) from exc
        if not created.sid:
            raise DeliveryFailed("Twilio answered without a message sid", transient=False, code="bad_answer")
        return created.sid

    def _rest(self) -> Client:
        if self._client is None:
            self._client = twilio_client(
                self.account_sid, self._auth_token, api_url=self.api_url, timeout=self._timeout
            )
        return self._client

    async def close(self) -> None:
        """Close the HTTP session, if a send opened one."""
        client, self._client = self._client, None
        if client is not None:
            await client.http_client.close()


def _check_sid(raw: Mapping[str, str], sid: str, fields: tuple[str, ...]) -> None:
    """:class:`Refused` (400) unless ``sid`` is a Twilio Message sid and every sid field present repeats it."""
    if not MESSAGE_SID.fullmatch(sid):
        raise Refused(400, "MessageSid is not a Twilio Message sid (SM or MM and 32 hex digits)")
    if any(field in raw and raw[field].strip() != sid for field in fields):
        raise Refused(400, f"{' and '.join(f for f in fields if f in raw)} differ")


def _failure(exc: TwilioRestException | TwilioServiceException) -> DeliveryFailed:
    """429 and 5xx → transient; 401, 400 and other 4xx → permanent, with Twilio's error code."""
    status = exc.status
    code = str(exc.code) if exc.code is not None else str(status)
    message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "") or "error"
    return DeliveryFailed(f"Twilio answered {status}: {message}", transient=status >= 500 or status == 429, code=code)
