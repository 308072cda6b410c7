"""Load as the providers make it, and the ledger a scenario's figures come from.

Patients write on Telegram (update JSON to ``/webhooks/telegram``) and WhatsApp (signed Twilio forms to
``/webhooks/whatsapp``), spread over the gateways. Like the real providers, an update that was not answered 2xx is
delivered again, the same update, a little later: so "lost" means an update answered 200 that is not in the
database, or one never answered 200 however often it was retried.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from tests.chaos.stack import CLINIC_WHATSAPP, TWILIO_SID, TWILIO_TOKEN, WEBHOOK_SECRET, Stack

#: What patients write while the faults happen: each gets an answer from the bot without starting a booking.
PHRASES = ("Hello", "What are your opening hours?", "Thank you", "help")


@dataclass
class Post:
    """One inbound update/message and what the gateways answered to its deliveries."""

    channel: str
    external_id: str
    chat: str
    statuses: list[int | str] = field(default_factory=list)
    acknowledged_at: float | None = None  # time.monotonic() of its 200

    @property
    def acknowledged(self) -> bool:
        return 200 in self.statuses


@dataclass
class Ledger:
    """Everything posted, and every answer it got."""

    posts: list[Post] = field(default_factory=list)

    def count(self, channel: str | None = None) -> int:
        return sum(1 for p in self.posts if channel is None or p.channel == channel)

    @property
    def server_errors(self) -> int:
        return sum(1 for p in self.posts for s in p.statuses if isinstance(s, int) and s >= 500)

    @property
    def refused(self) -> Counter[str]:
        """Answers other than 200 (status, or the connection error's name), for the report."""
        return Counter(str(s) for p in self.posts for s in p.statuses if s != 200)

    def first_acknowledged_after(self, moment: float) -> float | None:
        """When the first update answered 200 after ``moment`` was answered (None: none was)."""
        return min((p.acknowledged_at for p in self.posts if p.acknowledged_at and p.acknowledged_at > moment),
                   default=None)  # fmt: skip

    def never_acknowledged(self) -> list[Post]:
        return [p for p in self.posts if not p.acknowledged]


_update_ids = itertools.count(700_000_000 + secrets.randbelow(10**8))


def telegram_update(chat: int, text: str) -> tuple[str, dict[str, Any]]:
    update_id = next(_update_ids)
    sender = {"id": chat, "is_bot": False, "first_name": "Pasien", "last_name": str(chat), "language_code": "en"}
    body = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": sender,
            "chat": {"id": chat, "type": "private", "first_name": "Pasien"},
            "date": int(datetime.now(UTC).timestamp()),
            "text": text,
        },
    }
    return f"{chat}:{update_id}", body


def whatsapp_form(number: str, text: str) -> tuple[str, dict[str, str]]:
    sid = "SM" + secrets.token_hex(16)
    form = {
        "SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Pasien WA", "MessageType": "text", "SmsSid": sid,
        "WaId": number.removeprefix("+"), "SmsStatus": "received", "Body": text, "To": CLINIC_WHATSAPP,
        "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": TWILIO_SID,
        "From": f"whatsapp:{number}", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    return sid, form


class Patients:
    """Chats writing at a human pace to the gateways, each message redelivered until it is answered 200."""

    def __init__(self, stack: Stack, ledger: Ledger, *, retry_every: float = 1.0, give_up_after: float = 120) -> None:
        self.stack = stack
        self.ledger = ledger
        self.retry_every = retry_every
        self.give_up_after = give_up_after
        self._rng = random.Random(7)
        self._next_gateway = itertools.count()
        self._pending: set[asyncio.Future[Post]] = set()

    def _gateway(self) -> str:
        live = self.stack.gateways
        base = live[next(self._next_gateway) % len(live)].base
        assert base is not None
        return base

    async def _deliver(self, http: aiohttp.ClientSession, post: Post, send: Callable[[str], Awaitable[int]]) -> None:
        """Deliver until a 200, as the providers do (a later attempt may reach the other gateway)."""
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            try:
                status: int | str = await send(self._gateway())
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = type(exc).__name__
            post.statuses.append(status)
            if status == 200:
                post.acknowledged_at = time.monotonic()
                return
            await asyncio.sleep(self.retry_every)

    async def telegram(self, http: aiohttp.ClientSession, chat: int, text: str) -> Post:
        external_id, body = telegram_update(chat, text)
        post = Post("telegram", external_id, str(chat))
        self.ledger.posts.append(post)
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}

        async def send(base: str) -> int:
            async with http.post(f"{base}/webhooks/telegram", json=body, headers=headers) as response:
                await response.read()
                return response.status

        await self._deliver(http, post, send)
        return post

    async def whatsapp(self, http: aiohttp.ClientSession, number: str, text: str) -> Post:
        sid, form = whatsapp_form(number, text)
        post = Post("whatsapp", sid, f"whatsapp:{number}")
        self.ledger.posts.append(post)

        async def send(base: str) -> int:
            signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{base}/webhooks/whatsapp", form)
            headers = {"X-Twilio-Signature": signature}
            async with http.post(f"{base}/webhooks/whatsapp", data=form, headers=headers) as response:
                await response.read()
                return response.status

        await self._deliver(http, post, send)
        return post

    async def write(
        self,
        *,
        telegram_chats: list[int],
        whatsapp_numbers: tuple[str, ...] | list[str] = (),
        seconds: float,
        pace: float,
    ) -> None:
        """Every chat writes every ~``pace`` s for ``seconds``; returns when every message has been answered 200
        (or given up on after ``give_up_after``)."""
        stop = time.monotonic() + seconds
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=100)) as http:

            async def chat(say: Callable[[str], Awaitable[Post]]) -> None:
                await asyncio.sleep(self._rng.uniform(0, pace))
                while time.monotonic() < stop:
                    began = time.monotonic()
                    task = asyncio.ensure_future(say(self._rng.choice(PHRASES)))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
                    await asyncio.sleep(max(0.05, pace - (time.monotonic() - began)) * self._rng.uniform(0.8, 1.2))

            writers = [chat(functools.partial(self.telegram, http, c)) for c in telegram_chats]
            writers += [chat(functools.partial(self.whatsapp, http, n)) for n in whatsapp_numbers]
            await asyncio.gather(*writers)
            while self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)


