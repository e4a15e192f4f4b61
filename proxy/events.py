"""Events the proxy publishes, and the bus that carries them to the dashboard and SSE clients.

`EventBus.publish` is synchronous, O(1) and never raises or blocks: each subscriber owns a
bounded deque; when it is full the oldest event goes and the subscriber's `dropped` grows, so a
slow dashboard loses events but never delays a request. Subscribers may drain from any thread.
A subscriber that loses two whole queues without draining is closed, and at most MAX_SUBSCRIBERS
are open at once (a new one closes the slowest), so clients that never read hold no memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every event; `as_dict()` is what SSE clients and the dashboard receive."""

    def as_dict(self) -> dict[str, Any]:
        """Returns: the event's fields (shallow: nested values are shared, never mutate them)
        and its `type` name."""
        kind = type(self)
        out = {name: getattr(self, name) for name in _field_names(kind)}
        out["type"] = _TYPE_NAMES[kind]
        return out


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in fields(kind))
    return names


@dataclass(frozen=True)
class RequestStarted(Event):
    id: str
    time: float
    group: str
    stream: bool


@dataclass(frozen=True)
class RequestFinished(Event):
    """One finished request, as the request log and the usage store see it."""

    id: str
    time: float
    """Unix time the request arrived."""
    group: str
    deployment: str | None
    provider: str | None
    status: int
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    """USD; None when the price is unknown. 0 for a cache hit."""
    cache: str
    """"hit", "miss" or "off"."""
    attempts: int
    fallback: str | None
    """The fallback group that served, if one did."""
    stream: bool
    kind: str = "chat"
    error: str | None = None
    cost_saved: float | None = None
    """For a cache hit: what the answer cost when it was first made."""
    tokens_estimated: bool = False
    cached_tokens: int = 0
    attempt_log: tuple[dict[str, Any], ...] = ()
    """Each attempt: deployment, group, status, reason, latency_ms (never a key)."""
    preview: str = ""
    front_door: str = "chat"
    """The client wire format: "chat", "messages" or "responses"."""
    client: str = ""
    """The client, named from its User-Agent ("Claude Code", "Codex", "openai-python", ...)."""
    session: str | None = None
    """The agent session the request belongs to, when it named one."""
    key_alias: str | None = None
    """The virtual key that made the request: its `key_alias`, else its redacted name
    (`sk-...abcd`); None for the master key or a proxy without one."""
    finish: str | None = None
    """Why the answer ended, in OpenAI's finish_reason vocabulary ("stop", "length",
    "tool_calls", "content_filter"...); None for a failed request, one whose client went
    away, or an upstream that said nothing."""
    params: dict[str, Any] = field(default_factory=dict)
    """The sampling and shape parameters the client set, from its own body, as small scalars
    (`proxy.endpoints.params.client_params`): `{"temperature": 0.2, "tools": 25, ...}`.
    Shared, never mutate it."""


@dataclass(frozen=True)
class DeploymentChanged(Event):
    """A deployment's health changed (cooled down, recovered, key rejected, disabled...)."""

    deployment: str
    health: str
    reason: str | None = None
    cooldown_until: float | None = None


@dataclass(frozen=True)
class BudgetCrossed(Event):
    """A budget was reached, published once per crossing (per budget window), not per request.

    The dashboard shows it as a notice, the log as a line, and alerting (Slack or a webhook)
    posts it once.
    """

    time: float
    scope: str
    """"key" (a virtual key), "deployment" (`litellm_params.max_budget`) or "provider"
    (`router_settings.provider_budget_config`)."""
    name: str
    """The key's alias (else its redacted name), the deployment id, or the provider."""
    kind: str
    """"soft_budget" (a key's soft budget, a warning) or "max_budget" (refused from now on)."""
    spend: float
    """USD spent in the current window."""
    budget: float
    """USD: the budget that was crossed."""
    reset_at: float | None = None
    """Unix time the window ends and the spend starts over; None when it never resets."""


@dataclass(frozen=True)
class CacheCleared(Event):
    entries: int


@dataclass(frozen=True)
class UsageStoreChanged(Event):
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class LogRecord(Event):
    time: float
    level: str
    logger: str
    message: str


_TYPE_NAMES: dict[type, str] = {
    RequestStarted: "request_started",
    RequestFinished: "request_finished",
    DeploymentChanged: "deployment_changed",
    BudgetCrossed: "budget_crossed",
    CacheCleared: "cache_cleared",
    UsageStoreChanged: "usage_store",
    LogRecord: "log",
}


