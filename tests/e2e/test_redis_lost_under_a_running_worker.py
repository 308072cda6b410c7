"""Redis loses its data under a running worker (restarted empty, or flushed): the worker does not wait for its
next sweep or housekeeping round. It notices at once, registers itself again, and rebuilds: what was due goes out
and the reminders are scheduled again.

The sweep is set to every ten minutes here, so only the worker's reaction to the loss can explain the recovery.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis import Redis
from rq import Worker
from rq.job import Job

from booking_core.db.tables import ChannelIdentity
from booking_core.domain.actors import Actor
from booking_core.domain.messages import OutboundMessage
from booking_core.services import booking, outbox, reminders
from devtools.builders import build_clinic, next_weekday
from infra import queues
from tests import servers
from tests.e2e import faults_support as faults
from tests.e2e.faults_support import new_chat_id
from tests.waiting import eventually
from workers.reminders import job_id

pytestmark = pytest.mark.e2e

DESK = Actor(kind="staff", name="Reception", role="staff")


async def test_a_worker_rebuilds_at_once_when_redis_loses_its_data_under_it(isolated_env: dict[str, str]) -> None:
    async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
        env = faults.fault_env(isolated_env, telegram, FRONTDESK_SWEEP_EVERY="600")
        prefix = env["FRONTDESK_REDIS_PREFIX"]
        redis = Redis.from_url(env["REDIS_URL"])
        chat = new_chat_id()
        async with sessions() as db:
            clinic = await build_clinic(db)
            siti = clinic.patients["siti"]
            db.add(ChannelIdentity(patient_id=siti.id, channel="telegram", external_id=str(chat),
                                   display_name="Siti", last_inbound_at=datetime.now(UTC)))  # fmt: skip
            await db.commit()
        async with sessions() as desk, desk.begin():
            visit = await booking.book(
                desk, actor=DESK, branch_id=clinic.branch.id, patient_id=siti.id,
                examination_ids=[clinic.examinations["GP"].id], start=next_weekday(2, hour=10, weeks=2),
            )  # fmt: skip
        async with sessions() as look:
            ahead = await reminders.scheduled_for_sessions(look, [visit.id])
        reminder_jobs = [job_id(prefix, due) for due in ahead]
        assert len(reminder_jobs) == 2

        async with servers.running(env, "worker"):
            await eventually(
                lambda: all(Job.exists(one, connection=redis) for one in reminder_jobs), what="the reminders"
            )
            await eventually(lambda: Worker.all(connection=redis), what="the worker to register")

            # Only this run's keys go (the machine's Redis is shared): as far as the worker can tell, Redis restarted
            # empty.
            for key in redis.scan_iter(f"{prefix}*"):
                redis.delete(key)
            for key in redis.scan_iter("rq:*"):
                redis.delete(key)
            # ... and while it was empty, a reply was planned whose delivery job was lost with it.
            async with sessions() as db, db.begin():
                lost = await outbox.add(db, OutboundMessage(channel="telegram", recipient=str(chat), text="Noted!"))
            assert lost is not None

            await eventually(lambda: telegram.sent_messages(chat), seconds=60, what="the lost reply to go out")
            await eventually(
                lambda: all(Job.exists(one, connection=redis) for one in reminder_jobs),
                seconds=60,
                what="the reminders to be scheduled again",
            )
            await eventually(lambda: Worker.all(connection=redis), seconds=30, what="the worker to register again")
            assert queues.queue_name(prefix, queues.OUTBOUND) in {
                q.name for w in Worker.all(connection=redis) for q in w.queues
            }
        assert [m.params["text"] for m in telegram.sent_messages(chat)] == ["Noted!"]
