"""twilio's synchronous client pointed at a base URL, for tests that call the fake Twilio API from a thread.

Everything else is the channels' own: ``channels.telegram.client.make_bot`` for a Bot on any Bot API URL, and
``channels.whatsapp.client.twilio_client`` for the async twilio client the worker uses (both rewrite the public URLs
to ours). This adds only twilio's default sync HTTP client (requests), with the same URL rewriting.
"""

from __future__ import annotations

from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.whatsapp.client import DEFAULT_TIMEOUT, TWILIO_API_URL, rewrite_url


class RewritingHttpClient(TwilioHttpClient):
    """twilio's default (requests, sync) HTTP client, sending ``api.twilio.com`` requests to ``base_url``."""

    def __init__(self, base_url: str | None, *, timeout: float | None = DEFAULT_TIMEOUT, **options: Any) -> None:
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
            rewrite_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        return response


def sync_twilio_client(account_sid: str, auth_token: str, *, api_url: str | None = None) -> Client:
    """A real twilio ``Client`` on the sync HTTP client, its requests going to ``api_url`` (None: Twilio itself)."""
    base_url = None if api_url is None or api_url.rstrip("/") == TWILIO_API_URL else api_url
    return Client(account_sid, auth_token, http_client=RewritingHttpClient(base_url))
