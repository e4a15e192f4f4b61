"""The usage ledger: one SQLite row per finished request, written off the request path by one
background thread, and the running aggregates (`snapshot()`) the dashboard and state API show.

Aggregates live in memory (loaded from the database at start, then updated as requests are
recorded), so they include rows not yet written and stay available while the disk is failing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy import usage_store
from proxy.events import RequestFinished

BATCH = 500
"""Rows that wake the writer early; also the most rows written per transaction (x10)."""
LATENCY_SAMPLE = 20_000
"""Percentiles are over the latest this-many successful, non-cache-hit requests."""
_PRUNE_EVERY_S = 3600.0
_MAX_BACKOFF_S = 2.0
_LOAD_WAIT_S = 2.0
_DAY_S = 86400.0

StateCallback = Callable[[bool, str | None], None]


@dataclass
class Sums:
    """Counters of one slice of requests (a ROW of docs/internals.md without percentiles)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cost_unknown: int = 0
    errors: int = 0
    cache_hits: int = 0

    def add(self, other: Sums) -> None:
        self.requests += other.requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost += other.cost
        self.cost_unknown += other.cost_unknown
        self.errors += other.errors
        self.cache_hits += other.cache_hits

    @classmethod
    def of(cls, ev: RequestFinished) -> Sums:
        ok = ev.status < 400
        return cls(1, ev.prompt_tokens, ev.completion_tokens, ev.cost or 0.0,
                   int(ok and ev.cost is None), int(not ok), int(ev.cache == "hit"))  # fmt: skip


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile. Returns: None for an empty list."""
    if not sorted_values:
        return None
    rank = max(1, -(-round(q * 100) * len(sorted_values) // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _row(sums: Sums, latencies: list[float]) -> dict[str, Any]:
    latencies.sort()
    return {**sums.__dict__, "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95)}  # fmt: skip


SliceKey = tuple[str, str | None, str]  # (group, deployment, UTC day)


class UsageLedger:
    """Records finished requests into SQLite (or memory) and keeps their aggregates."""

    def __init__(
        self,
        path: Path | None,
        *,
        retention_days: int = 90,
        on_state: StateCallback | None = None,
        flush_interval: float = 0.25,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
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
        self._latencies: deque[tuple[str, str | None, str, float]] = deque(maxlen=LATENCY_SAMPLE)
        self._hourly: dict[int, float] = {}

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
            totals, today, by_group, by_group_today, by_deployment (ROWs with p50_ms/p95_ms)
            and spend_series ([hour_ts, cost] for the last 24 hours, oldest first).
        """
        now = self._clock()
        if self._thread is not None:
            # Just after start, give the writer a moment to load the stored rows.
            self._tried.wait(_LOAD_WAIT_S)
        with self._lock:
            sums = [(k, Sums(**v.__dict__)) for k, v in self._sums.items()]
            latencies = list(self._latencies)
            hourly = dict(self._hourly)
        today = usage_store.utc_day(now)
        out = self._rollup(sums, latencies, today)
        hour = int(now // 3600 * 3600)
        out["spend_series"] = [
            [h, hourly.get(h, 0.0)] for h in range(hour - 23 * 3600, hour + 1, 3600)
        ]
        return out

    # --- aggregates -------------------------------------------------------------------------

    def _fold(self, ev: RequestFinished) -> None:
        """Adds one request to the aggregates; the caller holds the lock."""
        day = usage_store.utc_day(ev.time)
        self._add_sums((ev.group, ev.deployment, day), Sums.of(ev))
        if ev.status < 400 and ev.cache != "hit":
            self._latencies.append((ev.group, ev.deployment, day, ev.latency_ms))
        hour = int(ev.time // 3600 * 3600)
        self._hourly[hour] = self._hourly.get(hour, 0.0) + (ev.cost or 0.0)

    def _add_sums(self, key: SliceKey, sums: Sums) -> None:
        slot = self._sums.get(key)
        if slot is None:
            self._sums[key] = sums
        else:
            slot.add(sums)

    @staticmethod
    def _rollup(
        sums: Iterable[tuple[SliceKey, Sums]],
        latencies: list[tuple[str, str | None, str, float]],
        today: str,
    ) -> dict[str, Any]:
        scopes: dict[tuple[Any, ...], Sums] = {}
        lat: dict[tuple[Any, ...], list[float]] = {}

        def scope_keys(grp: str, dep: str | None, day: str) -> list[tuple[Any, ...]]:
            keys: list[tuple[Any, ...]] = [("totals",), ("group", grp)]
            if dep is not None:
                keys.append(("deployment", dep, grp))
            if day == today:
                keys += [("today",), ("group_today", grp)]
            return keys

        for (grp, dep, day), part in sums:
            for key in scope_keys(grp, dep, day):
                scopes.setdefault(key, Sums()).add(part)
        for grp, dep, day, ms in latencies:
            for key in scope_keys(grp, dep, day):
                lat.setdefault(key, []).append(ms)

        def row(key: tuple[Any, ...], **extra: Any) -> dict[str, Any]:
            return {**extra, **_row(scopes.get(key, Sums()), lat.get(key, []))}

        def listed(kind: str) -> list[tuple[Any, ...]]:
            return sorted(k for k in scopes if k[0] == kind)

        return {
            "totals": row(("totals",)),
            "today": row(("today",)),
            "by_group": [row(k, group=k[1]) for k in listed("group")],
            "by_group_today": [row(k, group=k[1]) for k in listed("group_today")],
            "by_deployment": [row(k, deployment=k[1], group=k[2]) for k in listed("deployment")],
        }

    # --- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        backoff = self._interval
        last_prune = 0.0
        while True:
            self._wake.wait(backoff)
            self._wake.clear()
            stopping = self._stopping
            try:
                if db is None:
                    db = self._open()  # prunes and loads the stored rows
                    last_prune = time.monotonic()
                    self._tried.set()
                elif time.monotonic() - last_prune >= _PRUNE_EVERY_S:
                    self._prune(db)
                    last_prune = time.monotonic()
                while self._write_batch(db):
                    pass
            except Exception as exc:  # the thread's edge: report and retry, never die
                self._tried.set()
                self._set_state(False, f"usage store {self.path or ':memory:'}: {exc}")
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                if stopping:
                    break
                continue
            self._set_state(True, None)
            backoff = self._interval
            if stopping:
                break
        if db is not None:
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = usage_store.open_db(self.path)
        try:
            self._prune(db)
            self._load(db)
        except BaseException:
            db.close()
            raise
        return db

    def _load(self, db: sqlite3.Connection) -> None:
        """Adds the rows already in the database to the aggregates (before any write)."""
        sums = usage_store.load_sums(db)
        latencies = usage_store.load_latencies(db, LATENCY_SAMPLE)
        hourly = usage_store.load_hourly_cost(db, self._clock() - _DAY_S)
        with self._lock:
            for grp, dep, day, *counts in sums:
                self._add_sums((grp, dep, day), Sums(*(c or 0 for c in counts)))
            recent = list(self._latencies)
            self._latencies.clear()
            self._latencies.extend(latencies)
            self._latencies.extend(recent)
            for hour, cost in hourly:
                self._hourly[int(hour)] = self._hourly.get(int(hour), 0.0) + float(cost)

    def _prune(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        cutoff = now - self.retention_days * _DAY_S
        usage_store.prune(db, cutoff)
        cutoff_day = usage_store.utc_day(cutoff)
        with self._lock:
            for key in [k for k in self._sums if k[2] < cutoff_day]:
                del self._sums[key]
            for hour in [h for h in self._hourly if h < now - _DAY_S - 3600]:
                del self._hourly[hour]

    def _write_batch(self, db: sqlite3.Connection) -> bool:
        """Writes up to 10 x BATCH pending rows. Returns: whether more are pending.
        Raises: sqlite3.Error / OSError, with the rows put back in front of the queue."""
        with self._lock:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), 10 * BATCH))]
            self._inflight = len(batch)
        if not batch:
            return False
        try:
            usage_store.insert(db, batch)
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
