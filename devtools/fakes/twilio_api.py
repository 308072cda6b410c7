"""Fake Twilio REST API (aiohttp.web), Messages resource, that the real twilio client talks to.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` creates a Message resource (201, status "queued")
the client parses into ``MessageInstance``; ``GET .../Messages/{Sid}.json`` fetches it,
``GET .../Messages.json`` lists, ``DELETE .../Messages/{Sid}.json`` deletes. HTTP basic auth, Twilio-style
JSON errors, recording, faults (429 with ``Retry-After``, 5xx, delay) and an optional 80 messages/s per sender
limit.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from devtools.fakes.control import (
    Clock,
    FakeProvider,
    Recorded,
    SlidingWindowLimit,
    control_routes,
    cut_off_middleware,
    not_found_middleware,
    serve,
    whole_seconds,
)

API_VERSION = "2010-04-01"
MAX_BODY_LENGTH = 1600
MESSAGES_PER_SENDER_PER_SECOND = 80
# Fields Twilio takes several times; recorded as lists even when sent once.
LIST_FIELDS = frozenset({"MediaUrl", "PersistentAction"})

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f"
)


class TwilioError(Exception):
    """A Twilio error answer: ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Twilio answers with."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def too_many_requests(retry_after: int) -> TwilioError:
    """429 with Twilio's error 20429 and a ``Retry-After`` header."""
    return TwilioError(429, 20429, "Too Many Requests", {"Retry-After": str(retry_after)})


