"""The usage store in PostgreSQL (`general_settings.database_url: postgresql://...`), shared by
every instance: the SQLite schema and columns, a schema-version table, COPY batches, and the
aggregate reads over everyone's rows. Used only from the ledger's writer thread, which drives
asyncpg on a private event loop; a lost connection is re-opened on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.events import RequestFinished
from proxy.secret import redact_url
from proxy.store.usage_sqlite import COLUMNS, as_row

if TYPE_CHECKING:  # imported where used: the module loads without the [scale] extra
    import asyncpg  # type: ignore[import-untyped]

T = TypeVar("T")
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 10.0
_LOCK_ID = 0x6C6C6D70  # pg_advisory_xact_lock: one instance migrates at a time

_V1 = (
    """CREATE TABLE IF NOT EXISTS requests (
        id TEXT, time DOUBLE PRECISION NOT NULL, day TEXT NOT NULL, grp TEXT NOT NULL,
        deployment TEXT, provider TEXT, kind TEXT, stream INT, status INT,
        prompt_tokens BIGINT, completion_tokens BIGINT, cached_tokens BIGINT,
        cost DOUBLE PRECISION NULL, cost_saved DOUBLE PRECISION NULL,
        latency_ms DOUBLE PRECISION, ttft_ms DOUBLE PRECISION NULL, cache TEXT, attempts INT,
        fallback TEXT NULL, error TEXT NULL, estimated INT)""",
    "CREATE INDEX IF NOT EXISTS requests_day_grp ON requests (day, grp)",
    "CREATE INDEX IF NOT EXISTS requests_dep_day ON requests (deployment, day)",
    "CREATE INDEX IF NOT EXISTS requests_time ON requests (time)",
)
_V2 = (  # as SQLite's v2: rows from before it came through Chat Completions, client unnamed
    "ALTER TABLE requests ADD COLUMN IF NOT EXISTS front_door TEXT NOT NULL DEFAULT 'chat'",
    "ALTER TABLE requests ADD COLUMN IF NOT EXISTS client TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE requests ADD COLUMN IF NOT EXISTS session TEXT NULL",
)
_V3 = (  # as SQLite's v3: the virtual key of each request; NULL for the master key
    "ALTER TABLE requests ADD COLUMN IF NOT EXISTS key_alias TEXT NULL",
)
MIGRATIONS: list[tuple[str, ...]] = [_V1, _V2, _V3]
"""MIGRATIONS[n] takes the schema from version n to n + 1; append, never edit a shipped one."""
SCHEMA_VERSION = len(MIGRATIONS)

_SUMS = """
SELECT grp, deployment, day, client, COUNT(*)::bigint,
       COALESCE(SUM(prompt_tokens), 0)::bigint,
       COALESCE(SUM(completion_tokens), 0)::bigint, COALESCE(SUM(cost), 0)::float8,
       COUNT(*) FILTER (WHERE cost IS NULL AND status < 400)::bigint,
       COUNT(*) FILTER (WHERE status >= 400)::bigint, COUNT(*) FILTER (WHERE cache = 'hit')::bigint
FROM requests GROUP BY grp, deployment, day, client"""
_LATENCIES = """
SELECT grp, deployment, day, client, latency_ms FROM requests
WHERE status < 400 AND cache <> 'hit' ORDER BY time DESC LIMIT $1"""
_HOURLY = """
SELECT (FLOOR(time / 3600) * 3600)::bigint AS hour, COALESCE(SUM(cost), 0)::float8 FROM requests
WHERE time >= $1 GROUP BY hour"""

_SPEND = """
SELECT deployment, provider, COALESCE(SUM(cost), 0)::float8 FROM requests
WHERE time >= $1 AND deployment IS NOT NULL GROUP BY deployment, provider"""


def is_postgres_url(url: str) -> bool:
    """Returns: whether `database_url` names PostgreSQL."""
    return url.startswith(("postgresql://", "postgres://"))


class PostgresBackend:
    """The usage store in a PostgreSQL database; several instances share its table."""

    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection | None = None

    def describe(self) -> str:
        """Returns: the URL with its password (and any secret query value) replaced by `***`."""
        return redact_url(self.url)

    def open(self) -> None:
        """Connects and migrates. Raises: OSError, asyncpg errors, TimeoutError."""
        self._call(lambda _conn: asyncio.sleep(0))

    def close(self) -> None:
        """Closes the connection and the private loop."""
        conn, self._conn = self._conn, None
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if conn is not None:
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(conn.close(), 2.0))
            if not conn.is_closed():
                conn.terminate()
        loop.close()

    def insert(self, events: list[RequestFinished]) -> None:
        """Writes the rows with one COPY (all or none)."""
        rows = [as_row(ev) for ev in events]

        async def copy(conn: asyncpg.Connection) -> None:
            await conn.copy_records_to_table("requests", records=rows, columns=list(COLUMNS))

        self._call(copy)

    def prune(self, before: float) -> int:
        """Deletes rows older than unix time `before`. Returns: how many."""
        status = self._call(lambda c: c.execute("DELETE FROM requests WHERE time < $1", before))
        return int(str(status).rsplit(" ", 1)[-1] or 0)

    def load_sums(self) -> list[tuple[Any, ...]]:
        """Returns: per (grp, deployment, day, client) the counters `usage_store.load_sums`
        returns."""
        return [tuple(r) for r in self._call(lambda c: c.fetch(_SUMS))]

    def load_latencies(self, limit: int) -> list[tuple[Any, ...]]:
        """Returns: (grp, deployment, day, client, latency_ms) of the latest rows, oldest
        first."""
        rows = [tuple(r) for r in self._call(lambda c: c.fetch(_LATENCIES, limit))]
        rows.reverse()
        return rows

    def load_hourly_cost(self, since: float) -> list[tuple[Any, ...]]:
        """Returns: (hour unix ts, cost) for rows at or after `since`."""
        return [tuple(r) for r in self._call(lambda c: c.fetch(_HOURLY, since))]

    def spend_since(self, since: float) -> list[tuple[Any, ...]]:
        """Returns: (deployment, provider, cost) summed over every instance's rows at or after
        unix time `since` (what the deployment and provider budgets count). Blocking."""
        return [tuple(r) for r in self._call(lambda c: c.fetch(_SPEND, since))]

    def _call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Runs `fn` on the connection (opened and migrated first if needed); any failure
        drops the connection so the next call reconnects."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            return self._loop.run_until_complete(self._run(fn))
        except BaseException:
            self._drop()
            raise

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            conn = await asyncpg.connect(
                self.url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
            )
            try:
                await migrate(conn)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return await fn(self._conn)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


async def migrate(conn: asyncpg.Connection) -> int:
    """Brings the schema up to SCHEMA_VERSION, one transaction, one instance at a time.

    Returns:
        The version the database was at before.

    Raises:
        RuntimeError: the database is newer than this code.
        asyncpg.PostgresError: a step failed.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute("CREATE TABLE IF NOT EXISTS llmproxy_schema (version INT NOT NULL)")
        before = await conn.fetchval("SELECT MAX(version) FROM llmproxy_schema") or 0
        if before > SCHEMA_VERSION:
            raise RuntimeError(
                f"usage database schema v{before} is newer than this llmproxy-tui "
                f"(v{SCHEMA_VERSION})"
            )
        for version in range(before, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
        if before < SCHEMA_VERSION:
            await conn.execute("DELETE FROM llmproxy_schema")
            await conn.execute("INSERT INTO llmproxy_schema VALUES ($1)", SCHEMA_VERSION)
    return int(before)