def new_chats(count: int) -> list[int]:
    first = 600_000_000 + secrets.randbelow(10**8)
    return list(range(first, first + count))


def new_numbers(count: int) -> list[str]:
    return [f"+62813{secrets.randbelow(10**8):08d}" for _ in range(count)]


# --- what arrived where ----------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """Outbox rows against the copies the providers accepted, matched by recipient and text."""

    rows: int = 0
    unsent: list[tuple[int, str, str]] = field(default_factory=list)  # (id, recipient, status) not 'sent'
    missing: int = 0  # sent rows the provider has no copy of
    #: (recipient, text, rows planned with it, when each copy was accepted) where copies outnumber rows
    extra: list[tuple[str, str, int, list[float]]] = field(default_factory=list)
    #: rows (by recipient and text) the outbox marked uncertain: a send of theirs may have reached the provider
    #: unheard (a timeout, a sender that died before recording it); each may give one extra copy, by the policy
    uncertain: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return len(self.unsent) + self.missing

    @property
    def duplicated(self) -> int:
        return sum(len(times) - planned for _, _, planned, times in self.extra)

    def within(self, moments: list[float], *, before: float) -> int:
        """Extra copies a fault could explain: the provider accepted a copy at most ``before`` seconds before one of
        ``moments`` (a kill, a crash), i.e. it took the message and the sender died (or lost its database) before
        recording it: the documented at-least-once window."""
        explained = 0
        for recipient, text, planned, times in self.extra:
            # The provider may take the message just after the kill too: the request was in flight.
            near = sum(1 for at in times if any(-before <= moment - at <= before for moment in moments))
            explained += min(len(times) - planned, max(near, self.uncertain[(recipient, text)]))
        return explained


def accepted(stack: Stack) -> list[tuple[str, str, float]]:
    """(recipient as the outbox writes it, text, when accepted) for every message a provider accepted."""
    found: list[tuple[str, str, float]] = []
    for entry in stack.telegram.sent_messages():
        text = str(entry.params.get("text", entry.params.get("caption", "")))
        found.append((str(entry.params["chat_id"]), text, entry.at))
    for entry in stack.twilio.sent_messages():
        found.append((str(entry.params.get("To")), str(entry.params.get("Body", "")), entry.at))
    return found


def _normal(recipient: str) -> str:
    return recipient.removeprefix("whatsapp:")


async def delivery(stack: Stack) -> Delivery:
    """Compare every outbox row with what the providers accepted: lost (unsent, or sent with no copy) and extra
    copies. Texts are compared by their first line (a WhatsApp rendering adds numbered options below)."""
    rows = await stack.query(
        "SELECT id, channel, recipient, status, payload->>'text' AS text, uncertain_at IS NOT NULL AS uncertain "
        "FROM outbox ORDER BY id"
    )
    result = Delivery(rows=len(rows))
    planned: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["uncertain"]:
            result.uncertain[(_normal(row["recipient"]), (row["text"] or "").split("\n")[0])] += 1
        if row["status"] != "sent":
            result.unsent.append((row["id"], row["recipient"], row["status"]))
        else:
            planned[(_normal(row["recipient"]), (row["text"] or "").split("\n")[0])] += 1
    got: dict[tuple[str, str], list[float]] = {}
    for recipient, text, at in accepted(stack):
        got.setdefault((_normal(recipient), text.split("\n")[0]), []).append(at)
    for key, times in got.items():
        if len(times) > planned.get(key, 0) > 0:
            result.extra.append((key[0], key[1], planned[key], sorted(times)))
    for key, count in planned.items():
        result.missing += max(0, count - len(got.get(key, [])))
    return result


async def ingest_lost(stack: Stack, ledger: Ledger) -> tuple[int, int]:
    """(acknowledged updates not in the database, updates never acknowledged)."""
    stored = {r["external_id"] for r in await stack.query("SELECT external_id FROM messages WHERE direction = 'in'")}
    missing = sum(1 for p in ledger.posts if p.acknowledged and p.external_id not in stored)
    return missing, len(ledger.never_acknowledged())


async def unanswered(stack: Stack) -> int:
    rows = await stack.query("SELECT count(*) AS n FROM messages WHERE direction = 'in' AND processed_at IS NULL")
    return int(rows[0]["n"])