MAX_SUBSCRIBERS = 32
STALLED_AFTER = 2
"""Open subscriptions at most (the dashboard, `--attach` clients); a new one beyond this
closes the slowest."""


@dataclass
class Subscription:
    """One subscriber's bounded queue. `drain()` may be called from any thread.

    A subscriber that loses STALLED_AFTER whole queues of events without draining once is
    closed (`closed`): it receives nothing more, so a client that never reads holds nothing.
    (The dashboard drains at least once a second, so only a reader that stopped gets there.)
    """

    maxlen: int
    queue: deque[Event] = field(init=False)
    dropped: int = 0
    closed: bool = False
    """The bus dropped this subscriber (too slow, or beyond MAX_SUBSCRIBERS)."""
    lost: int = 0
    """Events dropped since the last drain."""

    def __post_init__(self) -> None:
        self.queue = deque(maxlen=self.maxlen)

    def put(self, event: Event) -> bool:
        """Queues `event`. Returns: False when the subscriber is (now) closed."""
        if self.closed:
            return False
        if len(self.queue) >= self.maxlen:
            self.dropped += 1
            self.lost += 1
            if self.lost >= STALLED_AFTER * self.maxlen:
                self.close()
                return False
        self.queue.append(event)
        return True

    def close(self) -> None:
        """Stops the subscription and frees what it queued."""
        self.closed = True
        self.queue.clear()

    def drain(self, limit: int | None = None) -> list[Event]:
        """Returns and removes the queued events, oldest first."""
        self.lost = 0
        out: list[Event] = []
        q = self.queue
        while q and (limit is None or len(out) < limit):
            try:
                out.append(q.popleft())
            except IndexError:
                break
        return out


class EventBus:
    """Fan-out of events to bounded per-subscriber queues; never blocks the publisher."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._dropped_gone = 0  # events dropped by subscribers that have since left
        self.max_subscribers = max_subscribers
        self.published = 0
        self._listeners: tuple[Callable[[Event], None], ...] = ()

    def listen(self, callback: Callable[[Event], None]) -> None:
        """Calls `callback(event)` in the publisher's thread for every event published (not a
        subscriber: no queue, not counted). It must be O(1) and never block; errors are
        swallowed."""
        with self._lock:
            self._listeners = (*self._listeners, callback)

    def unlisten(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._listeners = tuple(c for c in self._listeners if c != callback)

    def subscribe(self, maxlen: int = 10_000) -> Subscription:
        """Returns: a new subscription; at the cap, the slowest open one is closed first."""
        sub = Subscription(maxlen)
        with self._lock:
            if len(self._subs) >= self.max_subscribers:
                slowest = max(self._subs, key=lambda s: len(s.queue) / s.maxlen + s.lost)
                self._remove(slowest)
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        """Closes `sub` and takes it off the bus; the caller holds the lock."""
        sub.close()
        if any(s is sub for s in self._subs):
            self._subs = tuple(s for s in self._subs if s is not sub)
            self._dropped_gone += sub.dropped

    @property
    def subscribers(self) -> int:
        """Returns: how many subscriptions are open."""
        return len(self._subs)

    @property
    def dropped(self) -> int:
        """Returns: events dropped by every subscriber since start (never decreases, so the
        metric is a true total even after a slow subscriber disconnects)."""
        return self._dropped_gone + sum(s.dropped for s in self._subs)

    def publish(self, event: Event) -> None:
        """Hands `event` to every subscriber. O(subscribers), never raises."""
        self.published += 1
        for listener in self._listeners:
            with contextlib.suppress(Exception):  # a listener must never fail the publisher
                listener(event)
        for sub in self._subs:  # the tuple is replaced, never mutated: safe without the lock
            if not sub.put(event):
                self.unsubscribe(sub)


MAX_LOG_CHARS = 8192
"""The longest log message the Log pane receives."""


class BusLogHandler(logging.Handler):
    """Sends log records to the event bus, so they show in the Log pane, never on the screen."""

    def __init__(self, bus: EventBus, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        if len(message) > MAX_LOG_CHARS:  # kept by every subscriber: a client's 1 MiB, cut
            message = message[:MAX_LOG_CHARS] + f"… ({len(message):,} characters)"
        self.bus.publish(LogRecord(record.created, record.levelname, record.name, message))
