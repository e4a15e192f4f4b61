"""The SQLite usage store through the real proxy: one row per request under concurrency, rows
that survive a restart and a SIGTERM under load, the schema, retention, and a locked database
that fails the store (shown in the state) but never a request."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from proxy.events import RequestFinished
from proxy.store import usage_sqlite as usage_store
from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import reply

KEY = "sk-upstream-usage-1111bbbb"
MSG = [{"role": "user", "content": "count me"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def rows(db: Path, sql: str = "SELECT * FROM requests") -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def write_config(tmp_path: Path, fake: Any, **general: Any) -> Path:
    doc = {
        "model_list": [openai_deployment("gpt-4", fake, KEY, id="gpt4-a")],
        "general_settings": {"master_key": MASTER_KEY, **general},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_200_concurrent_requests_make_200_rows(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [openai_deployment("gpt-4", fake, KEY)]}, master_key=MASTER_KEY
    )
    client = proxy.async_openai()
    try:
        answers = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="gpt-4", messages=MSG, stream=i % 2 == 1
                )
                for i in range(200)
            )
        )
        for answer in answers[1::2]:
            async for _ in answer.parse():  # drain the streams
                pass
    finally:
        await client.close()
    ids = {a.headers["x-request-id"] for a in answers}
    assert len(ids) == 200
    assert await asyncio.to_thread(proxy.runtime.ledger.flush, 10)
    assert proxy.usage_db is not None
    stored = rows(proxy.usage_db, "SELECT id, status, stream, prompt_tokens FROM requests")
    assert len(stored) == 200
    assert {r[0] for r in stored} == ids
    assert all(r[1] == 200 and r[3] > 0 for r in stored)
    assert sum(r[2] for r in stored) == 100
    totals = (await asyncio.to_thread(proxy.state))["usage"]["totals"]
    assert totals["requests"] == 200


def test_rows_survive_a_restart(fake, run_cli, tmp_path: Path) -> None:
    config = write_config(tmp_path, fake)
    db = tmp_path / "kept.db"
    first = run_cli("--config", str(config), "--usage-db", str(db))
    for _ in range(3):
        r = httpx.post(
            first.url + "/v1/chat/completions",
            json={"model": "gpt-4", "messages": MSG},
            headers=AUTH,
        )
        assert r.status_code == 200
    assert first.terminate() == 0
    assert len(rows(db)) == 3
    second = run_cli("--config", str(config), "--usage-db", str(db))
    state = httpx.get(second.url + "/llmproxy/state", headers=AUTH).json()
    assert state["usage"]["totals"]["requests"] == 3
    assert state["usage"]["by_deployment"][0]["deployment"] == "gpt4-a"
    assert state["server"]["usage_store"]["path"] == str(db)
    assert second.terminate() == 0


async def test_sigterm_under_load_loses_no_row(fake, run_cli, tmp_path: Path) -> None:
    fake.set_default(reply("slow answer", delay=0.5))
    config = write_config(tmp_path, fake)
    db = tmp_path / "sigterm.db"
    proc = run_cli("--config", str(config), "--usage-db", str(db))
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=proc.url, headers=AUTH, limits=limits, timeout=30) as c:

        async def one(i: int) -> tuple[str, int | None]:
            await asyncio.sleep(i * 0.01)  # spread over a second: SIGTERM lands mid-way
            rid = f"req-{i:03d}"
            try:
                r = await c.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4", "messages": MSG},
                    headers={"x-request-id": rid},
                )
            except httpx.TransportError:
                return rid, None
            return rid, r.status_code

        tasks = [asyncio.create_task(one(i)) for i in range(100)]
        await asyncio.to_thread(fake.wait_requests, 30, 10)
        proc.proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*tasks)
        code = await asyncio.to_thread(proc.proc.wait, 30)
    assert code == 0, proc.output()
    ok = {rid for rid, status in results if status == 200}
    assert len(ok) >= 30
    assert all(status in (200, 503, None) for _, status in results)
    stored = {r[0] for r in rows(db, "SELECT id FROM requests WHERE status = 200")}
    assert ok <= stored


def test_schema_wal_version_and_indexes(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [openai_deployment("gpt-4", fake, KEY)]}, master_key=MASTER_KEY
    )
    with proxy.client() as c:
        assert c.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MSG}).is_success
    assert proxy.runtime.ledger.flush(10)
    assert proxy.usage_db is not None
    with sqlite3.connect(proxy.usage_db) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == usage_store.SCHEMA_VERSION
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        columns = [r[1] for r in db.execute("PRAGMA table_info(requests)")]
    assert {"requests_day_grp", "requests_dep_day", "requests_time"} <= indexes
    assert tuple(columns) == usage_store.COLUMNS


def _old_event(rid: str, age_days: float) -> RequestFinished:
    return RequestFinished(
        id=rid, time=time.time() - age_days * 86400, group="gpt-4", deployment="gpt4-a",
        provider="openai", status=200, latency_ms=10.0, ttft_ms=None, prompt_tokens=5,
        completion_tokens=5, cost=0.5, cache="off", attempts=1, fallback=None, stream=False,
    )  # fmt: skip


def test_retention_prunes_old_rows_at_start(fake, run_cli, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = usage_store.open_db(db)
    usage_store.insert(conn, [_old_event("ancient", 40), _old_event("recent", 5)])
    conn.close()
    config = write_config(tmp_path, fake, usage_retention_days=30)
    proc = run_cli("--config", str(config), "--usage-db", str(db))
    state = httpx.get(proc.url + "/llmproxy/state", headers=AUTH).json()
    assert state["usage"]["totals"]["requests"] == 1
    assert state["usage"]["totals"]["cost"] == 0.5
    assert proc.terminate() == 0
    assert [r[0] for r in rows(db, "SELECT id FROM requests")] == ["recent"]


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_locked_database_fails_the_store_not_the_requests(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [openai_deployment("gpt-4", fake, KEY)]}, master_key=MASTER_KEY
    )
    body = {"model": "gpt-4", "messages": MSG}
    with proxy.client() as c:
        assert c.post("/v1/chat/completions", json=body).is_success
        assert proxy.runtime.ledger.flush(10)
        events = proxy.runtime.bus.subscribe()
        assert proxy.usage_db is not None
        lock = sqlite3.connect(proxy.usage_db, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            for _ in range(5):
                assert c.post("/v1/chat/completions", json=body).status_code == 200
            assert _wait_for(lambda: not proxy.state()["server"]["usage_store"]["ok"])
            store = proxy.state()["server"]["usage_store"]
            assert "locked" in (store["error"] or "")
            assert store["pending"] >= 5
            assert proxy.state()["usage"]["totals"]["requests"] == 6  # aggregates keep counting
            assert c.post("/v1/chat/completions", json=body).status_code == 200
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert proxy.runtime.ledger.flush(10)
        assert _wait_for(lambda: proxy.state()["server"]["usage_store"]["ok"])
    assert len(rows(proxy.usage_db)) == 7
    kinds = [
        (e.ok, e.error is None) for e in events.drain() if type(e).__name__ == "UsageStoreChanged"
    ]
    assert kinds[0] == (False, False)
    assert kinds[-1] == (True, True)


def test_keys_never_in_usage_rows(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [openai_deployment("gpt-4", fake, KEY)]}, master_key=MASTER_KEY
    )
    with proxy.client() as c:
        c.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MSG})
        c.post("/v1/chat/completions", json={"model": "nope", "messages": MSG})
    assert proxy.runtime.ledger.flush(10)
    assert proxy.usage_db is not None
    for path in proxy.usage_db.parent.glob(proxy.usage_db.name + "*"):
        data = path.read_bytes()
        assert KEY.encode() not in data
        assert KEY[-12:].encode() not in data
        assert MASTER_KEY.encode() not in data
