"""The usage ledger: one row per finished request (SQLite, or PostgreSQL shared by several
instances), written off the request path by one background thread, and the running aggregates
(`snapshot()`) the dashboard and state API show.

Aggregates live in memory (loaded from the database at start, then updated as requests are
recorded), so they include rows not yet written and stay available while the store is failing.
A shared store is re-read every `refresh_interval`, so every instance shows the team's totals.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from proxy.backoff import Backoff
from proxy.events import RequestFinished
from proxy.store import usage_sqlite as usage_store
from proxy.store.rollups import LatencySample, NameCap, SliceKey, Sums, rollup
from proxy.store.spend import RunningSpend, read_shared, read_sqlite
from proxy.store.usage_postgres import PostgresBackend
from proxy.store.usage_sqlite import SqliteBackend, UsageBackend

BATCH = 500
"""Rows that wake the writer early; also the most rows written per transaction (x10)."""
LATENCY_SAMPLE = 20_000
"""Percentiles are over the latest this-many successful, non-cache-hit requests."""
_PRUNE_EVERY_S = 3600.0
_MIN_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 2.0
_LOAD_WAIT_S = 2.0
_DAY_S = 86400.0

StateCallback = Callable[[bool, str | None], None]


class UsageLedger:
    """Records finished requests into a usage store and keeps their aggregates."""

    def __init__(
        self,
        path: Path | None,
        *,
        retention_days: int = 90,
        on_state: StateCallback | None = None,
        flush_interval: float = 0.25,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
        backend: UsageBackend | None = None,
        refresh_interval: float = 2.0,
        known_groups: Iterable[str] = (),
    ) -> None:
        self.path = path
        self.backend: UsageBackend = backend or SqliteBackend(path)
        self._refresh_every = refresh_interval
        self.retention_days = retention_days
        self._on_state = on_state
        self._interval = flush_interval
        self._max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._tried = threading.Event()  # the writer's first attempt to open and load is over
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pending: deque[RequestFinished] = deque()
        self._inflight = 0
        self._recorded = 0
        self.written = 0
        self.dropped = 0
        self._ok = True
        self.error: str | None = None
        self._sums: dict[SliceKey, Sums] = {}
        self._latencies: deque[LatencySample] = deque(maxlen=LATENCY_SAMPLE)
        self._hourly: dict[int, float] = {}
        # The aggregates' version (bumped by every change) and the last roll-up made of them:
        # the dashboard polls once a second, and an idle proxy should not re-aggregate
        # LATENCY_SAMPLE samples each time.
        self._version = 0
        self._rolled: tuple[tuple[int, str], dict[str, Any]] | None = None
        # Wildcard groups take any name: beyond a cap, new names are totalled as "(other)".
        self._group_name = NameCap(known_groups)
        self._spend = RunningSpend(known_groups)
        """Spend by key, client, session and group (the state document's `spend`)."""

    @property
    def ok(self) -> bool:
        return self._ok

    @property
    def pending(self) -> int:
        return len(self._pending) + self._inflight

    def start(self) -> None:
        """Starts the writer thread (once); it opens the database, prunes, then writes."""
        if self._thread is None:
            self._wake.set()  # open the database at once
            self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self._thread.start()

    def wait_opened(self, timeout: float) -> bool:
        """Waits (blocking: call it in a thread) until the writer's first open of the store is
        over, so others opening the same SQLite file at start do not race its schema steps.

        Returns:
            True when the first open is over (done or failed), False on timeout.
        """
        return self._thread is None or self._tried.wait(timeout)

    def record(self, ev: RequestFinished) -> None:
        """Queues one row and updates the aggregates. O(1); never blocks on I/O, never raises;
        beyond max_pending the oldest queued row is dropped and counted."""
        try:
            with self._lock:
                if len(self._pending) >= self._max_pending:
                    self._pending.popleft()
                    self.dropped += 1
                self._pending.append(ev)
                self._recorded += 1
                self._fold(ev)
                many = len(self._pending) >= BATCH
            if many:
                self._wake.set()
        except Exception:  # an edge: a malformed event must not fail the request
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until every row recorded so far is written (or dropped).

        Returns:
            True when done, False on timeout (e.g. the database is locked or not started).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._recorded
        if self._thread is not None and not self._tried.wait(timeout):
            return False
        self._wake.set()
        with self._done:
            while self.written + self.dropped < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._done.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Writes what is pending (one last try if the store is failing), stops the writer
        thread and closes the database. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)

    def snapshot(self) -> dict[str, Any]:
        """The `usage` object of `GET /llmproxy/state`; safe from any thread.

        Returns:
            totals, today, by_group, by_group_today, by_deployment, by_deployment_today,
            by_client, by_client_today (ROWs with p50_ms/p95_ms) and spend_series
            ([hour_ts, cost] for the last 24 hours, oldest first).
        """
        now = self._clock()
        if self._thread is not None:
            # Just after start, give the writer a moment to load the stored rows.
            self._tried.wait(_LOAD_WAIT_S)
        today = usage_store.utc_day(now)
        with self._lock:
            stamp = (self._version, today)
            hourly = dict(self._hourly)
            cached = self._rolled
            rolled = cached[1] if cached is not None and cached[0] == stamp else None
            if rolled is None:
                sums = [(k, Sums(**v.__dict__)) for k, v in self._sums.items()]
                latencies = list(self._latencies)
        if rolled is None:
            rolled = rollup(sums, latencies, today)
            self._rolled = (stamp, rolled)
        # A new dict each call (rows shared with the cache: callers only read them).
        out = dict(rolled)
        hour = int(now // 3600 * 3600)
        out["spend_series"] = [
            [h, hourly.get(h, 0.0)] for h in range(hour - 23 * 3600, hour + 1, 3600)
        ]
        return out

    def spend_snapshot(self) -> dict[str, Any]:
        """The `spend` object of `GET /llmproxy/state` (see `RunningSpend.snapshot`); safe
        from any thread."""
        today = usage_store.utc_day(self._clock())
        with self._lock:
            return self._spend.snapshot(today)

    # --- aggregates -------------------------------------------------------------------------

    def _fold(self, ev: RequestFinished, *, spend: bool = True) -> None:
        """Adds one request to the aggregates; the caller holds the lock."""
        self._version += 1
        if spend:
            self._spend.add(ev)
        day = usage_store.utc_day(ev.time)
        client = usage_store.client_of(ev)  # as stored, so reloaded rows land in the same slice
        group = self._group_name(ev.group)
        self._add_sums((group, ev.deployment, day, client), Sums.of(ev))
        if ev.status < 400 and ev.cache != "hit":
            self._latencies.append((group, ev.deployment, day, client, ev.latency_ms))
        hour = int(ev.time // 3600 * 3600)
        self._hourly[hour] = self._hourly.get(hour, 0.0) + (ev.cost or 0.0)

    def _add_sums(self, key: SliceKey, sums: Sums) -> None:
        slot = self._sums.get(key)
        if slot is None:
            self._sums[key] = sums
        else:
            slot.add(sums)

    # --- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        opened = False
        backoff = Backoff(_MIN_BACKOFF_S, _MAX_BACKOFF_S)
        wait = self._interval
        last_prune = last_refresh = 0.0
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            stopping = self._stopping
            try:
                if not opened:
                    self._open()  # prunes and loads the stored rows
                    opened = True
                    last_prune = last_refresh = time.monotonic()
                    self._tried.set()
                elif time.monotonic() - last_prune >= _PRUNE_EVERY_S:
                    self._prune()
                    last_prune = time.monotonic()
                while self._write_batch():
                    pass
                if self.backend.shared and time.monotonic() - last_refresh >= self._refresh_every:
                    self._load(replace=True)
                    last_refresh = time.monotonic()
            except Exception as exc:  # the thread's edge: report and retry, never die
                self._tried.set()
                self._set_state(False, f"usage store {self.backend.describe()}: {exc}")
                wait = backoff.next()
                if stopping:
                    break
                continue
            self._set_state(True, None)
            backoff.reset()
            wait = self._interval
            if stopping:
                break
        with contextlib.suppress(Exception):
            self.backend.close()

    def _open(self) -> None:
        self.backend.open()
        try:
            self._prune()
            self._load(replace=self.backend.shared)
        except BaseException:
            self.backend.close()
            raise

    def _load(self, *, replace: bool) -> None:
        """Adds the stored rows to the aggregates (at start, before any write); with `replace`,
        the aggregates become the stored rows plus the rows still pending here."""
        sums = self.backend.load_sums()
        latencies = self.backend.load_latencies(LATENCY_SAMPLE)
        hourly = self.backend.load_hourly_cost(self._clock() - _DAY_S)
        spend = self._stored_spend()
        with self._lock:
            self._version += 1
            if spend is not None:  # None: this store cannot say, keep the sums seen here
                if replace:
                    self._spend.clear()
                self._spend.load(spend)
            recent = [] if replace else list(self._latencies)
            if replace:
                self._sums, self._hourly = {}, {}
            name = self._group_name
            for grp, dep, day, client, *counts in sums:
                slice_key = (name(grp), dep, day, client or "")
                self._add_sums(slice_key, Sums(*(c or 0 for c in counts)))
            self._latencies.clear()
            self._latencies.extend((name(grp), *rest) for grp, *rest in latencies)
            self._latencies.extend(recent)
            for hour, cost in hourly:
                self._hourly[int(hour)] = self._hourly.get(int(hour), 0.0) + float(cost)
            if replace:
                for ev in self._pending:
                    self._fold(ev, spend=spend is not None)

    def _stored_spend(self) -> list[tuple[Any, ...]] | None:
        """Returns: the stored rows' spend sums (SQLite file), or None when not readable here."""
        dims = ("key", "client", "session", "group")
        if isinstance(self.backend, SqliteBackend):
            path = self.backend.path
            return None if path is None else read_sqlite(path, dims, 0.0) or []
        if isinstance(self.backend, PostgresBackend):
            return read_shared(self.backend, dims)
        return None

    def _prune(self) -> None:
        now = self._clock()
        cutoff = now - self.retention_days * _DAY_S
        self.backend.prune(cutoff)
        cutoff_day = usage_store.utc_day(cutoff)
        with self._lock:
            self._version += 1
            for key in [k for k in self._sums if k[2] < cutoff_day]:
                del self._sums[key]
            for hour in [h for h in self._hourly if h < now - _DAY_S - 3600]:
                del self._hourly[hour]

    def _write_batch(self) -> bool:
        """Writes up to 10 x BATCH pending rows. Returns: whether more are pending.
        Raises: the store's error, with the rows put back in front of the queue."""
        with self._lock:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), 10 * BATCH))]
            self._inflight = len(batch)
        if not batch:
            return False
        try:
            self.backend.insert(batch)
        except BaseException:
            with self._lock:
                self._pending.extendleft(reversed(batch))
                self._inflight = 0
                while len(self._pending) > self._max_pending:
                    self._pending.popleft()
                    self.dropped += 1
                self._done.notify_all()
            raise
        with self._lock:
            self._inflight = 0
            self.written += len(batch)
            self._done.notify_all()
            return bool(self._pending)

    def _set_state(self, ok: bool, error: str | None) -> None:
        self.error = error
        if ok == self._ok:
            return
        self._ok = ok
        if self._on_state is not None:
            with contextlib.suppress(Exception):  # the callback's failure is not ours to raise
                self._on_state(ok, error)
