"""Prometheus metrics, one registry per app (no module-level collectors, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


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
