"""Virtual keys in the usage store: the `virtual_keys` table in the usage database's SQLite file
(or PostgreSQL when `general_settings.database_url` names it).

A key is stored only as its SHA-256 (`token`) and a redacted name (`sk-...abcd`); the key
itself never reaches the table. Spend is written as deltas (`spend = spend + ?`), so several
writers (two instances, the command line) add up instead of overwriting each other. Every call
here blocks: callers run them in a thread (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson

from proxy.secret import redact_url
from proxy.store.usage_sqlite import make_private

if TYPE_CHECKING:  # imported where used: the module loads without the [scale] extra
    import asyncpg  # type: ignore[import-untyped]

T = TypeVar("T")
BUSY_TIMEOUT_S = 5.0
"""How long a write waits for the file when another process (the CLI) holds it: management
writes and spend flushes are off the request path, so waiting is fine."""
PG_CONNECT_TIMEOUT = 3.0
PG_COMMAND_TIMEOUT = 10.0
_LOCK_ID = 0x6C6C6D6B  # pg_advisory_xact_lock while creating the table

COLUMNS = (
    "token", "key_name", "key_alias", "models", "max_budget", "budget_duration",
    "budget_reset_at", "soft_budget", "rpm_limit", "tpm_limit", "max_parallel_requests",
    "expires", "metadata", "blocked", "spend", "created_at", "updated_at", "last_used",
)  # fmt: skip
EDITABLE = frozenset(COLUMNS) - {"token", "key_name", "created_at"}
"""The columns `update` may set."""

_SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS virtual_keys (
    token TEXT PRIMARY KEY, key_name TEXT NOT NULL, key_alias TEXT NULL,
    models TEXT NOT NULL DEFAULT '[]', max_budget REAL NULL, budget_duration TEXT NULL,
    budget_reset_at REAL NULL, soft_budget REAL NULL, rpm_limit INT NULL, tpm_limit INT NULL,
    max_parallel_requests INT NULL, expires REAL NULL, metadata TEXT NOT NULL DEFAULT '{}',
    blocked INT NOT NULL DEFAULT 0, spend REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, last_used REAL NULL)"""
_PG_TABLE = """CREATE TABLE IF NOT EXISTS virtual_keys (
    token TEXT PRIMARY KEY, key_name TEXT NOT NULL, key_alias TEXT NULL,
    models TEXT NOT NULL DEFAULT '[]', max_budget DOUBLE PRECISION NULL,
    budget_duration TEXT NULL, budget_reset_at DOUBLE PRECISION NULL,
    soft_budget DOUBLE PRECISION NULL, rpm_limit BIGINT NULL, tpm_limit BIGINT NULL,
    max_parallel_requests BIGINT NULL, expires DOUBLE PRECISION NULL,
    metadata TEXT NOT NULL DEFAULT '{}', blocked INT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, last_used DOUBLE PRECISION NULL)"""


class KeyExistsError(Exception):
    """`insert` of a token that is already stored."""


@dataclass(frozen=True)
class KeyRow:
    """One stored virtual key (never the key itself: its hash and redacted name)."""

    token: str
    """SHA-256 of the key, hex."""
    key_name: str
    """The key redacted: `sk-...abcd`."""
    key_alias: str | None = None
    models: tuple[str, ...] = ()
    """Groups, wildcards (`openai/*`) or aliases it may call; empty: all."""
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    soft_budget: float | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    expires: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    blocked: bool = False
    spend: float = 0.0
    """USD spent in the current budget window."""
    created_at: float = 0.0
    updated_at: float = 0.0
    last_used: float | None = None

    @property
    def alias(self) -> str:
        """Returns: the name to show: the alias, else the redacted key name."""
        return self.key_alias or self.key_name

    def with_fields(self, **changes: Any) -> KeyRow:
        """Returns: a copy with `changes` applied."""
        return replace(self, **changes)


def hash_key(key: str) -> str:
    """Returns: the SHA-256 of a key, hex (the stored `token`)."""
    return hashlib.sha256(key.encode()).hexdigest()


def redacted_name(key: str) -> str:
    """Returns: `sk-...abcd`, the key's last 4 characters (what may be shown)."""
    return f"sk-...{key[-4:]}" if len(key) >= 8 else "sk-..."


def to_record(row: KeyRow) -> tuple[Any, ...]:
    """Returns: the row's values in COLUMNS order, as stored."""
    values = []
    for name in COLUMNS:
        value = getattr(row, name)
        if name == "models":
            value = orjson.dumps(list(value)).decode()
        elif name == "metadata":
            value = orjson.dumps(dict(value)).decode()
        elif name == "blocked":
            value = int(bool(value))
        values.append(value)
    return tuple(values)