def server_error(status: int) -> TwilioError:
    """A 5xx answer (error code 20000 + status, as Twilio's 20500/20503)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    return TwilioError(status, 20000 + status, phrase)


def _not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    return email.utils.format_datetime(moment)


def count_segments(body: str) -> int:
    """SMS segments: GSM-7 fits 160 (153 when split), anything else is UCS-2 with 70 (67)."""
    if not body:
        return 1
    if set(body) <= _GSM7:
        single, part = 160, 153
    else:
        single, part = 70, 67
    return 1 if len(body) <= single else math.ceil(len(body) / part)


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(login, password) from an ``Authorization: Basic ...`` header, or None."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def _address(value: str) -> tuple[str, str]:
    """("whatsapp", "+62…") or ("sms", "+62…")."""
    channel, sep, number = value.partition(":")
    if sep and channel in {"whatsapp", "messenger", "rcs"}:
        return channel, number
    return "sms", value


class FakeTwilio(FakeProvider):
    """State of one fake Twilio API: recorded requests, faults, limits and the Message resources created."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        enforce_limits: bool = False,
        clock: Clock = time.monotonic,
        messages_per_sender_per_second: int = MESSAGES_PER_SENDER_PER_SECOND,
    ) -> None:
        super().__init__(enforce_limits=enforce_limits, clock=clock)
        self.accounts: dict[str, str] | None = dict(accounts) if accounts else None
        self.messages: dict[str, dict[str, Any]] = {}
        self._sender_limit = SlidingWindowLimit(messages_per_sender_per_second)

    @property
    def limits(self) -> dict[str, SlidingWindowLimit]:
        """The limit it enforces when asked to: "sender" (messages per second per From number)."""
        return {"sender": self._sender_limit}

    # --- reading what happened ---

    def sent_messages(self, to: str | None = None) -> list[Recorded]:
        """Accepted ``Messages.create`` calls, optionally to one address (``whatsapp:+62…``)."""
        return [
            entry
            for entry in self.requests
            if entry.method == "Messages.create" and entry.ok and (to is None or entry.params.get("To") == to)
        ]

    def set_status(self, sid: str, status: str, *, error_code: int | None = None) -> dict[str, Any]:
        """Move a message along (sent, delivered, read, failed, undelivered) as Twilio would later."""
        resource = self.messages[sid]
        now = rfc2822(datetime.now(UTC))
        resource["status"] = status
        resource["date_updated"] = now
        if status in {"sent", "delivered", "read"} and resource["date_sent"] is None:
            resource["date_sent"] = now
        if error_code is not None:
            resource["error_code"] = error_code
            resource["error_message"] = f"Twilio error {error_code}"
        return resource

    def reset(self) -> int:
        """Forget recorded requests, the throttled count and the limit windows (messages stay fetchable)."""
        self._sender_limit.clear()
        return super().reset()

    # --- answering ---

    def check_auth(self, account_sid: str, authorization: str | None) -> None:
        """HTTP basic auth: any credentials when no accounts are configured, else sid + token must match."""
        credentials = basic_credentials(authorization)
        if credentials is None or not credentials[0]:
            raise TwilioError(401, 20003, "Authenticate")
        if self.accounts is None:
            return
        login, password = credentials
        expected = self.accounts.get(login)
        if expected is None or not secrets.compare_digest(password.encode(), expected.encode()) or login != account_sid:
            raise TwilioError(401, 20003, "Authenticate")

    async def process(
        self,
        *,
        action: str,
        account_sid: str,
        authorization: str | None,
        params: dict[str, Any],
        answer: Callable[[], tuple[int, dict[str, Any] | None]],
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """Authenticate, apply faults, answer and record one call; returns (status, JSON body, headers)."""
        headers: dict[str, str] = {}
        try:
            self.check_auth(account_sid, authorization)
            fault = await self.take_fault(action)
            if fault is not None:
                raise (
                    too_many_requests(fault.retry_after) if fault.kind == "retry_after" else server_error(fault.status)
                )
            status, body = answer()
        except TwilioError as exc:
            status, body, headers = exc.status, exc.body(), exc.headers
            if exc.status == 401:
                headers = {**headers, "WWW-Authenticate": 'Basic realm="Twilio API"'}
        self.record(method=action, token=account_sid, params=params, status=status, response=body)
        return status, body, headers

    def create_message(self, account_sid: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Validate like Twilio, count against the per-sender limit, store and return the Message resource."""
        to = params.get("To") or ""
        from_ = params.get("From") or ""
        service_sid = params.get("MessagingServiceSid") or None
        body = params.get("Body") or ""
        media = params.get("MediaUrl") or []
        content_sid = params.get("ContentSid") or None
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service_sid:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not media and not content_sid:
            raise TwilioError(400, 21602, "Message body is required.")
        to_channel, to_number = _address(to)
        if not _E164.fullmatch(to_number):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to_number}")
        if from_:
            from_channel, from_number = _address(from_)
            if from_channel != to_channel:
                raise TwilioError(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
            if from_channel != "sms" and not _E164.fullmatch(from_number):
                raise TwilioError(400, 21212, f"Invalid From Number (caller ID): {from_number}")
        if len(body) > MAX_BODY_LENGTH:
            raise TwilioError(
                400, 21617, f"The concatenated message body exceeds the {MAX_BODY_LENGTH} character limit."
            )
        if any(not str(url).startswith(("http://", "https://")) for url in media):
            raise TwilioError(400, 21620, "Invalid media URL(s)")
        if content_sid is not None and not _CONTENT_SID.fullmatch(content_sid):
            raise TwilioError(400, 21655, "The ContentSid is Invalid.")
        variables = params.get("ContentVariables")
        if variables:
            try:
                parsed = json.loads(variables)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise TwilioError(400, 21656, "The ContentVariables Parameter is invalid.")
        callback = params.get("StatusCallback")
        if callback and not str(callback).startswith(("http://", "https://")):
            raise TwilioError(400, 21609, "Invalid StatusCallback")

        self._admit(from_ or service_sid or "")
        sid = "SM" + secrets.token_hex(16)
        now = rfc2822(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        resource: dict[str, Any] = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": service_sid,
            "num_media": str(len(media)),
            "num_segments": "1" if to_channel != "sms" else str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json",
                "feedback": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Feedback.json",
            },
            "to": to,
            "uri": uri,
        }
        self.messages[sid] = resource
        return 201, resource

    def _admit(self, sender: str) -> None:
        if not self.enforce_limits:
            return
        now = self.clock()
        wait = self._sender_limit.wait_time(sender, now)
        if wait > 0:
            self.throttled_count += 1
            raise too_many_requests(whole_seconds(wait))
        self._sender_limit.hit(sender, now)

    def fetch_message(self, account_sid: str, sid: str, path: str) -> tuple[int, dict[str, Any]]:
        """The stored resource, or Twilio's 404."""
        resource = self.messages.get(sid)
        if resource is None or resource["account_sid"] != account_sid:
            raise _not_found(path)
        return 200, resource

    def delete_message(self, account_sid: str, sid: str, path: str) -> tuple[int, None]:
        """Delete a stored resource (204), or Twilio's 404."""
        self.fetch_message(account_sid, sid, path)
        del self.messages[sid]
        return 204, None

    def list_messages(self, account_sid: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A page of messages, newest first, filtered by To/From like Twilio's list."""
        try:
            page = max(0, int(params.get("Page", 0)))
            page_size = min(1000, max(1, int(params.get("PageSize", 50))))
        except ValueError as exc:
            raise TwilioError(400, 20001, "Invalid paging parameters") from exc
        matching = [
            resource
            for resource in reversed(self.messages.values())
            if resource["account_sid"] == account_sid
            and ("To" not in params or resource["to"] == params["To"])
            and ("From" not in params or resource["from"] == params["From"])
        ]
        start = page * page_size
        chunk = matching[start : start + page_size]
        base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        filters: dict[str, Any] = {key: params[key] for key in ("To", "From") if key in params}

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        return 200, {
            "messages": chunk,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + page_size < len(matching) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "page": page,
            "page_size": page_size,
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "uri": page_uri(page),
        }


TWILIO_FAKE: web.AppKey[FakeTwilio] = web.AppKey("fake_twilio", FakeTwilio)


def form_params(form: Mapping[str, Any] | Any) -> dict[str, Any]:
    """Form/query multidict → dict; ``LIST_FIELDS`` are always lists, other repeated fields last-wins."""
    params: dict[str, Any] = {}
    for key, value in form.items():
        text = value if isinstance(value, str) else str(value)
        if key in LIST_FIELDS:
            params.setdefault(key, []).append(text)
        else:
            params[key] = text
    return params


def _respond(status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(body, status=status, headers=headers)


def _call_of(request: web.Request) -> tuple[str, str] | None:
    """(action, account sid) of a message being created; None for anything else."""
    if request.method != "POST" or "account_sid" not in request.match_info:
        return None
    return "Messages.create", request.match_info["account_sid"]


async def _create(request: web.Request) -> web.Response:
    fake = request.app[TWILIO_FAKE]
    account_sid = request.match_info["account_sid"]
    params = form_params(await request.post())
    status, body, headers = await fake.process(
        action="Messages.create",
        account_sid=account_sid,
        authorization=request.headers.get("Authorization"),
        params=params,
        answer=lambda: fake.create_message(account_sid, params),
    )
    return _respond(status, body, headers)


async def _list(request: web.Request) -> web.Response:
    fake = request.app[TWILIO_FAKE]
    account_sid = request.match_info["account_sid"]
    params = form_params(request.query)
    status, body, headers = await fake.process(
        action="Messages.list",
        account_sid=account_sid,
        authorization=request.headers.get("Authorization"),
        params=params,
        answer=lambda: fake.list_messages(account_sid, params),
    )
    return _respond(status, body, headers)


async def _fetch(request: web.Request) -> web.Response:
    fake = request.app[TWILIO_FAKE]
    account_sid, sid = request.match_info["account_sid"], request.match_info["sid"]
    status, body, headers = await fake.process(
        action="Messages.fetch",
        account_sid=account_sid,
        authorization=request.headers.get("Authorization"),
        params={"Sid": sid},
        answer=lambda: fake.fetch_message(account_sid, sid, request.path),
    )
    return _respond(status, body, headers)


async def _delete(request: web.Request) -> web.Response:
    fake = request.app[TWILIO_FAKE]
    account_sid, sid = request.match_info["account_sid"], request.match_info["sid"]
    status, body, headers = await fake.process(
        action="Messages.delete",
        account_sid=account_sid,
        authorization=request.headers.get("Authorization"),
        params={"Sid": sid},
        answer=lambda: fake.delete_message(account_sid, sid, request.path),
    )
    return _respond(status, body, headers)


def create_twilio_app(
    *,
    accounts: Mapping[str, str] | None = None,
    enforce_limits: bool = False,
    clock: Clock = time.monotonic,
    cut_off: bool = False,
) -> web.Application:
    """The fake Twilio API as an aiohttp app; ``accounts`` maps account sid → auth token (None: any).

    ``cut_off``: record calls whose caller went away (serve it with ``serve(..., cut_off=True)``)."""
    fake = FakeTwilio(accounts=accounts, enforce_limits=enforce_limits, clock=clock)
    app = web.Application(middlewares=[not_found_middleware(lambda request: _not_found(request.path).body())])
    if cut_off:
        app.middlewares.append(cut_off_middleware(lambda request: request.app[TWILIO_FAKE], _call_of))
    app[TWILIO_FAKE] = fake
    messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    app.router.add_post(f"{messages}.json", _create)
    app.router.add_get(f"{messages}.json", _list, allow_head=False)
    app.router.add_get(f"{messages}/{{sid}}.json", _fetch, allow_head=False)
    app.router.add_delete(f"{messages}/{{sid}}.json", _delete)
    app.router.add_routes(control_routes(lambda request: request.app[TWILIO_FAKE]))
    return app


@asynccontextmanager
async def running_fake_twilio(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    accounts: Mapping[str, str] | None = None,
    enforce_limits: bool = False,
    clock: Clock = time.monotonic,
    cut_off: bool = False,
) -> AsyncIterator[FakeTwilio]:
    """Serve a fake Twilio API on ``host:port`` (0: a free port); yields its state with ``base_url`` set.

    ``cut_off``: a call whose caller goes away before the answer is dropped, not done (see ``control.serve``)."""
    app = create_twilio_app(accounts=accounts, enforce_limits=enforce_limits, clock=clock, cut_off=cut_off)
    fake = app[TWILIO_FAKE]
    async with serve(app, host=host, port=port, cut_off=cut_off) as base_url:
        fake.base_url = base_url
        yield fake
