"""Prometheus metrics (`GET /metrics`): request, latency, token, cost and cache counters fed by
finished-request events, and deployment health gauges fed by the state snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proxy.events import RequestFinished
from proxy.store.rollups import NameCap

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
HEALTH_STATES = ["ok", "failing", "cooling_down", "key_rejected", "disabled", "key_missing"]


class Metrics:
    """The proxy's metrics, in a registry of their own (no process-wide globals)."""

    def __init__(self, known_groups: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmproxy_requests", "Finished requests.",
            ["group", "deployment", "status", "cache"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "llmproxy_request_latency_seconds", "Time from request to last byte.",
            ["group"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "llmproxy_time_to_first_token_seconds", "Streams: time to the first chunk.",
            ["group"], buckets=_TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "llmproxy_tokens", "Tokens by direction (input, output).",
            ["group", "direction"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "llmproxy_cost_usd", "Spend in USD (requests with a known price).", ["group"],
            registry=r,
        )  # fmt: skip
        self.cache_hits = Counter("llmproxy_cache_hits", "Cache hits.", registry=r)
        self.cache_misses = Counter("llmproxy_cache_misses", "Cache misses.", registry=r)
        self.healthy = Gauge(
            "llmproxy_deployment_healthy", "1 when the deployment is usable.",
            ["deployment", "group"], registry=r,
        )  # fmt: skip
        self.health = Enum(
            "llmproxy_deployment_health", "The deployment's health state (docs/internals.md).",
            ["deployment", "group"], states=HEALTH_STATES, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "llmproxy_deployment_in_flight", "Requests in flight on the deployment.",
            ["deployment", "group"], registry=r,
        )  # fmt: skip
        self.dropped = Gauge(
            "llmproxy_events_dropped", "Events dropped by slow subscribers.", registry=r
        )
        self._deployments: set[tuple[str, str]] = set()
        # Labelled children, looked up once: `.labels()` costs more than the increment itself.
        self._children: dict[tuple[str, ...], Any] = {}
        # Every label value makes series that live forever: a wildcard group's invented names
        # beyond a cap are counted as group="(other)".
        self._group_name = NameCap(known_groups)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, ev: RequestFinished) -> None:
        """Counts one finished request (never raises for a well-formed event)."""
        group = self._group_name(ev.group)
        self._child(self.requests, group, ev.deployment or "", str(ev.status), ev.cache).inc()
        self._child(self.latency, group).observe(ev.latency_ms / 1000)
        if ev.stream and ev.ttft_ms is not None:
            self._child(self.ttft, group).observe(ev.ttft_ms / 1000)
        if ev.prompt_tokens:
            self._child(self.tokens, group, "input").inc(ev.prompt_tokens)
        if ev.completion_tokens:
            self._child(self.tokens, group, "output").inc(ev.completion_tokens)
        if ev.cost:
            self._child(self.cost, group).inc(ev.cost)
        if ev.cache == "hit":
            self.cache_hits.inc()
        elif ev.cache == "miss":
            self.cache_misses.inc()

    def set_deployments(self, states: list[dict[str, Any]]) -> None:
        """Sets the health and in-flight gauges from the `deployments` objects of the state
        document; deployments no longer listed are removed."""
        seen: set[tuple[str, str]] = set()
        for dep in states:
            labels = (str(dep["id"]), str(dep.get("group", "")))
            seen.add(labels)
            health = str(dep.get("health"))
            self.healthy.labels(*labels).set(1 if health == "ok" else 0)
            if health in HEALTH_STATES:
                self.health.labels(*labels).state(health)
            self.in_flight.labels(*labels).set(int(dep.get("in_flight") or 0))
        for labels in self._deployments - seen:
            self.healthy.remove(*labels)
            self.health.remove(*labels)
            self.in_flight.remove(*labels)
        self._deployments = seen

    def set_dropped_events(self, n: int) -> None:
        """Sets the dropped-events gauge."""
        self.dropped.set(n)

    def render(self) -> tuple[bytes, str]:
        """Returns: (the Prometheus text exposition, its content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
