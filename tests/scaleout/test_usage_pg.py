"""The usage ledger on PostgreSQL: the SQLite schema, batches from two instances into one table,
team totals in every instance's snapshot, and rows kept while the database is unreachable."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from proxy.events import RequestFinished
from proxy.store.usage import UsageLedger
from proxy.store.usage_postgres import MIGRATIONS, SCHEMA_VERSION, PostgresBackend, is_postgres_url
from proxy.store.usage_sqlite import COLUMNS
from tests.conftest import free_port
from tests.scaleout.conftest import admin

NOW = time.time()


def event(n: int, **kw: object) -> RequestFinished:
    fields: dict[str, object] = dict(
        id=f"req-{n}", time=NOW - 10, group="fast", deployment="openai-1", provider="openai",
        status=200, latency_ms=100.0 + n, ttft_ms=None, prompt_tokens=10, completion_tokens=5,
        cost=0.001, cache="miss", attempts=1, fallback=None, stream=False,
    )  # fmt: skip
    fields.update(kw)
    return RequestFinished(**fields)  # type: ignore[arg-type]


def pg_ledger(url: str, **kw: object) -> UsageLedger:
    led = UsageLedger(
        None, backend=PostgresBackend(url), flush_interval=0.02, refresh_interval=0.05, **kw
    )  # type: ignore[arg-type]
    led.start()
    return led


def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_for(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_schema_matches_sqlite(pg_url: str) -> None:
    led = pg_ledger(pg_url)
    try:
        led.record(event(1, cost=None, error="x", status=500, fallback="slow"))
        assert led.flush()
    finally:
        led.close()
    cols = fetch(pg_url, "SELECT column_name FROM information_schema.columns "
                         "WHERE table_name = 'requests' ORDER BY ordinal_position")  # fmt: skip
    assert tuple(r[0] for r in cols) == COLUMNS
    assert fetch(pg_url, "SELECT version FROM llmproxy_schema")[0][0] == SCHEMA_VERSION
    row = fetch(pg_url, "SELECT id, grp, status, cost, error, fallback, day FROM requests")[0]
    assert tuple(row)[:6] == ("req-1", "fast", 500, None, "x", "slow")
    indexes = {r[0] for r in fetch(pg_url, "SELECT indexname FROM pg_indexes")}
    assert {"requests_day_grp", "requests_dep_day", "requests_time"} <= indexes


def test_two_instances_one_table_team_totals(pg_url: str) -> None:
    a, b = pg_ledger(pg_url), pg_ledger(pg_url)
    try:
        for n in range(100):
            a.record(event(n, cost=0.01))
            b.record(event(1000 + n, group="slow", deployment="anthropic-1", cost=0.02))
        assert a.flush() and b.flush()
        assert fetch(pg_url, "SELECT COUNT(*) FROM requests")[0][0] == 200
        wait_for(lambda: a.snapshot()["totals"]["requests"] == 200)
        wait_for(lambda: b.snapshot()["totals"]["requests"] == 200)
        snap = b.snapshot()
        assert snap["totals"]["cost"] == pytest.approx(3.0)
        assert {r["group"]: r["requests"] for r in snap["by_group"]} == {"fast": 100, "slow": 100}
        assert {r["deployment"] for r in snap["by_deployment"]} == {"openai-1", "anthropic-1"}
        assert snap["today"]["requests"] == 200
        assert snap["totals"]["p50_ms"] is not None
        assert sum(cost for _h, cost in snap["spend_series"]) == pytest.approx(3.0)
        parts = urlsplit(pg_url)
        shown = a.backend.describe()  # the server and database, never the credentials
        assert shown.endswith(f"@{parts.hostname}:{parts.port}{parts.path}")
        assert "***@" in shown and (not parts.password or parts.password not in shown)
    finally:
        a.close()
        b.close()


def test_unreachable_then_back(pg_admin_url: str, pg_url: str) -> None:
    # A database that does not exist yet is a store that is down; creating it brings it back.
    name = f"llmproxy_{uuid.uuid4().hex[:10]}"
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    led = pg_ledger(url, max_pending=50)
    try:
        for n in range(60):
            led.record(event(n))
        wait_for(lambda: not led.ok)
        assert name in (led.error or "") and led.pending == 50 and led.dropped == 10
        assert led.snapshot()["totals"]["requests"] == 60  # local aggregates go on
        asyncio.run(admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
        assert led.flush(timeout=15)
        assert led.ok and led.error is None and led.pending == 0
        assert fetch(url, "SELECT COUNT(*) FROM requests")[0][0] == 50
    finally:
        led.close()
        asyncio.run(admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_no_server_at_all_never_raises() -> None:
    led = pg_ledger(f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x")
    try:
        led.record(event(1))
        wait_for(lambda: not led.ok)
        assert "secret" not in (led.error or "") and "***" in led.backend.describe()
        assert not led.flush(timeout=0.2)
    finally:
        led.close()


def test_retention_prunes_shared_rows(pg_url: str) -> None:
    led = pg_ledger(pg_url, retention_days=1)
    try:
        led.record(event(1, time=NOW - 3 * 86400))
        led.record(event(2))
        assert led.flush()
    finally:
        led.close()
    led = pg_ledger(pg_url, retention_days=1)  # prunes at open
    try:
        wait_for(lambda: led.snapshot()["totals"]["requests"] == 1)
        assert fetch(pg_url, "SELECT id FROM requests")[0][0] == "req-2"
    finally:
        led.close()


def test_migration_from_v1_keeps_old_rows(pg_url: str) -> None:
    async def v1_database() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("CREATE TABLE llmproxy_schema (version INT NOT NULL)")
            await conn.execute("INSERT INTO llmproxy_schema VALUES (1)")
            for statement in MIGRATIONS[0]:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO requests (id, time, day, grp, status, cost, latency_ms, cache) "
                "VALUES ('old-1', $1, 'x', 'fast', 200, 0.5, 100.0, 'miss')",
                NOW - 100,
            )
        finally:
            await conn.close()

    asyncio.run(v1_database())
    led = pg_ledger(pg_url)
    try:
        led.record(event(2, front_door="responses", client="Codex", session="s-1"))
        assert led.flush()
        wait_for(lambda: led.snapshot()["totals"]["requests"] == 2)
        clients = {r["client"]: r["requests"] for r in led.snapshot()["by_client"]}
        assert clients == {"": 1, "Codex": 1}
    finally:
        led.close()
    assert fetch(pg_url, "SELECT version FROM llmproxy_schema")[0][0] == SCHEMA_VERSION == 3
    stored = fetch(pg_url, "SELECT id, front_door, client, session FROM requests ORDER BY id")
    assert [tuple(r) for r in stored] == [
        ("old-1", "chat", "", None),
        ("req-2", "responses", "Codex", "s-1"),
    ]


def test_url_kinds() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("sqlite:///x.db")
