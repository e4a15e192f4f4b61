"""Where every finished request ends up exactly once: counts, the recent list, the event bus,
the usage ledger and the metrics, all without blocking the request."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from proxy.events import EventBus, RequestFinished
from proxy.observe.metrics import Metrics
from proxy.store.usage import UsageLedger

log = logging.getLogger("llmproxy")
RECENT = 200
"""Finished requests kept for the state document's `recent` list."""


class Activity:
    """Reports finished requests and counts them (total, requests per second)."""

    def __init__(
        self,
        bus: EventBus,
        ledger: UsageLedger,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self.recent: deque[RequestFinished] = deque(maxlen=RECENT)
        self.requests_total = 0
        self._finished_at: deque[float] = deque(maxlen=100_000)

    def finish(self, ev: RequestFinished) -> None:
        """Reports one finished request everywhere; O(1), never raises."""
        self.requests_total += 1
        self._finished_at.append(self._clock())
        self.recent.append(ev)
        self._bus.publish(ev)
        self._ledger.record(ev)
        try:
            self._metrics.observe(ev)
        except Exception:  # metrics must never fail a request
            log.exception("metrics update failed")

    def requests_per_second(self, window: float = 10.0) -> float:
        """Returns the finished requests per second over the last `window` seconds."""
        edge = self._clock() - window
        n = 0
        for t in reversed(self._finished_at):
            if t < edge:
                break
            n += 1
        return round(n / window, 2)
