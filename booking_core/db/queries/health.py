"""What /health and /metrics ask PostgreSQL: can a write be committed, is anything stuck, how far behind is the outbox.

Plain asyncpg (the gateway's small pools), read-only except :func:`commit_probe`. Every query is bounded by what is
outstanding (unsent outbox rows through the partial index ``ix_outbox_due``, backends of this database), never by
history, except :func:`outbox_totals`, which counts every row and is meant to be asked rarely.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from booking_core.db.raw import RawDb

#: A transaction that writes to the WAL and commits, without a table to write to: it is given a transaction id and
#: commits with the same durability as an ingest (``synchronous_commit``, synchronous standbys), so it fails or hangs
#: when the database cannot commit a write (in recovery after a failover, WAL disk full, standby gone), and it takes
#: no row lock, so the probe never queues behind patients' messages nor holds them up. A database set read-only is
#: asked directly (a WAL message is allowed in a read-only transaction; an ingest is not).
_COMMIT_PROBE = (
    "SELECT current_setting('transaction_read_only') = 'on', pg_logical_emit_message(true, 'frontdesk.health', '')"
)
#: Where that function is not granted (some managed services): a transaction id alone (committed, not flushed).
_COMMIT_PROBE_PLAIN = "SELECT current_setting('transaction_read_only') = 'on', pg_current_xact_id()"


class ReadOnlyDatabase(Exception):
    """The database takes no writes (``default_transaction_read_only``, or a standby)."""


async def commit_probe(raw: RawDb) -> None:
    """Commit one write-like transaction on ``raw`` (the ingest's own pool); raise when that is refused."""
    async with raw.acquire() as connection, connection.transaction():
        try:
            async with connection.transaction():  # a savepoint: a refused function must not spoil the probe
                read_only = await connection.fetchval(_COMMIT_PROBE)
        except (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedFunctionError):
            read_only = await connection.fetchval(_COMMIT_PROBE_PLAIN)
        if read_only:
            raise ReadOnlyDatabase("the database takes no writes (read-only)")


@dataclass(frozen=True)
class Backend:
    """A PostgreSQL backend of this database, as pg_stat_activity shows it."""

    pid: int
    application: str
    state: str
    seconds: float  # in that state (idle in transaction) or waiting (for a lock)


@dataclass(frozen=True)
class DatabaseVitals:
    """Figures of this database at one moment (database time throughout)."""

    outbox_pending: int
    outbox_sending: int
    outbox_due: int
    #: Seconds the oldest pending row has been due (0 when none is due).
    outbox_lag: float
    #: Rows waiting for another attempt after a failed one (pending with attempts, or sending again).
    outbox_retrying: int
    idle_in_transaction: int
    #: The backend idle in a transaction the longest, if any.
    longest_idle: Backend | None
    #: Our backends (gateways', workers') waiting for a lock.
    lock_waiting: int
    #: The one of them waiting the longest, if any, and who holds that lock (the first blocker).
    longest_wait: Backend | None
    blocker: Backend | None
    deadlocks: int


_VITALS = """
WITH outbox_work AS (
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'sending') AS sending,
           count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
           min(next_attempt_at) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS oldest_due,
           count(*) FILTER (WHERE (status = 'pending' AND attempts > 0) OR (status = 'sending' AND attempts > 1))
               AS retrying
      FROM outbox
     WHERE status IN ('pending', 'sending')
), ours AS (
    SELECT pid, coalesce(application_name, '') AS application, coalesce(state, '') AS state, state_change
      FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
), idle AS (
    SELECT * FROM ours WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
), waits AS (
    SELECT ours.pid, ours.application, ours.state, min(l.waitstart) AS waitstart
      FROM pg_locks l JOIN ours ON ours.pid = l.pid
     WHERE NOT l.granted AND l.waitstart IS NOT NULL
       -- Our own writes (gateways and workers name their sessions "frontdesk"), waiting for a row, table or
       -- advisory lock; not a migration's index build waiting for old transactions to end (a virtualxid wait).
       AND ours.application LIKE 'frontdesk%' AND l.locktype <> 'virtualxid'
     GROUP BY ours.pid, ours.application, ours.state
), longest_wait AS (
    SELECT waits.*, (pg_blocking_pids(waits.pid))[1] AS blocker FROM waits ORDER BY waitstart LIMIT 1
), longest_idle AS (
    SELECT * FROM idle ORDER BY state_change LIMIT 1
)
SELECT w.pending, w.sending, w.due, w.retrying,
       coalesce(extract(epoch FROM now() - w.oldest_due), 0)::float8 AS outbox_lag,
       (SELECT count(*) FROM idle) AS idle_count,
       i.pid AS idle_pid, i.application AS idle_application, i.state AS idle_state,
       extract(epoch FROM now() - i.state_change)::float8 AS idle_seconds,
       (SELECT count(*) FROM waits) AS wait_count,
       lw.pid AS wait_pid, lw.application AS wait_application, lw.state AS wait_state,
       extract(epoch FROM now() - lw.waitstart)::float8 AS wait_seconds,
       b.pid AS blocker_pid, coalesce(b.application_name, '') AS blocker_application,
       coalesce(b.state, '') AS blocker_state,
       extract(epoch FROM now() - b.state_change)::float8 AS blocker_seconds,
       (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()) AS deadlocks
  FROM outbox_work w
  LEFT JOIN longest_idle i ON true
  LEFT JOIN longest_wait lw ON true
  LEFT JOIN pg_stat_activity b ON b.pid = lw.blocker
"""


def _backend(row: asyncpg.Record, prefix: str) -> Backend | None:
    if row[f"{prefix}_pid"] is None:
        return None
    return Backend(
        pid=row[f"{prefix}_pid"],
        application=row[f"{prefix}_application"],
        state=row[f"{prefix}_state"],
        seconds=max(0.0, row[f"{prefix}_seconds"] or 0.0),
    )


async def vitals(raw: RawDb) -> DatabaseVitals:
    """One round trip: the outbox's outstanding work, stuck transactions, lock waits and deadlocks."""
    row = await raw.fetchrow(_VITALS)
    assert row is not None
    return DatabaseVitals(
        outbox_pending=row["pending"],
        outbox_sending=row["sending"],
        outbox_due=row["due"],
        outbox_lag=max(0.0, row["outbox_lag"]),
        outbox_retrying=row["retrying"],
        idle_in_transaction=row["idle_count"],
        longest_idle=_backend(row, "idle"),
        lock_waiting=row["wait_count"],
        longest_wait=_backend(row, "wait"),
        blocker=_backend(row, "blocker"),
        deadlocks=row["deadlocks"] or 0,
    )


async def outbox_totals(raw: RawDb) -> dict[str, int]:
    """Rows of the whole outbox by status (a full count: ask it rarely; statuses without rows are absent)."""
    rows = await raw.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    return {row["status"]: row["n"] for row in rows}
