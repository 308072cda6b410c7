"""Settings are read from the environment in one place and a bad value names its variable."""

from __future__ import annotations

import pytest

from infra.settings import SettingsError, load_settings


def test_defaults_need_nothing_from_the_environment() -> None:
    settings = load_settings({})
    assert settings.DATABASE_URL is None and settings.REDIS_URL is None
    assert settings.DEFAULT_LANGUAGE == "en"
    assert settings.TELEGRAM_API_URL == "https://api.telegram.org"
    assert settings.home.name == ".frontdesk"


def test_database_urls_are_turned_into_the_asyncpg_form() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://clinic:secret@db:5432/frontdesk"})
    assert settings.async_database_url == "postgresql+asyncpg://clinic:secret@db:5432/frontdesk"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/clinic"),
        ("REDIS_URL", "memcached://localhost"),
        ("PUBLIC_BASE_URL", "clinic.example"),
        ("TELEGRAM_API_URL", "ftp://api"),
        ("TELEGRAM_WEBHOOK_SECRET", "has spaces and ünïcode"),
        ("DEFAULT_LANGUAGE", "fr"),
    ],
)
def test_an_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable} is invalid"):
        load_settings({variable: value})


def test_a_bot_token_without_a_webhook_secret_cannot_serve() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "123:abc"})
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET is required"):
        settings.check_for_serving()


def test_the_development_secret_is_refused_on_https() -> None:
    settings = load_settings({"PUBLIC_BASE_URL": "https://clinic.example"})
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        settings.check_for_serving()


def test_empty_optional_values_count_as_unset() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "", "DATABASE_URL": "", "TWILIO_ACCOUNT_SID": ""})
    assert settings.TELEGRAM_BOT_TOKEN is None and settings.DATABASE_URL is None and not settings.whatsapp_enabled