def _encode(name: str, value: Any) -> Any:
    if name == "models":
        return orjson.dumps(list(value or ())).decode()
    if name == "metadata":
        return orjson.dumps(dict(value or {})).decode()
    if name == "blocked":
        return int(bool(value))
    return value


def from_record(values: Iterable[Any]) -> KeyRow:
    """Returns: the KeyRow of a stored row (COLUMNS order)."""
    doc = dict(zip(COLUMNS, values, strict=True))
    doc["models"] = tuple(orjson.loads(doc["models"] or "[]"))
    doc["metadata"] = orjson.loads(doc["metadata"] or "{}")
    doc["blocked"] = bool(doc["blocked"])
    doc["spend"] = float(doc["spend"] or 0.0)
    for name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
        if doc[name] is not None:
            doc[name] = int(doc[name])
    return KeyRow(**doc)


assert tuple(f.name for f in fields(KeyRow)) == COLUMNS


class KeyStore(Protocol):
    """Where virtual keys are kept. Every method blocks: call it from a thread."""

    def describe(self) -> str:
        """Returns: where the keys are (a path, or a URL without its password)."""
        ...

    def open(self) -> None:
        """Connects and creates the table. Raises: the store's error."""

    def close(self) -> None:
        """Closes the connection; safe when not open."""

    def load(self) -> list[KeyRow]:
        """Returns: every stored key."""
        ...

    def get(self, token: str) -> KeyRow | None:
        """Returns: the key with this hash, or None."""
        ...

    def insert(self, row: KeyRow) -> None:
        """Stores a new key. Raises: KeyExistsError, the token is taken."""

    def update(self, token: str, changes: Mapping[str, Any]) -> bool:
        """Sets columns of EDITABLE. Returns: whether the key exists."""
        ...

    def delete(self, tokens: list[str]) -> list[str]:
        """Deletes keys. Returns: the tokens that existed."""
        ...

    def add_spend(self, deltas: Mapping[str, tuple[float, float | None]]) -> None:
        """Adds each (spend delta, last used) to its key (`spend = spend + delta`)."""

    def reset_window(self, token: str, old_reset_at: float | None, new_reset_at: float) -> bool:
        """Starts a key's budget window over (spend 0) if no other writer already did
        (its `budget_reset_at` is still `old_reset_at`). Returns: whether this call did."""
        ...


