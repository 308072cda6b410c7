"""Telegram channel (aiogram 3): the adapter, the Bot pointed at ``TELEGRAM_API_URL``, and webhook setup."""

from channels.telegram.adapter import HANDLED_UPDATES, IGNORED_UPDATES, InvalidUpdate, TelegramAdapter
from channels.telegram.setup import WebhookSetupError, set_webhook

__all__ = ["HANDLED_UPDATES", "IGNORED_UPDATES", "InvalidUpdate", "TelegramAdapter", "WebhookSetupError", "set_webhook"]
