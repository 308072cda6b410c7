"""Settings: the one place that reads the environment.

Every variable of the contract in DESIGN.md is here. An invalid value stops the program with one line that names the
variable and says how to fix it (see :func:`load_settings`).

Not part of the public contract, for operators and tests (defaults suit production):

* ``FRONTDESK_REDIS_PREFIX``: prefix of every Redis key and queue name, so several apps (or test runs) share a Redis.
* ``FRONTDESK_METRICS_TOKEN``: when set (16+ characters), ``/metrics`` answers only scrapes that send
  ``Authorization: Bearer <token>``, from anywhere; unset (the default), only clients on this machine (loopback)
  get it. See gateway/metrics_access.py.
* ``FRONTDESK_SWEEP_EVERY``: seconds between two sweeps of a worker (default 30): the safety net that answers
  unanswered messages, re-enqueues due outbox rows and rebuilds reminder schedules after Redis lost them.
* ``FRONTDESK_OUTBOX_RECLAIM_AFTER``: seconds after which an outbox row still marked ``sending`` is taken to belong
  to a dead worker and is sent again (default 120). Keep it well above the longest provider call (the Telegram
  client gives up after 60 s), else a slow but live send could be repeated.
* ``FRONTDESK_HEALTH_INGEST_WITHIN``: seconds within which a write must commit, and the longest any write of ours
  (gateways', workers') may wait for a lock, before /health says ``ingest`` is failing (default 3).
* ``FRONTDESK_HEALTH_WORKER_SILENCE``: seconds without a heartbeat from any worker before /health says ``workers``
  is failing (default 60; never less than an idle worker's own gap between heartbeats, its housekeeping interval
  plus 5 s; also the grace after the gateway starts); 0 leaves the workers out of /health.
* ``FRONTDESK_HEALTH_OUTBOX_LAG``: seconds the oldest due outbox row may wait before /health says ``outbox`` is
  failing (default 120).
* ``FRONTDESK_HEALTH_IDLE_IN_TRANSACTION``: seconds a backend of this database may sit idle in a transaction
  (holding its locks) before /health says ``transactions`` is failing (default 10: below the 15 s after which
  PostgreSQL ends such a transaction of ours, so /health sees it first; anyone else's, e.g. a psql session, it
  names for as long as it lasts).
* ``FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS`` (default 20 per 10 minutes),
  ``FRONTDESK_WEBCHAT_NEW_VISITORS_PER_MINUTE`` (clinic-wide, default 600),
  ``FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS`` (per gateway, default 50) and ``FRONTDESK_WEBCHAT_STORE_WITHIN``
  (seconds a chat message may wait for the database, default 10): the web chat's limits (see gateway/webchat.py).
"""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_TWILIO_API_URL = "https://api.twilio.com"
DEV_SECRET_KEY = "frontdesk-dev-secret-change-me"


