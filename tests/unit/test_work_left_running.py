"""What a job leaves running when it returns (a delivery's record): waited for before the worker's next job, and
never for ever."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.runtime import Runtime


def runtime_on(loop: asyncio.AbstractEventLoop) -> Runtime:
    """A runtime with only its loop: this is all the loop's business."""
    nothing: Any = None
    return Runtime(settings=nothing, loop=loop, engine=nothing, sessionmaker=nothing, redis=nothing)


def test_the_next_job_starts_after_what_the_last_one_left_running() -> None:
    loop = asyncio.new_event_loop()
    rt = runtime_on(loop)
    happened: list[str] = []

    async def record() -> None:
        await asyncio.sleep(0.05)
        happened.append("row recorded as sent")

    async def next_job() -> None:
        happened.append("next job")

    rt.after_job(record())
    rt.run(next_job())

    assert happened == ["row recorded as sent", "next job"] and not rt.unfinished
    loop.close()


def test_work_that_hangs_is_cancelled_instead_of_holding_the_worker() -> None:
    loop = asyncio.new_event_loop()
    rt = runtime_on(loop)
    happened: list[str] = []

    async def record() -> None:
        happened.append("row recorded as sent")

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            happened.append("given up")
            raise

    rt.after_job(record())
    rt.after_job(hang())
    rt.finish_unfinished(seconds=0.2)

    assert sorted(happened) == ["given up", "row recorded as sent"] and not rt.unfinished
    loop.close()


def test_a_failure_after_the_job_is_logged_and_does_not_stop_the_next_job(caplog: Any) -> None:
    loop = asyncio.new_event_loop()
    rt = runtime_on(loop)

    async def record() -> None:
        raise ConnectionError("the database went away")

    async def next_job() -> str:
        return "ran"

    rt.after_job(record())
    assert rt.run(next_job()) == "ran"
    assert "work left running after a job failed" in caplog.text and not rt.unfinished
    loop.close()


def test_work_that_finished_while_the_worker_looked_away_is_not_waited_for() -> None:
    """The race the workers logged as "Set of Tasks/Futures is empty": the record finished (and took itself off
    the list) between the worker seeing it listed and waiting for it."""
    loop = asyncio.new_event_loop()
    rt = runtime_on(loop)

    async def record() -> None:
        return None

    async def job() -> None:  # a delivery hands its record over as it returns
        rt.after_job(record())

    rt.run(job())  # the record ran to its end as the loop stopped; taking it off the list is yet to happen
    assert rt.unfinished  # so it is still listed when finish_unfinished looks ...
    rt.finish_unfinished(seconds=1.0)  # ... and gone by the time it waits: no error
    assert not rt.unfinished
    loop.close()
