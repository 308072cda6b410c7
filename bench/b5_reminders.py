"""B5: 10,000 reminders due at the same moment, half to Telegram chats and half to WhatsApp numbers, delivered by
real `frontdesk worker` processes through the fake APIs enforcing the providers' published limits (429 beyond them).

The whole production path runs: reminder rows in PostgreSQL → their RQ schedules (made by the workers' start-up
sweep) → ``send_reminder`` at the due moment (claim the reminder, write the outbox row, then send it from the same
job: claim, shared rate limits in Redis, send, record) → a ``deliver`` job only for a message that has to wait.
Measured: the time from the due moment to the last message the fakes accept, against the least time the limits allow
(computed from the fakes' own limits: the busiest channel's messages at its per-bot / per-sender rate, channels in
parallel); every chat must get exactly one message, and fewer than 1 % of the send requests may be refused with 429.
Goal: ≤ 1.15× the minimum, 0 duplicates, < 1 % 429 answers.

The workers are warmed up first with a few reminders due 20 s earlier (a worker's first delivery imports aiogram and
twilio, which takes seconds), as workers that have been running for a while are; the fakes then forget them.

``python -m bench B5 --quick`` runs 1,000 reminders (a smoke test: the fixed second or two before the first and after
the last message weigh more in 16 s than in 166 s); ``FRONTDESK_B5_REMINDERS`` and ``FRONTDESK_B5_WORKERS`` override
the count and the number of worker processes; ``FRONTDESK_BENCH_LOG=/path`` keeps the workers' output.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import psutil
from redis import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.common import Report
from bench.processes import bench_env, running
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import (
    Branch,
    BranchHours,
    ChannelIdentity,
    Conversation,
    Doctor,
    Examination,
    Occupancy,
    OutboxMessage,
    Patient,
    Reminder,
    Room,
    Session,
    SessionLine,
)
from booking_core.domain.codes import new_booking_code
from booking_core.services.reminders import kind_for
from devtools import harness
from devtools.fakes.control import SlidingWindowLimit
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from devtools.fakes.twilio_api import FakeTwilio, running_fake_twilio
from infra import queues

REMINDERS = 10_000
QUICK_REMINDERS = 1_000
#: Worker processes. On this 2-core machine 2, 3 and 4 gave the same result when it was otherwise quiet (1.030×,
#: 1.040×, 1.035×): Telegram's limit sets the pace, not the workers. 3 leaves a worker free for WhatsApp while another
#: sits out a short wait for Telegram's window; more only adds processes competing for the two cores.
WORKERS = 3
DOCTORS = 100  # each with a room of their own: sessions spread over them so no two overlap
TOKEN = "555000111:bench-reminders"
SECRET = "bench-webhook-secret"
SID, AUTH = "AC" + "5" * 32, "bench-auth-token"
SENDER = "whatsapp:+14155238886"
FIRST_CHAT = 700_000_000
WARM_UP_PER_WORKER = 4


@dataclass(frozen=True)
class Recipients:
    telegram: list[int]  # chat ids
    whatsapp: list[str]  # E.164 numbers


def whatsapp_number(n: int) -> str:
    return f"+62819{n:07d}"


async def seed(engine: AsyncEngine, *, count: int, due_at: datetime, warm: int = 0, warm_at: datetime) -> Recipients:
    """``count`` patients, each with one chat identity (even: Telegram, odd: WhatsApp), an open conversation and
    one waiting session whose reminder falls due at ``due_at``; and ``warm`` more whose reminders fall due at
    ``warm_at``, to warm the workers up. Bulk inserts: 10,000 visits take seconds."""
    maker = make_sessionmaker(engine)
    recipients = Recipients([], [])
    async with maker() as db, db.begin():
        branch, exam, doctor_ids, room_ids = await _clinic(db)
        patient_ids = await _patients(db, count=count, warm=warm, recipients=recipients)
        await _visits(
            db, branch, exam, doctor_ids, room_ids, patient_ids, count=count, due_at=due_at, warm=warm, warm_at=warm_at
        )
    return recipients


async def _clinic(db: AsyncSession) -> tuple[Branch, Examination, list[int], list[int]]:
    """A branch open all day every day, one examination, and :data:`DOCTORS` doctors with a room each."""
    branch = Branch(
        code="BENCH-B5", name="Bench clinic", tz="Asia/Jakarta", currency="IDR", tax_rate=Decimal("0.11"),
        token_prefix="A", slot_step_min=15,
    )  # fmt: skip
    db.add(branch)
    await db.flush()
    db.add_all(BranchHours(branch_id=branch.id, weekday=d, opens=clock(0), closes=clock(23, 59)) for d in range(7))
    exam = Examination(
        code="GP-B5", name="General consultation", price=Decimal("150000"), currency="IDR", duration_min=30,
        room_kind="consultation", min_notice_min=0, horizon_days=60, keywords=[],
    )  # fmt: skip
    db.add(exam)
    await db.flush()
    doctor_ids = list(
        (
            await db.execute(
                insert(Doctor).returning(Doctor.id, sort_by_parameter_order=True),
                [{"name": f"dr. Bench {n + 1}"} for n in range(DOCTORS)],
            )
        ).scalars()
    )
    room_ids = list(
        (
            await db.execute(
                insert(Room).returning(Room.id, sort_by_parameter_order=True),
                [{"branch_id": branch.id, "name": f"Room {n + 1}", "kind": "consultation"} for n in range(DOCTORS)],
            )
        ).scalars()
    )
    return branch, exam, doctor_ids, room_ids


async def _patients(db: AsyncSession, *, count: int, warm: int, recipients: Recipients) -> list[int]:
    """The patients, their chat identities (written to inside WhatsApp's 24-hour window) and conversations; the
    first ``count`` are the recipients measured. Returns the patients' ids, in order."""
    last_inbound = datetime.now(UTC) - timedelta(hours=1)  # inside WhatsApp's 24-hour window: free text
    patients: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    for n in range(count + warm):
        if n % 2 == 0:
            chat = FIRST_CHAT + n
            if n < count:
                recipients.telegram.append(chat)
            patients.append({"name": f"Pasien {n}", "phone_e164": None, "language": "id"})
            identities.append({"channel": "telegram", "external_id": str(chat), "display_name": f"Pasien {n}"})
        else:
            number = whatsapp_number(n)
            if n < count:
                recipients.whatsapp.append(number)
            patients.append({"name": f"Pasien {n}", "phone_e164": number, "language": "id"})
            identities.append({"channel": "whatsapp", "external_id": number, "display_name": f"Pasien {n}"})
    patient_ids = list(
        (await db.execute(insert(Patient).returning(Patient.id, sort_by_parameter_order=True), patients)).scalars()
    )
    for identity, patient_id in zip(identities, patient_ids, strict=True):
        identity.update(patient_id=patient_id, last_inbound_at=last_inbound)
    identity_ids = list(
        (
            await db.execute(
                insert(ChannelIdentity).returning(ChannelIdentity.id, sort_by_parameter_order=True), identities
            )
        ).scalars()
    )
    await db.execute(
        insert(Conversation),
        [
            {"identity_id": i, "patient_id": p, "channel": ident["channel"], "language": "id", "dialog_state": {}}
            for i, p, ident in zip(identity_ids, patient_ids, identities, strict=True)
        ],
    )
    return patient_ids


async def _visits(
    db: AsyncSession,
    branch: Branch,
    exam: Examination,
    doctor_ids: list[int],
    room_ids: list[int],
    patient_ids: list[int],
    *,
    count: int,
    due_at: datetime,
    warm: int,
    warm_at: datetime,
) -> None:
    """One accepted visit per patient (occupancy, session, examination line) and its reminder, due at ``due_at``
    (the first ``count``) or ``warm_at`` (the ``warm`` others)."""
    # Visits from two hours after the due moment on, one doctor and room each per half hour; each visit's
    # reminder is due at the same moment (its offset is the time between the two).
    dues = [due_at] * count + [warm_at] * warm
    starts = [due_at + timedelta(hours=2, minutes=30 * (n // DOCTORS)) for n in range(count + warm)]
    occupancy_ids = list(
        (
            await db.execute(
                insert(Occupancy).returning(Occupancy.id, sort_by_parameter_order=True),
                [
                    {
                        "branch_id": branch.id,
                        "doctor_id": doctor_ids[n % DOCTORS],
                        "room_id": room_ids[n % DOCTORS],
                        "during": Range(start, start + timedelta(minutes=30), bounds="[)"),
                        "kind": "session",
                        "active": True,
                    }
                    for n, start in enumerate(starts)
                ],
            )
        ).scalars()
    )
    session_ids = list(
        (
            await db.execute(
                insert(Session).returning(Session.id, sort_by_parameter_order=True),
                [
                    {
                        "booking_code": new_booking_code(),
                        "occupancy_id": occupancy_ids[n],
                        "branch_id": branch.id,
                        "patient_id": patient_ids[n],
                        "doctor_id": doctor_ids[n % DOCTORS],
                        "room_id": room_ids[n % DOCTORS],
                        "starts_at": start,
                        "ends_at": start + timedelta(minutes=30),
                        "status": "waiting",
                        "accepted": True,
                    }
                    for n, start in enumerate(starts)
                ],
            )
        ).scalars()
    )
    await db.execute(
        insert(SessionLine),
        [
            {"session_id": s, "kind": "examination", "examination_id": exam.id, "name": exam.name,
             "unit_price": exam.price, "quantity": 1, "taxable": False, "position": 0}
            for s in session_ids
        ],
    )  # fmt: skip
    await db.execute(
        insert(Reminder),
        [
            {
                "session_id": s,
                "kind": kind_for(int((start - due).total_seconds()) // 60),
                "due_at": due,
                "status": "scheduled",
                "note": "",
            }
            for s, start, due in zip(session_ids, starts, dues, strict=True)
        ],
    )


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) used by the workers (this process's children), the bench database's PostgreSQL
    backends, the Redis server, this process (the fakes) and the whole machine."""

    workers: float
    postgres: float
    redis: float
    bench: float
    machine: float
    cores: int

    def __sub__(self, before: Cpu) -> Cpu:
        return Cpu(
            self.workers - before.workers,
            self.postgres - before.postgres,
            self.redis - before.redis,
            self.bench - before.bench,
            self.machine - before.machine,
            self.cores,
        )


def cpu_seconds(database: str) -> Cpu:
    def used(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:  # it ended meanwhile
            return 0.0
        return float(times.user + times.system)

    me = psutil.Process()
    postgres = redis = 0.0
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if command.startswith("postgres:") and f" {database} " in f"{command} ":
            postgres += used(process)
        elif "redis-server" in command:
            redis += used(process)
    machine = psutil.cpu_times()
    return Cpu(
        workers=sum(used(child) for child in me.children(recursive=True)),
        postgres=postgres,
        redis=redis,
        bench=used(me),
        machine=float(machine.user + machine.system + getattr(machine, "nice", 0.0)),
        cores=psutil.cpu_count() or 1,
    )


def least_time(count: int, limit: SlidingWindowLimit) -> float:
    """The least time between the first and the last of ``count`` messages under a sliding-window limit: full
    windows back to back, so the last message starts window number ceil(count / limit)."""
    return (math.ceil(count / limit.limit) - 1) * limit.period if count else 0.0


def scheduled_reminders(connection: Redis, prefix: str) -> int:
    """How many reminder jobs are waiting in RQ's schedule (the workers' start-up sweep makes them)."""
    key = f"rq:scheduled:{queues.queue_name(prefix, queues.DEFAULT)}"
    members = cast("list[bytes]", connection.zrange(key, 0, -1))
    return sum(b"-reminder-" in member for member in members)


def accepted(telegram: FakeTelegram, twilio: FakeTwilio, recipients: Recipients) -> tuple[list[Any], list[Any]]:
    """The messages the fakes accepted for the due reminders' recipients (not a late warm-up message)."""
    chats, numbers = set(recipients.telegram), {f"whatsapp:{n}" for n in recipients.whatsapp}
    return (
        [m for m in telegram.sent_messages() if m.params.get("chat_id") in chats],
        [m for m in twilio.sent_messages() if m.params.get("To") in numbers],
    )


async def run(engine: AsyncEngine, backing: harness.Backing, *, quick: bool = False) -> Report:
    count = int(os.environ.get("FRONTDESK_B5_REMINDERS", QUICK_REMINDERS if quick else REMINDERS))
    workers = int(os.environ.get("FRONTDESK_B5_WORKERS", WORKERS))
    report = Report(f"B5  {count:,} reminders due at the same moment, Telegram + WhatsApp, limits enforced")
    database_url = engine.url.render_as_string(hide_password=False)
    prefix = f"fdb{harness.new_name('')[-6:]}"
    # Time to seed, for the workers' first sweep to put every reminder on RQ's schedule, and to warm the workers up
    # (imports, templates, pools, channel clients: a cold worker's first delivery takes seconds) with a few reminders
    # due earlier, as workers that have been running for a while are.
    lead = 45 + count * 0.004
    due_at = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    warm = WARM_UP_PER_WORKER * workers
    recipients = await seed(engine, count=count, due_at=due_at, warm=warm, warm_at=due_at - timedelta(seconds=20))
    redis = Redis.from_url(backing.redis_url())
    async with (
        running_fake_telegram(0, enforce_limits=True) as telegram,
        running_fake_twilio(0, accounts={SID: AUTH}, enforce_limits=True) as twilio,
    ):
        env = bench_env(
            database_url,
            backing.redis_url(),
            prefix,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            TELEGRAM_API_URL=telegram.base_url,
            TWILIO_ACCOUNT_SID=SID,
            TWILIO_AUTH_TOKEN=AUTH,
            TWILIO_WHATSAPP_FROM=SENDER,
            TWILIO_API_URL=twilio.base_url,
        )
        with ExitStack() as stack:
            for _ in range(workers):
                log = Path(os.environ["FRONTDESK_BENCH_LOG"]) if os.environ.get("FRONTDESK_BENCH_LOG") else None
                stack.enter_context(running(["-m", "frontdesk", "worker"], env, log=log))
            while scheduled_reminders(redis, prefix) < count and datetime.now(UTC) < due_at:
                await asyncio.sleep(0.2)
            on_schedule = scheduled_reminders(redis, prefix)
            while len(telegram.sent_messages()) + len(twilio.sent_messages()) < warm:
                if datetime.now(UTC) > due_at - timedelta(seconds=1):
                    break
                await asyncio.sleep(0.2)
            warmed = len(telegram.sent_messages()) + len(twilio.sent_messages())
            telegram.reset()  # only the due reminders' messages count from here on
            twilio.reset()
            # The due moment on the fakes' clock (time.monotonic, which is what they stamp each request with).
            due_mono = time.monotonic() + (due_at - datetime.now(UTC)).total_seconds()
            deadline = due_mono + 3 * least_time(count // 2, telegram.limits["bot"]) + 120
            while datetime.now(UTC) < due_at:
                await asyncio.sleep(0.05)
            cpu_before = cpu_seconds(engine.url.database or "")
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                if len(telegram.sent_messages()) + len(twilio.sent_messages()) >= count:
                    break
            cpu = cpu_seconds(engine.url.database or "") - cpu_before
            # Anything still on its way (a duplicate would be): a last look after a short wait.
            await asyncio.sleep(2)
            to_telegram, to_whatsapp = accepted(telegram, twilio, recipients)
            refused = telegram.throttled_count + twilio.throttled_count
            requests = len(telegram.requests_for("sendMessage")) + len(twilio.requests_for("Messages.create"))
    async with make_sessionmaker(engine)() as db:
        outbox_states = dict(
            (await db.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))).all()
        )
    redis.close()

    seen = Observed(
        count=count, workers=workers, due_at=due_at, recipients=recipients, on_schedule=on_schedule, warm=warm,
        warmed=warmed, due_mono=due_mono, to_telegram=to_telegram, to_whatsapp=to_whatsapp, refused=refused,
        requests=requests, telegram_limit=telegram.limits["bot"], whatsapp_limit=twilio.limits["sender"], cpu=cpu,
        outbox_states=outbox_states,
    )  # fmt: skip
    return _judged(report, seen)


@dataclass(frozen=True)
class Observed:
    """What one run saw: the reminders and workers, how ready they were at the due moment, what the fakes accepted
    (stamped on their monotonic clock, as ``due_mono`` is), the CPU it took and the outbox afterwards."""

    count: int
    workers: int
    due_at: datetime
    recipients: Recipients
    on_schedule: int
    warm: int
    warmed: int
    due_mono: float
    to_telegram: list[Any]
    to_whatsapp: list[Any]
    refused: int
    requests: int
    telegram_limit: SlidingWindowLimit
    whatsapp_limit: SlidingWindowLimit
    cpu: Cpu
    outbox_states: dict[str, int]


def _judged(report: Report, seen: Observed) -> Report:
    """The figures of a run against the goals (all delivered, ≤ 1.15× the least time the limits allow, no
    duplicate, < 1 % 429 answers), written into ``report``."""
    count, recipients, due_mono, cpu = seen.count, seen.recipients, seen.due_mono, seen.cpu
    to_telegram, to_whatsapp, refused, requests = seen.to_telegram, seen.to_whatsapp, seen.refused, seen.requests
    per_chat = Counter(m.params.get("chat_id") for m in to_telegram)
    per_number = Counter(str(m.params.get("To", "")).removeprefix("whatsapp:") for m in to_whatsapp)
    duplicates = sum(n - 1 for n in per_chat.values() if n > 1) + sum(n - 1 for n in per_number.values() if n > 1)
    missing = len(set(recipients.telegram) - set(per_chat)) + len(set(recipients.whatsapp) - set(per_number))
    telegram_minimum = least_time(len(recipients.telegram), seen.telegram_limit)
    whatsapp_minimum = least_time(len(recipients.whatsapp), seen.whatsapp_limit)
    minimum = max(telegram_minimum, whatsapp_minimum)
    every = [m.at for m in to_telegram + to_whatsapp]
    done = len(every) == count and missing == 0
    elapsed = max(every) - due_mono if every else float("inf")
    first = min(every) - due_mono if every else float("inf")
    telegram_last = max((m.at for m in to_telegram), default=due_mono) - due_mono
    whatsapp_last = max((m.at for m in to_whatsapp), default=due_mono) - due_mono
    ratio = elapsed / minimum if minimum else float("inf")
    share = refused / requests if requests else 0.0
    report.ok = done and ratio <= 1.15 and duplicates == 0 and share < 0.01
    report.add(
        "reminders",
        f"{count:,} due at {seen.due_at:%H:%M:%S} UTC ({len(recipients.telegram):,} Telegram chats, "
        f"{len(recipients.whatsapp):,} WhatsApp numbers); {seen.workers} worker processes; "
        f"{seen.on_schedule:,} on RQ's schedule before the due moment, workers warmed with {seen.warmed} of "
        f"{seen.warm} earlier ones",
    )
    report.add(
        "delivered",
        f"{len(every):,} messages, first {first:.2f} s, last {elapsed:.1f} s after the due moment "
        f"(Telegram done at {telegram_last:.1f} s, WhatsApp at {whatsapp_last:.1f} s); missing {missing}",
    )
    report.add(
        "theoretical minimum",
        f"{minimum:.1f} s: Telegram {len(recipients.telegram):,} at {seen.telegram_limit.limit}/s per bot "
        f"= {telegram_minimum:.1f} s, WhatsApp {len(recipients.whatsapp):,} at "
        f"{seen.whatsapp_limit.limit}/s per sender = {whatsapp_minimum:.1f} s, in parallel",
    )
    report.add("ratio", f"{ratio:.3f}× the minimum (goal ≤ 1.15×)")
    report.add("duplicates", f"{duplicates} (one message per chat and number required)")
    report.add("429 answers", f"{refused} of {requests:,} send requests = {share:.2%} (goal < 1 %)")
    report.add("outbox", ", ".join(f"{state} {n:,}" for state, n in sorted(seen.outbox_states.items())))
    report.add(
        "CPU while delivering",
        f"workers {cpu.workers:.0f} s ({cpu.workers / count * 1000:.1f} ms a message), "
        f"PostgreSQL {cpu.postgres:.0f} s, Redis {cpu.redis:.0f} s, fakes {cpu.bench:.0f} s; "
        f"the whole machine {cpu.machine:.0f} s of the "
        f"{cpu.cores * elapsed:.0f} s its {cpu.cores} cores had (the rest of its load included)",
    )
    return report
