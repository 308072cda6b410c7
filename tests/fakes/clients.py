"""Point the real provider clients at a base URL: the public APIs, a local Bot API server, or our fakes.

The URL handling is the channels' own (``channels.telegram.client``, ``channels.whatsapp.client``); this module adds
the test-side conveniences (a sync twilio client, a Bot with session options).

* aiogram: ``Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))``.
* twilio: the generated resources always build ``https://api.twilio.com/...`` URLs, so the HTTP client
  rewrites that prefix (and the regional/edge ``api.<edge>.<region>.twilio.com`` forms) to the base URL.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.telegram.client import api_server
from channels.whatsapp.client import basic_authorization, form_pairs
from channels.whatsapp.client import rewrite_url as rewrite_twilio_url

TWILIO_API_URL = "https://api.twilio.com"
DEFAULT_TWILIO_TIMEOUT = 15.0

# --- Telegram ---


def telegram_session(api_url: str | None = None, **session_options: Any) -> AiohttpSession:
    """An aiogram session talking to ``api_url``; options go to ``AiohttpSession`` (timeout, limit...)."""
    return AiohttpSession(api=api_server(api_url), **session_options)


def telegram_bot(
    token: str,
    *,
    api_url: str | None = None,
    default: DefaultBotProperties | None = None,
    **session_options: Any,
) -> Bot:
    """A real aiogram ``Bot`` whose requests go to ``api_url``; close with ``await bot.session.close()``."""
    return Bot(token, session=telegram_session(api_url, **session_options), default=default)


# --- Twilio ---


class RewritingHttpClient(TwilioHttpClient):
    """twilio's default (requests, sync) HTTP client, sending ``api.twilio.com`` requests to ``base_url``."""

    def __init__(self, base_url: str | None, *, timeout: float | None = DEFAULT_TWILIO_TIMEOUT, **options: Any):
        super().__init__(timeout=timeout, **options)
        self.base_url = base_url

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request to the rewritten URL."""
        response: Response = super().request(
            method,
            rewrite_twilio_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        return response


class RewritingAsyncHttpClient(AsyncTwilioHttpClient):
    """twilio's aiohttp-based async client, sending ``api.twilio.com`` requests to ``base_url``.

    Use it with the ``*_async`` resource methods (``await client.messages.create_async(...)``). It opens an
    aiohttp ``ClientSession``, so build it inside a running event loop and ``await http_client.close()`` at
    the end. Unlike the stock client it applies its own ``timeout`` when a call gives none, sends list
    fields (``MediaUrl``) as repeated form fields, and sends credentials as a header rather than through
    aiohttp's deprecated ``BasicAuth``.
    """

    def __init__(self, base_url: str | None, *, timeout: float | None = DEFAULT_TWILIO_TIMEOUT, **options: Any):
        super().__init__(timeout=timeout, **options)
        self.base_url = base_url

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request to the rewritten URL."""
        if auth is not None:
            headers = {**(headers or {}), "Authorization": basic_authorization(*auth)}
        response: Response = await super().request(
            method,
            rewrite_twilio_url(url, self.base_url),
            params=params,
            data=form_pairs(data),
            headers=headers,
            auth=None,
            timeout=self.timeout if timeout is None else timeout,
            allow_redirects=allow_redirects,
        )
        return response


def twilio_client(
    account_sid: str,
    auth_token: str,
    *,
    api_url: str | None = None,
    asynchronous: bool = False,
    timeout: float | None = DEFAULT_TWILIO_TIMEOUT,
) -> Client:
    """A real twilio ``Client`` whose requests go to ``api_url`` (None or the public URL: Twilio itself).

    ``asynchronous=True`` uses :class:`RewritingAsyncHttpClient` (call it inside the event loop; use the
    ``*_async`` methods; close with ``await client.http_client.close()``).
    """
    base_url = None if api_url is None or api_url.rstrip("/") == TWILIO_API_URL else api_url
    http_client: TwilioHttpClient | AsyncTwilioHttpClient
    if asynchronous:
        http_client = RewritingAsyncHttpClient(base_url, timeout=timeout)
    else:
        http_client = RewritingHttpClient(base_url, timeout=timeout)
    return Client(account_sid, auth_token, http_client=http_client)
