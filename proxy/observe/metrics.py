"""Prometheus metrics (`GET /metrics`): request, latency, token, cost and cache counters fed by
finished-request events, and deployment health gauges fed by the state snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
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
from proxy.store.rollups import OTHER, NameCap

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
HEALTH_STATES = ["ok", "failing", "cooling_down", "key_rejected", "disabled", "key_missing",
                 "budget_spent"]  # fmt: skip


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
        self.key_requests = Counter(
            "llmproxy_key_requests", "Finished requests by virtual key (its alias, never the key).",
            ["key_alias", "status"], registry=r,
        )  # fmt: skip
        self.key_cost = Counter(
            "llmproxy_key_cost_usd", "Spend in USD by virtual key (its alias).", ["key_alias"],
            registry=r,
        )  # fmt: skip
        self.key_spend = Gauge(
            "llmproxy_key_spend_usd", "A virtual key's spend in its current budget window.",
            ["key_alias"], registry=r,
        )  # fmt: skip
        self.key_max_budget = Gauge(
            "llmproxy_key_max_budget_usd", "A virtual key's max_budget (absent: none).",
            ["key_alias"], registry=r,
        )  # fmt: skip
        self.key_soft_budget = Gauge(
            "llmproxy_key_soft_budget_usd", "A virtual key's soft_budget (absent: none).",
            ["key_alias"], registry=r,
        )  # fmt: skip
        self.key_blocked = Gauge(
            "llmproxy_key_blocked", "1 when the virtual key is blocked or expired.",
            ["key_alias"], registry=r,
        )  # fmt: skip
        self.key_snapshot: Callable[[], list[dict[str, Any]]] | None = None
        """Where `render` reads the virtual keys' budgets from (set by the runtime)."""
        self._keys: set[str] = set()
        self._key_name = NameCap()
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
        if ev.key_alias:
            alias = self._key_name(ev.key_alias)
            self._child(self.key_requests, alias, str(ev.status)).inc()
            if ev.cost:
                self._child(self.key_cost, alias).inc(ev.cost)

    def set_virtual_keys(self, keys: list[dict[str, Any]]) -> None:
        """Sets the budget gauges from the `virtual_keys` of the state document; keys no
        longer listed are removed. Labelled by alias (else the redacted name), never the key."""
        seen: set[str] = set()
        gauges = (self.key_spend, self.key_max_budget, self.key_soft_budget, self.key_blocked)
        for key in keys:
            alias = self._key_name(str(key.get("alias") or key.get("key_name") or ""))
            if alias == OTHER or alias in seen:
                continue
            seen.add(alias)
            self.key_spend.labels(alias).set(float(key.get("spend") or 0.0))
            self.key_blocked.labels(alias).set(int(bool(key.get("blocked") or key.get("expired"))))
            for gauge, field in ((self.key_max_budget, "max_budget"),
                                 (self.key_soft_budget, "soft_budget")):  # fmt: skip
                if key.get(field) is not None:
                    gauge.labels(alias).set(float(key[field]))
                else:
                    with contextlib.suppress(KeyError):
                        gauge.remove(alias)
        for alias in self._keys - seen:
            for gauge in gauges:
                with contextlib.suppress(KeyError):
                    gauge.remove(alias)
        self._keys = seen

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

    def known_groups(self, names: Iterable[str]) -> None:
        """Keeps a reloaded config's group names out of the cap on invented names."""
        self._group_name = NameCap(names)

    def set_dropped_events(self, n: int) -> None:
        """Sets the dropped-events gauge."""
        self.dropped.set(n)

    def render(self) -> tuple[bytes, str]:
        """Returns: (the Prometheus text exposition, its content type)."""
        if self.key_snapshot is not None:
            self.set_virtual_keys(self.key_snapshot())
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
