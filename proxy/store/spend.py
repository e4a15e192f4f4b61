"""Spend by virtual key, group, client, session and day: the running sums the state document
shows (`RunningSpend`), the reads of the usage rows behind them and behind `llmproxy-tui spend`
(SQLite read-only, or PostgreSQL), and the today / 7 days / 30 days report (`report`).

Rows written before the usage store had a `key_alias` column, and the master key's own rows,
count as MASTER.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from proxy.events import RequestFinished
from proxy.store.rollups import NameCap
from proxy.store.usage_sqlite import MAX_CLIENT_CHARS, MAX_SESSION_CHARS, utc_day

MASTER = "(master)"
"""What the rows of the master key (or of a proxy without keys) are counted under."""
UNNAMED = "(unnamed)"
"""The client of requests whose User-Agent named none."""
DIMENSIONS = ("key", "group", "client", "day")
"""What `llmproxy-tui spend --by` accepts."""
Dimension = Literal["key", "group", "client", "session", "day"]
_COLUMN: dict[str, str] = {
    "key": "key_alias",
    "group": "grp",
    "client": "client",
    "session": "session",
    "day": "day",
}
MAX_SESSIONS = 500
"""Sessions the running sums keep (the most recently active); older ones are let go."""
DAY_S = 86400.0
WINDOWS = (("today", 1), ("last_7d", 7), ("last_30d", 30))
"""The report's columns: (name, days ending today)."""

Counters = list[float]  # [requests, tokens_in, tokens_out, cost]


def _new() -> Counters:
    return [0, 0, 0, 0.0]


def _add(slot: Counters, requests: float, tokens_in: float, tokens_out: float, cost: float) -> None:
    slot[0] += requests
    slot[1] += tokens_in
    slot[2] += tokens_out
    slot[3] += cost


