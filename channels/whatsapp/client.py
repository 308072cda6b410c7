"""The real twilio REST client, pointed at ``TWILIO_API_URL`` (Twilio itself, or our fake in tests and `make run`).

twilio's generated resources always build ``https://api.twilio.com/...`` URLs, so the HTTP client rewrites that
prefix (and the regional/edge ``api.<edge>.<region>.twilio.com`` forms) to the base URL.

We use twilio's aiohttp-based async client (``*_async`` resource methods): the worker keeps one event loop for its
life, so one ``ClientSession`` per process serves every send without a thread per call. Two things the stock client
does not give us are added here: a default timeout, and the ``Retry-After`` of a 429 (``TwilioRestException``
keeps only status, code and message, so the HTTP layer raises :class:`Throttled` itself).
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
from datetime import UTC, datetime
from typing import Any

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.network import SEND_TIMEOUT

TWILIO_API_URL = "https://api.twilio.com"
#: Seconds a Twilio call may take before it counts as a (transient) network failure.
DEFAULT_TIMEOUT = SEND_TIMEOUT  # a provider answering within this is never sent twice (channels/network.py)

_TWILIO_API_PREFIX = re.compile(r"^https://api(?:\.[a-z0-9-]+)*\.twilio\.com(?=[/?#]|$)", re.IGNORECASE)


class Throttled(Exception):
    """Twilio answered 429 Too Many Requests; ``retry_after`` (seconds) is its ``Retry-After``, when it sent one."""

    def __init__(self, retry_after: float | None, *, code: int | None = None, message: str = "Too Many Requests"):
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code
        self.message = message


def rewrite_url(url: str, base_url: str | None) -> str:
    """``https://api.twilio.com/2010-04-01/...`` → ``<base_url>/2010-04-01/...``; other URLs unchanged."""
    if base_url is None:
        return url
    return _TWILIO_API_PREFIX.sub(lambda _: base_url.rstrip("/"), url, count=1)


def basic_authorization(login: str, password: str) -> str:
    """An ``Authorization: Basic ...`` value (aiohttp 3.14 deprecates ``BasicAuth``)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (delay-seconds or an HTTP date) as seconds from now; None if absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / infinity
        return None
    return max(0.0, seconds)


def form_pairs(data: Any) -> Any:
    """A dict whose values may be lists (``MediaUrl``) → repeated (key, value) pairs, as Twilio expects."""
    if not isinstance(data, dict):
        return data
    pairs: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, list | tuple):
            pairs.extend((key, item) for item in value)
        else:
            pairs.append((key, value))
    return pairs


def _twilio_code(text: str) -> int | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


class RewritingAsyncHttpClient(AsyncTwilioHttpClient):
    """twilio's aiohttp-based client, sending ``api.twilio.com`` requests to ``base_url``.

    It opens an aiohttp ``ClientSession``: build it inside the running event loop that will use it and
    ``await close()`` at the end. Unlike the stock client it applies its own ``timeout`` when a call gives none,
    sends list fields (``MediaUrl``) as repeated form fields, sends credentials as a header rather than through
    aiohttp's deprecated ``BasicAuth``, and raises :class:`Throttled` (with ``Retry-After``) on a 429.
    """

    def __init__(self, base_url: str | None, *, timeout: float | None = DEFAULT_TIMEOUT, **options: Any) -> None:
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
        timeout: float | None = None,  # noqa: ASYNC109 - twilio's HttpClient signature
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request to the rewritten URL."""
        if auth is not None:
            headers = {**(headers or {}), "Authorization": basic_authorization(*auth)}
        response: Response = await super().request(
            method,
            rewrite_url(url, self.base_url),
            params=params,
            data=form_pairs(data),
            headers=headers,
            auth=None,
            timeout=self.timeout if timeout is None else timeout,
            allow_redirects=allow_redirects,
        )
        if response.status_code == 429:
            retry_after = retry_after_seconds((response.headers or {}).get("Retry-After"))
            raise Throttled(retry_after, code=_twilio_code(response.text))
        return response


def twilio_client(
    account_sid: str, auth_token: str, *, api_url: str | None = None, timeout: float | None = DEFAULT_TIMEOUT
) -> Client:
    """A real twilio ``Client`` on :class:`RewritingAsyncHttpClient`, its requests going to ``api_url``.

    None or the public URL mean Twilio itself. Call it inside the event loop that will use it, use the ``*_async``
    methods, and close it with ``await client.http_client.close()``.
    """
    base_url = None if api_url is None or api_url.rstrip("/") == TWILIO_API_URL else api_url
    return Client(account_sid, auth_token, http_client=RewritingAsyncHttpClient(base_url, timeout=timeout))
