"""``POST /webhooks/telegram``: verify the secret, parse the Update, persist it, then acknowledge.

Written with aiogram's types rather than its ``SimpleRequestHandler``: that handler hands updates to a Dispatcher
(in the background, or with our whole dialog inside the request), has no place for "persist before the 200", and
answers a body that is not JSON with a 500. Here the message is in Postgres before Telegram gets its 200, and a body
that is not an Update is a 400 (Telegram does not retry 4xx), never a 500.
"""

from __future__ import annotations

import json

from aiohttp import web

from channels.base import Refused
from channels.telegram.adapter import InvalidUpdate, TelegramAdapter
from gateway.inbound import accept, refused
from gateway.keys import ADAPTERS

PATH = "/webhooks/telegram"
MAX_BODY = 1024 * 1024  # Telegram updates are a few kilobytes; a megabyte is generous
OK = json.dumps({"ok": True}).encode()  # the acknowledgement, serialised once


async def telegram_webhook(request: web.Request) -> web.Response:
    adapter = request.app[ADAPTERS].get("telegram")
    if not isinstance(adapter, TelegramAdapter):
        return _error(404, "not_configured", "Telegram is not configured on this gateway.")
    try:
        await adapter.verify(request)  # before the body is read: a forged request costs us nothing
    except Refused as exc:
        return _refuse(request, exc.status, "unauthorized", exc.message)
    body = await _body(request)
    if body is None:
        return _refuse(request, 413, "too_large", f"A Telegram update is at most {MAX_BODY} bytes.")
    try:
        raw = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; absurd nesting a RecursionError
        return _refuse(request, 400, "malformed_json", "The body is not JSON.")
    try:
        inbound = adapter.parse(raw)
    except InvalidUpdate as exc:
        return _refuse(request, 400, "invalid_update", str(exc))
    outcome = await accept(request, inbound, channel="telegram")  # persisted (or recognised as a retry) here
    if inbound is not None and outcome != "ignored":
        await adapter.acknowledge(inbound)  # best effort, after the commit: stops the spinner on a pressed button
    return web.Response(body=OK, content_type="application/json")


async def _body(request: web.Request) -> bytes | None:
    """The body, or None when it is over :data:`MAX_BODY` (refused from Content-Length before reading it)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:  # chunked bodies past the app's client_max_size
        return None
    return None if len(body) > MAX_BODY else body


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; JSON (and PostgreSQL's jsonb) has no such numbers."""
    raise ValueError(f"{constant} is not a JSON number")


def _refuse(request: web.Request, status: int, code: str, message: str) -> web.Response:
    refused(request, "telegram")
    return _error(status, code, message)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, telegram_webhook)
