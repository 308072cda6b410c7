"""Prometheus metrics, one registry per app (no module-level collectors, so several apps can live in one process).

Two kinds: the gateway's own counters (requests, inbound messages), counted as they happen, and the system's figures
(outbox lag and rows, queue depths, live workers, retries, deadlocks, stuck transactions), read from PostgreSQL and
Redis when /metrics is asked (gateway/vitals.py) and shown by :class:`SystemCollector`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from booking_core.db.outbox import OUTBOX_STATUSES
from booking_core.db.queries.health import DatabaseVitals
from infra.watch import JOB_STATES

if TYPE_CHECKING:
    from gateway.vitals import Snapshot, WorkerVitals

#: Outbox statuses counted exactly at every scrape (through the index of unsent rows); the others come from a full
#: count made at most every ``vitals.TOTALS_EVERY`` seconds.
LIVE_STATUSES = ("pending", "sending")


class SystemCollector:
    """The system's figures at the last scrape (``snapshot``, set by the /metrics handler just before rendering).

    A part that could not be read in time is left out, and ``frontdesk_vitals_up`` says which.
    """

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap is None:
            return
        up = GaugeMetricFamily(
            "frontdesk_vitals_up", "1 when the figures of this source could be read at this scrape", labels=["source"]
        )
        up.add_metric(["database"], float(snap.database is not None))
        up.add_metric(["redis"], float(snap.workers is not None))
        yield up
        if snap.database is not None:
            yield from _database_metrics(snap.database)
        yield from _outbox_rows(snap)
        if snap.workers is not None:
            yield from _worker_metrics(snap.workers, snap.live_within)


def _database_metrics(database: DatabaseVitals) -> Iterator[Metric]:
    """The outbox's lag and backlog, and the database's idle transactions, lock waits and deadlocks."""
    yield GaugeMetricFamily(
        "frontdesk_outbox_lag_seconds",
        "Seconds the oldest due outbox row (pending, next attempt in the past) has been waiting; 0 when none",
        value=database.outbox_lag,
    )
    yield GaugeMetricFamily("frontdesk_outbox_due_rows", "Outbox rows pending and due now", value=database.outbox_due)
    yield GaugeMetricFamily(
        "frontdesk_outbox_retrying_rows",
        "Outbox rows waiting for another attempt after a failed one (pending with attempts, or sent again)",
        value=database.outbox_retrying,
    )
    yield GaugeMetricFamily(
        "frontdesk_postgres_idle_in_transaction_backends",
        "Backends of this database idle in a transaction",
        value=database.idle_in_transaction,
    )
    yield GaugeMetricFamily(
        "frontdesk_postgres_idle_in_transaction_longest_seconds",
        "Seconds the longest-idle transaction of this database has been idle; 0 when none",
        value=database.longest_idle.seconds if database.longest_idle else 0.0,
    )
    yield GaugeMetricFamily(
        "frontdesk_postgres_lock_waiting_backends",
        "Backends of ours (gateways, workers) waiting for a lock in this database",
        value=database.lock_waiting,
    )
    yield GaugeMetricFamily(
        "frontdesk_postgres_lock_wait_longest_seconds",
        "Seconds the longest lock wait of ours has lasted; 0 when none",
        value=database.longest_wait.seconds if database.longest_wait else 0.0,
    )
    yield CounterMetricFamily(
        "frontdesk_postgres_deadlocks",
        "Deadlocks PostgreSQL detected (and broke by failing one transaction) in this database",
        value=database.deadlocks,
    )


def _outbox_rows(snap: Snapshot) -> Iterator[Metric]:
    """Outbox rows by status: the live ones (pending, sending) from this scrape, the rest from the last totals."""
    database = snap.database
    rows = GaugeMetricFamily("frontdesk_outbox_rows", "Outbox rows by status", labels=["status"])
    live = {"pending": database.outbox_pending, "sending": database.outbox_sending} if database else {}
    for status in OUTBOX_STATUSES:
        if status in LIVE_STATUSES:
            if status in live:
                rows.add_metric([status], live[status])
        elif snap.outbox_totals is not None:
            rows.add_metric([status], snap.outbox_totals.get(status, 0))
    if rows.samples:
        yield rows


def _worker_metrics(workers: WorkerVitals, live_within: float) -> Iterator[Metric]:
    """The RQ workers (registered, live, latest heartbeat) and the jobs of each queue by state."""
    ages = workers.heartbeat_ages()
    yield GaugeMetricFamily(
        "frontdesk_workers_registered", "Workers RQ lists for our queues", value=len(workers.workers)
    )
    yield GaugeMetricFamily(
        "frontdesk_workers_live",
        f"Workers whose last heartbeat is at most {live_within:g} s old",
        value=sum(1 for age in ages if age <= live_within),
    )
    if ages:
        yield GaugeMetricFamily(
            "frontdesk_worker_heartbeat_age_seconds",
            "Seconds since the most recent heartbeat of any worker",
            value=min(ages),
        )
    jobs = GaugeMetricFamily(
        "frontdesk_queue_jobs",
        "RQ jobs per queue: queued (waiting), scheduled (for later), started (running), failed",
        labels=["queue", "state"],
    )
    for queue, counts in workers.jobs.items():
        for state in JOB_STATES:
            jobs.add_metric([queue, state], counts.get(state, 0))
    yield jobs


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "frontdesk_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "frontdesk_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.inbound = Counter(
            "frontdesk_inbound_messages",
            "Inbound provider messages by outcome (handled, duplicate, ignored, unsupported, refused)",
            ["channel", "outcome"],
            registry=self.registry,
        )

        self.operations = SystemCollector()
        self.registry.register(self.operations)

        # Labelled children, looked up once: ``labels()`` takes a lock and builds a key on every call.
        self._inbound: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def inbound_outcome(self, channel: str, outcome: str) -> Any:
        """The ``frontdesk_inbound_messages`` counter for one channel and outcome."""
        key = (channel, outcome)
        child = self._inbound.get(key)
        if child is None:
            child = self._inbound[key] = self.inbound.labels(channel, outcome)
        return child

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        key = (method, route, status)
        children = self._requests.get(key)
        if children is None:
            children = self._requests[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
