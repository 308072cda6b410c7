"""Channel adapters, built once per process from settings: a table channel → adapter, nothing else knows which."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from infra.settings import Settings

if TYPE_CHECKING:  # the adapters themselves are imported when built: aiogram's and twilio's imports are slow
    from channels.base import Channel, ChannelAdapter


def _telegram(settings: Settings, redis: Redis) -> ChannelAdapter:
    from channels.telegram.adapter import TelegramAdapter

    assert settings.TELEGRAM_BOT_TOKEN is not None and settings.TELEGRAM_WEBHOOK_SECRET is not None
    return TelegramAdapter(
        token=settings.TELEGRAM_BOT_TOKEN,
        webhook_secret=settings.TELEGRAM_WEBHOOK_SECRET,
        api_url=settings.TELEGRAM_API_URL,
    )


def _whatsapp(settings: Settings, redis: Redis) -> ChannelAdapter:
    from channels.whatsapp.adapter import WhatsAppAdapter

    assert settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_WHATSAPP_FROM
    return WhatsAppAdapter(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        sender=settings.TWILIO_WHATSAPP_FROM,
        api_url=settings.TWILIO_API_URL,
        public_base_url=settings.PUBLIC_BASE_URL,
    )


def _webchat(settings: Settings, redis: Redis) -> ChannelAdapter:
    from channels.webchat.adapter import WebchatAdapter

    return WebchatAdapter(redis=redis, prefix=settings.FRONTDESK_REDIS_PREFIX)


#: (channel, is it configured?, how to build it)
FACTORIES: tuple[tuple[Channel, Callable[[Settings], bool], Callable[[Settings, Redis], ChannelAdapter]], ...] = (
    ("telegram", lambda s: s.telegram_enabled, _telegram),
    ("whatsapp", lambda s: s.whatsapp_enabled, _whatsapp),
    ("webchat", lambda s: True, _webchat),
)


def build_adapters(settings: Settings, redis: Redis) -> dict[Channel, ChannelAdapter]:
    """The configured channels' adapters (webchat always; Telegram and WhatsApp when their credentials are set)."""
    return {name: build(settings, redis) for name, enabled, build in FACTORIES if enabled(settings)}


async def close_adapters(adapters: dict[Channel, ChannelAdapter]) -> None:
    for adapter in adapters.values():
        await adapter.close()
