"""Point Telegram at our webhook: ``setWebhook`` with the secret token and only the update types we handle."""

from __future__ import annotations

from aiogram.exceptions import AiogramError

from channels.telegram.adapter import HANDLED_UPDATES
from channels.telegram.client import make_bot


class WebhookSetupError(Exception):
    """Telegram did not take the webhook (bad token, non-HTTPS URL, unreachable API); the message says why."""


async def set_webhook(*, token: str, secret: str, url: str, api_url: str | None = None) -> None:
    """Ask Telegram to POST updates to ``url`` with ``X-Telegram-Bot-Api-Secret-Token: secret``.

    ``allowed_updates`` is :data:`HANDLED_UPDATES`, so Telegram does not even send what we would ignore.
    Pending updates are kept: messages patients sent while the webhook was being changed still arrive.
    """
    if not secret:
        raise WebhookSetupError("a webhook secret is required: without it anyone could post fake updates")
    try:
        bot = make_bot(token, api_url=api_url)
    except ValueError as exc:  # aiogram's TokenValidationError
        raise WebhookSetupError(f"the bot token is not valid: {exc}") from None
    try:
        await bot.set_webhook(url, secret_token=secret, allowed_updates=list(HANDLED_UPDATES))
    except (AiogramError, OSError, TimeoutError) as exc:
        raise WebhookSetupError(f"Telegram refused the webhook {url}: {exc}") from None
    finally:
        await bot.session.close()