class SqliteKeyStore:
    """Virtual keys in the usage database's SQLite file (or in memory for `None`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Returns: the file's path, or `:memory:`."""
        return str(self.path) if self.path else ":memory:"

    def open(self) -> None:
        """Opens the file (created private) and the table. Raises: OSError, sqlite3.Error."""
        with self._lock:
            self._conn()

    def close(self) -> None:
        """Closes the file."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None:
                make_private(self.path)
            target = ":memory:" if self.path is None else str(self.path)
            db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            try:
                if self.path is not None:
                    db.execute("PRAGMA journal_mode=WAL")
                with db:
                    db.execute(_SQLITE_TABLE)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def load(self) -> list[KeyRow]:
        """See KeyStore."""
        with self._lock:
            rows = self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM virtual_keys")
            return [from_record(r) for r in rows.fetchall()]

    def get(self, token: str) -> KeyRow | None:
        """See KeyStore."""
        with self._lock:
            found = (
                self._conn()
                .execute(f"SELECT {', '.join(COLUMNS)} FROM virtual_keys WHERE token = ?", (token,))
                .fetchone()
            )
        return None if found is None else from_record(found)

    def insert(self, row: KeyRow) -> None:
        """See KeyStore."""
        marks = ", ".join("?" * len(COLUMNS))
        with self._lock:
            db = self._conn()
            try:
                with db:
                    db.execute(
                        f"INSERT INTO virtual_keys ({', '.join(COLUMNS)}) VALUES ({marks})",
                        to_record(row),
                    )
            except sqlite3.IntegrityError:
                raise KeyExistsError(row.key_name) from None

    def update(self, token: str, changes: Mapping[str, Any]) -> bool:
        """See KeyStore."""
        names = [n for n in changes if n in EDITABLE]
        if not names:
            return self.get(token) is not None
        sets = ", ".join(f"{n} = ?" for n in names)
        values = [_encode(n, changes[n]) for n in names]
        with self._lock:
            db = self._conn()
            with db:
                cur = db.execute(
                    f"UPDATE virtual_keys SET {sets} WHERE token = ?", (*values, token)
                )
            return cur.rowcount > 0

    def delete(self, tokens: list[str]) -> list[str]:
        """See KeyStore."""
        gone = []
        with self._lock:
            db = self._conn()
            with db:
                for token in tokens:
                    if db.execute("DELETE FROM virtual_keys WHERE token = ?", (token,)).rowcount:
                        gone.append(token)
        return gone

    def add_spend(self, deltas: Mapping[str, tuple[float, float | None]]) -> None:
        """See KeyStore."""
        if not deltas:
            return
        with self._lock:
            db = self._conn()
            with db:
                db.executemany(
                    "UPDATE virtual_keys SET spend = spend + ?, "
                    "last_used = MAX(COALESCE(last_used, 0), COALESCE(?, 0)) WHERE token = ?",
                    [(d, used, token) for token, (d, used) in deltas.items()],
                )

    def reset_window(self, token: str, old_reset_at: float | None, new_reset_at: float) -> bool:
        """See KeyStore."""
        with self._lock:
            db = self._conn()
            with db:
                cur = db.execute(
                    "UPDATE virtual_keys SET spend = 0, budget_reset_at = ? "
                    "WHERE token = ? AND budget_reset_at IS ?",
                    (new_reset_at, token, old_reset_at),
                )
            return cur.rowcount > 0


class PostgresKeyStore:
    """Virtual keys in PostgreSQL, shared by every instance: one connection driven on a private
    event loop under a lock (callers come from any thread); a lost connection is re-opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Returns: the URL with its password replaced by `***`."""
        return redact_url(self.url)

    def open(self) -> None:
        """Connects and creates the table. Raises: OSError, asyncpg errors, TimeoutError."""
        self._call(lambda _conn: asyncio.sleep(0))

    def close(self) -> None:
        """Closes the connection and the private loop."""
        with self._lock:
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

    def load(self) -> list[KeyRow]:
        """See KeyStore."""
        rows = self._call(lambda c: c.fetch(f"SELECT {', '.join(COLUMNS)} FROM virtual_keys"))
        return [from_record(tuple(r)) for r in rows]

    def get(self, token: str) -> KeyRow | None:
        """See KeyStore."""
        query = f"SELECT {', '.join(COLUMNS)} FROM virtual_keys WHERE token = $1"
        found = self._call(lambda c: c.fetchrow(query, token))
        return None if found is None else from_record(tuple(found))

    def insert(self, row: KeyRow) -> None:
        """See KeyStore."""
        import asyncpg

        marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
        query = f"INSERT INTO virtual_keys ({', '.join(COLUMNS)}) VALUES ({marks})"
        try:
            self._call(lambda c: c.execute(query, *to_record(row)))
        except asyncpg.UniqueViolationError:
            raise KeyExistsError(row.key_name) from None

    def update(self, token: str, changes: Mapping[str, Any]) -> bool:
        """See KeyStore."""
        names = [n for n in changes if n in EDITABLE]
        if not names:
            return self.get(token) is not None
        sets = ", ".join(f"{n} = ${i + 1}" for i, n in enumerate(names))
        values = [_encode(n, changes[n]) for n in names]
        query = f"UPDATE virtual_keys SET {sets} WHERE token = ${len(names) + 1}"
        status = self._call(lambda c: c.execute(query, *values, token))
        return _count(status) > 0

    def delete(self, tokens: list[str]) -> list[str]:
        """See KeyStore."""

        async def run(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(
                "DELETE FROM virtual_keys WHERE token = ANY($1::text[]) RETURNING token", tokens
            )
            return [str(r[0]) for r in rows]

        return self._call(run)

    def add_spend(self, deltas: Mapping[str, tuple[float, float | None]]) -> None:
        """See KeyStore."""
        if not deltas:
            return
        args = [(d, used, token) for token, (d, used) in deltas.items()]

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():  # all or none: a failed write is retried whole
                await conn.executemany(
                    "UPDATE virtual_keys SET spend = spend + $1, "
                    "last_used = GREATEST(COALESCE(last_used, 0), COALESCE($2, 0)) "
                    "WHERE token = $3",
                    args,
                )

        self._call(run)

    def reset_window(self, token: str, old_reset_at: float | None, new_reset_at: float) -> bool:
        """See KeyStore."""
        query = (
            "UPDATE virtual_keys SET spend = 0, budget_reset_at = $1 "
            "WHERE token = $2 AND budget_reset_at IS NOT DISTINCT FROM $3"
        )
        status = self._call(lambda c: c.execute(query, new_reset_at, token, old_reset_at))
        return _count(status) > 0

    def _call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            try:
                return self._loop.run_until_complete(self._run(fn))
            except BaseException:
                conn, self._conn = self._conn, None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
                raise

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            conn = await asyncpg.connect(
                self.url, timeout=PG_CONNECT_TIMEOUT, command_timeout=PG_COMMAND_TIMEOUT
            )
            try:
                async with conn.transaction():  # one instance creates the table at a time
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
                    await conn.execute(_PG_TABLE)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return await fn(self._conn)


def _count(status: object) -> int:
    tail = str(status).rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def store_for(database_url: str | None, usage_db: Path | None) -> KeyStore:
    """Returns: PostgreSQL when `database_url` is a postgresql:// URL, else the SQLite file."""
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(database_url)
    return SqliteKeyStore(usage_db)