class SettingsError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseModel):
    """Frontdesk configuration, read once from the environment (no prefix, names as in DESIGN.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    FRONTDESK_HOME: Path = Path(".frontdesk")
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8080"
    SECRET_KEY: str = DEV_SECRET_KEY
    TELEGRAM_BOT_TOKEN: str | None = None
    TELEGRAM_WEBHOOK_SECRET: str | None = None
    TELEGRAM_API_URL: str = DEFAULT_TELEGRAM_API_URL
    TWILIO_ACCOUNT_SID: str | None = None
    TWILIO_AUTH_TOKEN: str | None = None
    TWILIO_WHATSAPP_FROM: str | None = None
    TWILIO_API_URL: str = DEFAULT_TWILIO_API_URL
    DEFAULT_LANGUAGE: Literal["en", "id"] = "en"
    # Not part of the public contract: lets tests and several apps share one Redis without colliding.
    FRONTDESK_REDIS_PREFIX: str = Field(default="fd", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    FRONTDESK_SWEEP_EVERY: float = Field(default=30.0, ge=1.0, le=3600.0)
    FRONTDESK_OUTBOX_RECLAIM_AFTER: float = Field(default=120.0, ge=1.0, le=86400.0)
    FRONTDESK_HEALTH_INGEST_WITHIN: float = Field(default=3.0, gt=0.0, le=60.0)
    FRONTDESK_HEALTH_WORKER_SILENCE: float = Field(default=60.0, ge=0.0, le=86400.0)
    FRONTDESK_HEALTH_OUTBOX_LAG: float = Field(default=120.0, gt=0.0, le=86400.0)
    FRONTDESK_HEALTH_IDLE_IN_TRANSACTION: float = Field(default=10.0, gt=0.0, le=86400.0)
    #: The bearer token a Prometheus sends for /metrics; None: /metrics is for loopback clients only.
    FRONTDESK_METRICS_TOKEN: str | None = Field(default=None, min_length=16, max_length=200)
    #: Addresses or networks (comma-separated, e.g. "127.0.0.1,10.0.0.0/8") of reverse proxies whose
    #: ``X-Forwarded-For`` is believed; empty (the default): the connection's own address is the client's.
    FRONTDESK_TRUSTED_PROXIES: tuple[IPv4Network | IPv6Network, ...] = ()
    #: Web chat: new visitors (a socket without a valid visitor token) one address may start per 10 minutes, and
    #: the whole clinic per minute; a socket over either limit is refused with a ``busy`` frame and ``retry_after``.
    FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS: int = Field(default=20, ge=1, le=1_000_000)
    FRONTDESK_WEBCHAT_NEW_VISITORS_PER_MINUTE: int = Field(default=600, ge=1, le=1_000_000)
    #: Web chat: sockets one address may hold open at once on one gateway (more: HTTP 429 with Retry-After).
    FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS: int = Field(default=50, ge=1, le=1_000_000)
    #: Web chat: seconds a message may wait for the database before the widget is told to send it again.
    FRONTDESK_WEBCHAT_STORE_WITHIN: float = Field(default=10.0, ge=0.1, le=120.0)

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user@127.0.0.1:5432/frontdesk")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("PUBLIC_BASE_URL", "TELEGRAM_API_URL", "TWILIO_API_URL")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("TELEGRAM_BOT_TOKEN")
    @classmethod
    def _telegram_token(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{1,20}:[A-Za-z0-9_-]{1,100}", value):
            raise ValueError("must look like 123456789:AAE... (the token @BotFather gave you)")
        return value

    @field_validator("TELEGRAM_WEBHOOK_SECRET")
    @classmethod
    def _telegram_secret(cls, value: str | None) -> str | None:
        # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and -.
        if value is not None and not (
            1 <= len(value) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in value)
        ):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ or -")
        return value

    @field_validator("FRONTDESK_METRICS_TOKEN", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        return value or None

    @field_validator("FRONTDESK_TRUSTED_PROXIES", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("must be a comma-separated list of addresses or networks, e.g. 10.0.0.0/8") from None
        return value

    @property
    def async_database_url(self) -> str | None:
        """The URL in the form SQLAlchemy's asyncpg dialect wants."""
        if self.DATABASE_URL is None:
            return None
        return to_asyncpg_url(self.DATABASE_URL)

    @property
    def home(self) -> Path:
        return self.FRONTDESK_HOME.expanduser().resolve()

    @property
    def telegram_enabled(self) -> bool:
        return self.TELEGRAM_BOT_TOKEN is not None

    @property
    def whatsapp_enabled(self) -> bool:
        return self.TWILIO_ACCOUNT_SID is not None and self.TWILIO_AUTH_TOKEN is not None

    def check_for_serving(self) -> None:
        """Refuse combinations the gateway must not start with."""
        if self.TELEGRAM_BOT_TOKEN and not self.TELEGRAM_WEBHOOK_SECRET:
            raise SettingsError(
                "TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_BOT_TOKEN is set: "
                "without it anyone could post fake updates to /webhooks/telegram"
            )
        if self.PUBLIC_BASE_URL.startswith("https://") and self.SECRET_KEY == DEV_SECRET_KEY:
            raise SettingsError("SECRET_KEY must be set to your own long random string before serving on https")
        if len(self.SECRET_KEY) < 16:
            raise SettingsError("SECRET_KEY is too short: use at least 16 random characters")
        if self.whatsapp_enabled and not self.TWILIO_WHATSAPP_FROM:
            raise SettingsError("TWILIO_WHATSAPP_FROM is required when Twilio credentials are set (whatsapp:+E164)")


def to_asyncpg_url(url: str) -> str:
    """postgresql://… → postgresql+asyncpg://… (other parts untouched)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``); raise :class:`SettingsError` naming the variable."""
    env = dict(os.environ if environ is None else environ)
    known = set(Settings.model_fields)
    values: dict[str, object] = {k: v for k, v in env.items() if k in known}
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name} is invalid: {message}") from None