class RunningSpend:
    """Spend per key, client, session and group, per UTC day, kept as requests are recorded.

    Not thread-safe: the usage ledger calls it under its own lock.
    """

    def __init__(self, known_groups: Iterable[str] = ()) -> None:
        self._names = {
            "key": NameCap(),
            "client": NameCap(),
            "group": NameCap(known_groups),
        }
        self._sums: dict[str, dict[str, dict[str, Counters]]] = {d: {} for d in self._names}
        self._sessions: OrderedDict[str, dict[str, Counters]] = OrderedDict()

    def clear(self) -> None:
        """Forgets every sum (before a reload of a shared store)."""
        for table in self._sums.values():
            table.clear()
        self._sessions.clear()

    def add(self, ev: RequestFinished) -> None:
        """Counts one finished request."""
        day = utc_day(ev.time)
        counts = (1, ev.prompt_tokens, ev.completion_tokens, ev.cost or 0.0)
        self._put("key", ev.key_alias or MASTER, day, counts)
        self._put("client", (ev.client or "")[:MAX_CLIENT_CHARS] or UNNAMED, day, counts)
        self._put("group", ev.group, day, counts)
        if ev.session:
            self._put_session(ev.session[:MAX_SESSION_CHARS], day, counts)

    def load(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Adds stored sums: (dimension, name, day, requests, tokens in, tokens out, cost)."""
        for dim, name, day, *counts in rows:
            values = tuple(float(c or 0) for c in counts)
            if dim == "session":
                if name:
                    self._put_session(str(name), str(day), values)
            elif dim in self._sums:
                self._put(str(dim), _shown_name(str(dim), name), str(day), values)

    def _put(self, dim: str, name: str, day: str, counts: tuple[float, ...]) -> None:
        name = self._names[dim](name)
        slot = self._sums[dim].setdefault(name, {}).setdefault(day, _new())
        _add(slot, *counts)

    def _put_session(self, name: str, day: str, counts: tuple[float, ...]) -> None:
        days = self._sessions.get(name)
        if days is None:
            days = self._sessions[name] = {}
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(name)
        _add(days.setdefault(day, _new()), *counts)

    def snapshot(self, today: str) -> dict[str, list[dict[str, Any]]]:
        """The `spend` object of `GET /llmproxy/state`.

        Returns:
            by_key, by_client, by_session, by_group (all stored time) and their `*_today`
            lists, each row `{<dimension>: name, requests, tokens_in, tokens_out, cost}`,
            costliest first.
        """
        out: dict[str, list[dict[str, Any]]] = {}
        tables: list[tuple[str, dict[str, dict[str, Counters]]]] = [
            ("key", self._sums["key"]),
            ("client", self._sums["client"]),
            ("session", dict(self._sessions)),
            ("group", self._sums["group"]),
        ]
        for dim, table in tables:
            total: list[dict[str, Any]] = []
            today_rows: list[dict[str, Any]] = []
            for name, days in table.items():
                slot = _new()
                for counts in days.values():
                    _add(slot, *counts)
                total.append(_row(dim, name, slot))
                if today in days:
                    today_rows.append(_row(dim, name, days[today]))
            out[f"by_{dim}"] = _costliest(total)
            out[f"by_{dim}_today"] = _costliest(today_rows)
        return out


def _row(dim: str, name: str, counts: Counters) -> dict[str, Any]:
    return {
        dim: name,
        "requests": int(counts[0]),
        "tokens_in": int(counts[1]),
        "tokens_out": int(counts[2]),
        "cost": round(counts[3], 10),
    }


def _costliest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["cost"], -r["requests"], str(next(iter(r.values())))))


def _shown_name(dim: str, name: Any) -> str:
    if dim == "key":
        return str(name) if name else MASTER
    if dim == "client":
        return str(name) if name else UNNAMED
    return str(name)


# --- reading the usage rows --------------------------------------------------------------


def _select(dim: str, has_key_column: bool, placeholder: str) -> str:
    column = _COLUMN[dim]
    if dim == "key" and not has_key_column:
        column = "NULL"
    where = f"time >= {placeholder}"
    if dim == "session":
        where += " AND session IS NOT NULL"
    return (
        f"SELECT {column}, day, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        f"SUM(cost) FROM requests WHERE {where} GROUP BY {column}, day"
    )


def sqlite_has_key_column(db: sqlite3.Connection) -> bool:
    """Returns: whether the usage rows have a `key_alias` column (newer stores)."""
    return any(row[1] == "key_alias" for row in db.execute("PRAGMA table_info(requests)"))


def read_sqlite(path: Path, dims: Iterable[str], since: float) -> list[tuple[Any, ...]] | None:
    """Reads per-day sums from a usage file on a read-only connection of its own (WAL lets
    the writer go on). Blocking: call it in a thread.

    Args:
        path: the SQLite usage file.
        dims: the dimensions wanted (key, group, client, session, day).
        since: unix time of the oldest row counted.

    Returns:
        (dimension, name, day, requests, tokens in, tokens out, cost) rows, names as stored
        (None for a key means the master key); None when the file or its table does not exist.

    Raises:
        sqlite3.Error: the file cannot be read (not a database, locked too long).
    """
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    try:
        if not db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'"
        ).fetchone():
            return None
        has_key = sqlite_has_key_column(db)
        out: list[tuple[Any, ...]] = []
        for dim in dims:
            rows = db.execute(_select(dim, has_key, "?"), (since,)).fetchall()
            out += [(dim, *row) for row in rows]
        return out
    finally:
        db.close()


async def read_postgres(url: str, dims: Iterable[str], since: float) -> list[tuple[Any, ...]]:
    """Reads per-day sums from a PostgreSQL usage store (every instance's rows).

    Returns:
        Rows as `read_sqlite`; none when the table does not exist yet.

    Raises:
        OSError, asyncpg errors: the database cannot be reached or read.
    """
    import asyncpg  # type: ignore[import-untyped]  # the [scale] extra

    conn = await asyncpg.connect(url, timeout=3.0, command_timeout=10.0)
    try:
        columns = {
            r[0]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
            )
        }
        if not columns:
            return []
        out: list[tuple[Any, ...]] = []
        for dim in dims:
            rows = await conn.fetch(_select(dim, "key_alias" in columns, "$1"), since)
            out += [(dim, *tuple(row)) for row in rows]
        return out
    finally:
        await conn.close()


def read_shared(backend: Any, dims: Iterable[str]) -> list[tuple[Any, ...]]:
    """Reads per-day sums (every stored row) through a PostgreSQL usage backend's own
    connection, from the ledger's writer thread (it drives that connection). Blocking.

    Returns:
        Rows as `read_sqlite`.

    Raises:
        asyncpg errors, OSError: the database cannot be read.
    """

    async def fetch(conn: Any) -> list[tuple[Any, ...]]:
        found = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
        )
        has_key = "key_alias" in {r[0] for r in found}
        out: list[tuple[Any, ...]] = []
        for dim in dims:
            rows = await conn.fetch(_select(dim, has_key, "$1"), 0.0)
            out += [(dim, *tuple(row)) for row in rows]
        return out

    result: list[tuple[Any, ...]] = backend._call(fetch)  # the writer thread's connection
    return result


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendRow:
    """One line of `llmproxy-tui spend`."""

    name: str
    requests: int
    tokens_in: int
    tokens_out: int
    cost: float
    """USD over the whole `--since` window."""
    today: float
    last_7d: float
    last_30d: float

    def as_dict(self, by: str) -> dict[str, Any]:
        """Returns: the row keyed by column name, the dimension's value under `by`."""
        return {
            by: self.name,
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "today": round(self.today, 10),
            "last_7d": round(self.last_7d, 10),
            "last_30d": round(self.last_30d, 10),
            "total": round(self.cost, 10),
        }


def report(rows: Iterable[tuple[Any, ...]], by: str, now: float) -> list[SpendRow]:
    """Folds per-day sums into the report: one row per name, costliest first (by day: newest
    day first), with what it spent today, in the last 7 and 30 days (UTC days, today included)
    and over every row given.

    Args:
        rows: (dimension, name, day, requests, tokens in, tokens out, cost) rows; those of
            another dimension are skipped.
        by: the dimension reported (key, group, client, session or day).
        now: unix time "today" is taken from.

    Returns:
        The report's rows.
    """
    firsts = {name: utc_day(now - (days - 1) * DAY_S) for name, days in WINDOWS}
    acc: dict[str, list[float]] = {}
    for dim, name, day, requests, tokens_in, tokens_out, cost in rows:
        if dim != by:
            continue
        shown = _shown_name(by, name)
        slot = acc.setdefault(shown, [0, 0, 0, 0.0, 0.0, 0.0, 0.0])
        value = float(cost or 0)
        slot[0] += int(requests or 0)
        slot[1] += int(tokens_in or 0)
        slot[2] += int(tokens_out or 0)
        slot[3] += value
        for i, (window, _days) in enumerate(WINDOWS):
            if str(day) >= firsts[window]:
                slot[4 + i] += value
    out = [
        SpendRow(name, int(s[0]), int(s[1]), int(s[2]), s[3], s[4], s[5], s[6])
        for name, s in acc.items()
    ]
    if by == "day":
        return sorted(out, key=lambda r: r.name, reverse=True)
    return sorted(out, key=lambda r: (-r.cost, -r.requests, r.name))
