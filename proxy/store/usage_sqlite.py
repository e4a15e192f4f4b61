"""The usage database: SQLite schema and its migrations, row inserts, pruning and the reads
that rebuild the in-memory aggregates at start. Used only by `UsageLedger`'s writer thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from proxy.events import RequestFinished

COLUMNS = (
    "id", "time", "day", "grp", "deployment", "provider", "kind", "stream", "status",
    "prompt_tokens", "completion_tokens", "cached_tokens", "cost", "cost_saved", "latency_ms",
    "ttft_ms", "cache", "attempts", "fallback", "error", "estimated",
    "front_door", "client", "session", "key_alias",
)  # fmt: skip
_INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
BUSY_TIMEOUT_MS = 200  # short: a locked file is retried by the writer loop, not waited on
MAX_CLIENT_CHARS = 64
MAX_SESSION_CHARS = 200
"""Client and session come from the request: a hostile one cannot grow the rows without bound."""
MAX_ALIAS_CHARS = 200


def utc_day(t: float) -> str:
    """Returns: the UTC date of unix time `t`, as YYYY-MM-DD."""
    return _day_of(int(t // 86400))


@functools.lru_cache(maxsize=512)
def _day_of(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86400, tz=UTC).strftime("%Y-%m-%d")


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS requests (
            id TEXT, time REAL NOT NULL, day TEXT NOT NULL, grp TEXT NOT NULL,
            deployment TEXT, provider TEXT, kind TEXT, stream INT, status INT,
            prompt_tokens INT, completion_tokens INT, cached_tokens INT,
            cost REAL NULL, cost_saved REAL NULL, latency_ms REAL, ttft_ms REAL NULL,
            cache TEXT, attempts INT, fallback TEXT NULL, error TEXT NULL, estimated INT)"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS requests_day_grp ON requests (day, grp)")
    db.execute("CREATE INDEX IF NOT EXISTS requests_dep_day ON requests (deployment, day)")
    db.execute("CREATE INDEX IF NOT EXISTS requests_time ON requests (time)")


def _v2(db: sqlite3.Connection) -> None:
    # Rows from before v2 all came through Chat Completions, from clients nobody named.
    db.execute("ALTER TABLE requests ADD COLUMN front_door TEXT NOT NULL DEFAULT 'chat'")
    db.execute("ALTER TABLE requests ADD COLUMN client TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE requests ADD COLUMN session TEXT NULL")


def _v3(db: sqlite3.Connection) -> None:
    # The virtual key of each request (its alias, else its redacted name); NULL: the master key.
    db.execute("ALTER TABLE requests ADD COLUMN key_alias TEXT NULL")


# MIGRATIONS[n] takes a database at user_version n to n + 1. A schema change appends a
# function here (v3 -> v4 next); never edit one that has shipped.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Brings the schema up to SCHEMA_VERSION, one transaction per step.

    Returns:
        The version the database was at before.

    Raises:
        sqlite3.Error: the database is newer than this code, or a step failed.
    """
    before = int(db.execute("PRAGMA user_version").fetchone()[0])
    if before > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"usage database schema v{before} is newer than this llmproxy-tui (v{SCHEMA_VERSION})"
        )
    for version in range(before, SCHEMA_VERSION):
        with db:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return before


def open_db(path: Path | None) -> sqlite3.Connection:
    """Opens (creating parents and schema) the usage database; `None` is in-memory.

    Returns:
        A connection usable from any thread under the caller's lock, in WAL mode for a file.

    Raises:
        OSError: the parent directory cannot be created.
        sqlite3.Error: the file cannot be opened, is locked or is not a database.
    """
    if path is not None:
        make_private(path)
    target = ":memory:" if path is None else str(path)
    db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        if path is not None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
"""Usage rows name clients, sessions and virtual keys: only their owner reads them."""


def make_private(path: Path) -> None:
    """Creates the database file (and missing parents) readable by its owner only, and takes
    group and other access off an existing file and its `-wal`/`-shm` (SQLite gives those the
    database file's mode).

    Raises:
        OSError: a parent directory or the file cannot be created.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if part.stat().st_mode & 0o077:
                part.chmod(PRIVATE_FILE)


def as_row(ev: RequestFinished) -> tuple[Any, ...]:
    """Returns: the `requests` row of one finished request (in COLUMNS order)."""
    return (
        ev.id, ev.time, utc_day(ev.time), ev.group, ev.deployment, ev.provider, ev.kind,
        int(ev.stream), ev.status, ev.prompt_tokens, ev.completion_tokens, ev.cached_tokens,
        ev.cost, ev.cost_saved, ev.latency_ms, ev.ttft_ms, ev.cache, ev.attempts, ev.fallback,
        ev.error, int(ev.tokens_estimated), ev.front_door, client_of(ev),
        ev.session[:MAX_SESSION_CHARS] if ev.session is not None else None,
        ev.key_alias[:MAX_ALIAS_CHARS] if ev.key_alias is not None else None,
    )  # fmt: skip


def client_of(ev: RequestFinished) -> str:
    """Returns: the client name as stored (cut to MAX_CLIENT_CHARS; "" when unnamed)."""
    return (ev.client or "")[:MAX_CLIENT_CHARS]


def insert(db: sqlite3.Connection, events: Iterable[RequestFinished]) -> None:
    """Writes the rows in one transaction (all or none).

    Raises:
        sqlite3.Error: disk full, locked, read-only...
    """
    with db:
        db.executemany(_INSERT, [as_row(ev) for ev in events])


def prune(db: sqlite3.Connection, before: float) -> int:
    """Deletes rows older than unix time `before`. Returns: how many."""
    with db:
        return db.execute("DELETE FROM requests WHERE time < ?", (before,)).rowcount


def load_sums(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Returns: per (grp, deployment, day, client): requests, tokens in, tokens out, cost,
    unknown-cost requests, errors and cache hits, over every stored row."""
    return db.execute(
        """SELECT grp, deployment, day, client, COUNT(*), SUM(prompt_tokens),
                  SUM(completion_tokens), TOTAL(cost), SUM(cost IS NULL AND status < 400),
                  SUM(status >= 400), SUM(cache = 'hit')
           FROM requests GROUP BY grp, deployment, day, client"""
    ).fetchall()


