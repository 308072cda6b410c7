"""The real aiogram ``Bot``, pointed at ``TELEGRAM_API_URL`` (the public Bot API, a local Bot API server, a fake)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.methods.base import Response
from aiogram.types import Message

from channels.network import SEND_TIMEOUT

TELEGRAM_API_URL = "https://api.telegram.org"
#: pydantic keeps parametrised generic models in a weak cache, so unless someone holds ``Response[Message]`` aiogram
#: rebuilds that model class (schema and all: ~4 ms) for the next answer it reads whenever the garbage collector has
#: dropped it, which in a busy worker is every few messages sent. Holding them here keeps one of each for good.
_RESPONSE_MODELS = (Response[Message], Response[bool])
#: Seconds a Bot API call may take before it counts as a failure whose outcome is unknown (channels/network.py).
DEFAULT_TIMEOUT = SEND_TIMEOUT


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
