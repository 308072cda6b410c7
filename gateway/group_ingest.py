"""Group commit for inbound messages: those that arrive together are stored in one transaction.

Every message must be committed (and its WAL flushed) before the provider hears back. One transaction per message
makes that flush, and any lock a commit takes, the limit on how many messages a second the gateway can take. Here a
few "lanes" store messages from known chats: a lane takes everything waiting, stores it in one transaction
(``ingest.receive_known_chats``), answers each waiting request, and goes again while messages are waiting. A
message that arrives at a quiet moment finds a free lane and is stored at once; under load, each commit carries the
messages that arrived while the previous one was being flushed. Each request still gets its answer only after its
own message is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from booking_core.db.raw import RawDb
from booking_core.domain.messages import InboundMessage
from booking_core.services import ingest

log = logging.getLogger(__name__)

#: Transactions in flight at once: enough to keep PostgreSQL busy while one of them waits for its flush.
LANES = 4
#: Messages in one transaction at most: a long transaction holds its chats' rows for longer.
MAX_BATCH = 32

_Waiting = tuple[InboundMessage, "asyncio.Future[ingest.Received | None]"]


class GroupIngest:
    def __init__(self, raw: RawDb, *, lanes: int = LANES, max_batch: int = MAX_BATCH) -> None:
        self._raw = raw
        self._lanes = lanes
        self._max_batch = max_batch
        self._waiting: deque[_Waiting] = deque()
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def receive(self, inbound: InboundMessage) -> ingest.Received | None:
        """Store ``inbound`` if it is from a known chat (see ``ingest.receive_known_chats``); committed on return."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ingest.Received | None] = loop.create_future()
        self._waiting.append((inbound, answer))
        if self._busy < self._lanes:
            self._busy += 1
            lane = loop.create_task(self._lane())
            self._tasks.add(lane)
            lane.add_done_callback(self._tasks.discard)
        return await answer

    async def _lane(self) -> None:
        try:
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(self._max_batch, len(self._waiting)))]
                await self._store(batch)
        finally:
            self._busy -= 1

    async def _store(self, batch: list[_Waiting]) -> None:
        try:
            results = await ingest.receive_known_chats(self._raw, [inbound for inbound, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _answer(batch[0][1], error=exc)
                return
            # Nothing of the batch was stored; one message may have spoiled it for all: store each on its own.
            log.warning("storing %d inbound messages together failed (%s); storing them one by one", len(batch), exc)
            for waiting in batch:
                await self._store([waiting])
            return
        except BaseException:  # cancelled (the gateway is stopping): nobody may wait forever
            for _, answer in batch:
                _answer(answer, error=ConnectionAbortedError("the gateway is stopping"))
            raise
        for (_, answer), result in zip(batch, results, strict=True):
            _answer(answer, result=result)


def _answer(
    answer: asyncio.Future[ingest.Received | None],
    *,
    result: ingest.Received | None = None,
    error: BaseException | None = None,
) -> None:
    if answer.done():  # the request went away (cancelled); its message is stored all the same
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)