def load_latencies(db: sqlite3.Connection, limit: int) -> list[tuple[Any, ...]]:
    """Returns: (grp, deployment, day, client, latency_ms) of the `limit` latest timed rows,
    oldest first."""
    rows = db.execute(
        """SELECT grp, deployment, day, client, latency_ms FROM requests
           WHERE status < 400 AND cache != 'hit' ORDER BY time DESC LIMIT ?""",
        (limit,),
    ).fetchall()
    rows.reverse()
    return rows


def load_hourly_cost(db: sqlite3.Connection, since: float) -> list[tuple[Any, ...]]:
    """Returns: (hour unix ts, cost) for rows at or after `since`."""
    return db.execute(
        """SELECT CAST(time / 3600 AS INT) * 3600 AS hour, TOTAL(cost) FROM requests
           WHERE time >= ? GROUP BY hour""",
        (since,),
    ).fetchall()


class UsageBackend(Protocol):
    """A usage store as the ledger's writer thread uses it (every call from that thread)."""

    shared: bool
    """Several instances write it: the ledger re-reads its aggregates periodically."""

    def describe(self) -> str:
        """Returns: where the rows go (a path, or a URL without its password)."""
        ...

    def open(self) -> None:
        """Connects and brings the schema up to date. Raises: the store's error."""

    def close(self) -> None:
        """Closes the connection; safe to call when not open."""

    def insert(self, events: list[RequestFinished]) -> None:
        """Writes the rows in one transaction. Raises: the store's error (nothing written)."""

    def prune(self, before: float) -> int:
        """Deletes rows older than unix time `before`. Returns: how many."""
        ...

    def load_sums(self) -> list[tuple[Any, ...]]:
        """Returns: rows as `load_sums` below."""
        ...

    def load_latencies(self, limit: int) -> list[tuple[Any, ...]]:
        """Returns: rows as `load_latencies` below."""
        ...

    def load_hourly_cost(self, since: float) -> list[tuple[Any, ...]]:
        """Returns: rows as `load_hourly_cost` below."""
        ...


class SqliteBackend:
    """The usage store in one SQLite file (or in memory): this instance's rows only."""

    shared = False

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def describe(self) -> str:
        """Returns: the file's path, or `:memory:`."""
        return str(self.path) if self.path else ":memory:"

    def open(self) -> None:
        """Opens the file (see `open_db`). Raises: OSError, sqlite3.Error."""
        if self._db is None:
            self._db = open_db(self.path)

    def close(self) -> None:
        """Closes the file."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def insert(self, events: list[RequestFinished]) -> None:
        """See `insert`."""
        insert(self._conn(), events)

    def prune(self, before: float) -> int:
        """See `prune`."""
        return prune(self._conn(), before)

    def load_sums(self) -> list[tuple[Any, ...]]:
        """See `load_sums`."""
        return load_sums(self._conn())

    def load_latencies(self, limit: int) -> list[tuple[Any, ...]]:
        """See `load_latencies`."""
        return load_latencies(self._conn(), limit)

    def load_hourly_cost(self, since: float) -> list[tuple[Any, ...]]:
        """See `load_hourly_cost`."""
        return load_hourly_cost(self._conn(), since)


def spend_since(db: sqlite3.Connection, since: float) -> list[tuple[Any, ...]]:
    """Returns: (deployment, provider, cost) summed over the rows at or after unix time
    `since` that have a deployment (what the deployment and provider budgets count)."""
    return db.execute(
        """SELECT deployment, provider, TOTAL(cost) FROM requests
           WHERE time >= ? AND deployment IS NOT NULL GROUP BY deployment, provider""",
        (since,),
    ).fetchall()


def read_spend(path: Path | None, since: float) -> list[tuple[Any, ...]]:
    """Reads `spend_since` from the usage file on a connection of its own, read-only (the
    ledger's writer keeps its own; WAL lets both read). Blocking: call it in a thread.

    Returns:
        The rows of `spend_since`; none for an in-memory store, a file not created yet, or
        one without the table yet.

    Raises:
        sqlite3.Error: the file cannot be read.
    """
    if path is None or not path.exists():
        return []
    uri = f"{path.resolve().as_uri()}?mode=ro"  # quoted: a path may hold `?` or `#`
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'"
        ).fetchone()
        return spend_since(db, since) if has_table else []
    finally:
        db.close()
