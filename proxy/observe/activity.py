"""Where every finished request ends up exactly once: counts, the recent list, the event bus,
the usage ledger and the metrics, all without blocking the request."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from proxy.events import EventBus, RequestFinished
from proxy.observe.metrics import Metrics
from proxy.store.usage import UsageLedger

log = logging.getLogger("llmproxy")
RECENT = 200
"""Finished requests kept for the state document's `recent` list."""
MAX_FIELD_CHARS = 200
"""Client-chosen strings of an event (a wildcard group's name, the request id) are cut to this
before the event is kept anywhere: the recent list, every subscriber, the usage row."""
MAX_ERROR_CHARS = 2000
RATE_SECONDS = 64


class Activity:
    """Reports finished requests and counts them (total, requests per second)."""

    def __init__(
        self,
        bus: EventBus,
        ledger: UsageLedger,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        scrub: Callable[[str], str] | None = None,
        sinks: Sequence[Callable[[RequestFinished], None]] = (),
    ) -> None:
        self._bus = bus
        self._scrub = scrub
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._sinks = tuple(sinks)
        """Callbacks each finished request is handed to (the span exporters); O(1) each."""
        self.recent: deque[RequestFinished] = deque(maxlen=RECENT)
        self.requests_total = 0
        # Finished requests per whole second, [second, count]: a few hundred bytes at any rate
        # (a timestamp per request held 100,000 floats, ~4 MiB, and undercounted past 10k/s).
        self._per_second: deque[list[int]] = deque(maxlen=RATE_SECONDS)

    def finish(self, ev: RequestFinished) -> None:
        """Reports one finished request everywhere; O(1), never raises."""
        ev = bounded(ev)
        if ev.error is not None and self._scrub is not None:
            ev = scrubbed(ev, self._scrub)
        self.requests_total += 1
        second = int(self._clock())
        buckets = self._per_second
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += 1
        else:
            buckets.append([second, 1])
        self.recent.append(ev)
        self._bus.publish(ev)
        self._ledger.record(ev)
        try:
            self._metrics.observe(ev)
        except Exception:  # metrics must never fail a request
            log.exception("metrics update failed")
        for sink in self._sinks:
            try:
                sink(ev)
            except Exception:  # a callback must never fail a request
                log.exception("request callback failed")

    def requests_per_second(self, window: float = 10.0) -> float:
        """Returns the finished requests per second over the last `window` whole seconds
        (at most RATE_SECONDS)."""
        edge = int(self._clock()) - window
        n = 0
        for second, count in reversed(self._per_second):
            if second <= edge:
                break
            n += count
        return round(n / window, 2)


def bounded(ev: RequestFinished) -> RequestFinished:
    """Returns: `ev`, or (rarely) a copy with its client-chosen strings cut."""
    cut: dict[str, Any] = {}
    for name in ("id", "group", "fallback", "session"):
        value = getattr(ev, name)
        if value is not None and len(value) > MAX_FIELD_CHARS:
            cut[name] = value[:MAX_FIELD_CHARS]
    if ev.error is not None and len(ev.error) > MAX_ERROR_CHARS:
        cut["error"] = ev.error[:MAX_ERROR_CHARS]
    return dataclasses.replace(ev, **cut) if cut else ev


def scrubbed(ev: RequestFinished, scrub: Callable[[str], str]) -> RequestFinished:
    """Returns: `ev` with `scrub` applied to its error and its attempts' reasons (an upstream
    error may echo a key or an extra header's value)."""
    attempts = tuple(
        {**a, "reason": scrub(a["reason"])} if isinstance(a.get("reason"), str) else a
        for a in ev.attempt_log
    )
    return dataclasses.replace(ev, error=scrub(ev.error or ""), attempt_log=attempts)
