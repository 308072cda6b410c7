"""The clinic's Telegram bot for delivery tests: the fake Bot API and the real adapter (aiogram) pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.telegram.adapter import TelegramAdapter
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram

BOT_TOKEN = "123456:clinic-bot-token"
WEBHOOK_SECRET = "clinic-webhook-secret_0123456789"


@dataclass
class Bot:
    fake: FakeTelegram
    adapter: TelegramAdapter

    def texts(self, chat: int | str) -> list[str]:
        """What the fake accepted for ``chat``, in order."""
        return [m.params["text"] for m in self.fake.sent_messages(int(chat))]


@contextlib.asynccontextmanager
async def running_bot() -> AsyncIterator[Bot]:
    async with running_fake_telegram(tokens={BOT_TOKEN}) as fake:
        adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=fake.base_url)
        try:
            yield Bot(fake, adapter)
        finally:
            await adapter.close()
