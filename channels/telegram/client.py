"""The real aiogram ``Bot``, pointed at ``TELEGRAM_API_URL`` (the public Bot API, a local Bot API server, a fake)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer

TELEGRAM_API_URL = "https://api.telegram.org"
#: Seconds a Bot API call may take before it counts as a (transient) network failure.
DEFAULT_TIMEOUT = 15.0


def api_server(api_url: str | None) -> TelegramAPIServer:
    """The Bot API endpoints under ``api_url``; None or the public URL mean Telegram itself."""
    if api_url is None or api_url.rstrip("/") == TELEGRAM_API_URL:
        return PRODUCTION
    return TelegramAPIServer.from_base(api_url.rstrip("/"))


def make_bot(token: str, *, api_url: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Bot:
    """A ``Bot`` talking to ``api_url``. It opens its HTTP session lazily; close it with ``await bot.session.close()``.

    Raises aiogram's ``TokenValidationError`` (a ``ValueError``) when ``token`` is not shaped like a bot token.
    """
    return Bot(token, session=AiohttpSession(api=api_server(api_url), timeout=timeout))
