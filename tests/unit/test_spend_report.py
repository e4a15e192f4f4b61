"""The spend report (`llmproxy-tui spend`) and the running spend sums of the state document,
over rows written with the usage store's own insert, and a fixed clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.events import RequestFinished
from proxy.store import usage_sqlite
from proxy.store.spend import MASTER, MAX_SESSIONS, RunningSpend, read_sqlite, report

NOW = 1_750_000_000.0  # 2025-06-15 (UTC), mid-day
DAY = 86400.0


def request(
    at: float,
    cost: float,
    *,
    group: str = "gpt-4o",
    key: str | None = "alice",
    client: str = "Claude Code",
    session: str | None = None,
) -> RequestFinished:
    return RequestFinished(
        id=f"r-{at}-{cost}", time=at, group=group, deployment=f"{group}-1", provider="openai",
        status=200, latency_ms=100.0, ttft_ms=None, prompt_tokens=10, completion_tokens=20,
        cost=cost, cache="miss", attempts=1, fallback=None, stream=False, client=client,
        session=session, key_alias=key,
    )  # fmt: skip


def write(path: Path, events: list[RequestFinished]) -> None:
    db = usage_sqlite.open_db(path)
    try:
        usage_sqlite.insert(db, events)
    finally:
        db.close()


def test_today_7_and_30_days_per_key(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    write(
        path,
        [
            request(NOW - 60, 0.25),  # today
            request(NOW - 3 * DAY, 1.0),  # this week
            request(NOW - 20 * DAY, 2.0),  # this month
            request(NOW - 60, 0.5, key="bob"),
            request(NOW - 60, 0.125, key=None),  # the master key
        ],
    )
    rows = read_sqlite(path, ("key",), NOW - 30 * DAY)
    assert rows is not None
    by_key = {r.name: r for r in report(rows, "key", NOW)}
    alice = by_key["alice"]
    assert (alice.today, alice.last_7d, alice.last_30d, alice.cost) == (0.25, 1.25, 3.25, 3.25)
    assert alice.requests == 3 and alice.tokens_in == 30 and alice.tokens_out == 60
    assert by_key["bob"].today == 0.5
    assert by_key[MASTER].cost == 0.125
    assert [r.name for r in report(rows, "key", NOW)] == ["alice", "bob", MASTER]  # costliest


def test_since_leaves_older_rows_out(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    write(path, [request(NOW - 60, 0.25), request(NOW - 20 * DAY, 2.0)])
    rows = read_sqlite(path, ("key",), NOW - 7 * DAY)
    assert rows is not None
    (alice,) = report(rows, "key", NOW)
    assert alice.cost == 0.25 and alice.requests == 1


def test_by_group_client_and_day(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    write(
        path,
        [
            request(NOW - 60, 0.25, group="claude", client="Codex"),
            request(NOW - 60, 0.5, group="gpt-4o", client=""),
            request(NOW - DAY, 1.0, group="gpt-4o", client="Codex"),
        ],
    )
    rows = read_sqlite(path, ("group", "client", "day"), NOW - 30 * DAY)
    assert rows is not None
    groups = {r.name: r.cost for r in report(rows, "group", NOW)}
    assert groups == {"claude": 0.25, "gpt-4o": 1.5}
    clients = {r.name: r.cost for r in report(rows, "client", NOW)}
    assert clients == {"Codex": 1.25, "(unnamed)": 0.5}
    days = report(rows, "day", NOW)
    assert [(r.name, r.cost) for r in days] == [("2025-06-15", 0.75), ("2025-06-14", 1.0)]
    assert days[0].as_dict("day")["day"] == "2025-06-15"


def test_a_store_from_before_key_aliases_counts_as_master(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for step in usage_sqlite.MIGRATIONS[:2]:  # the schema of v2: no key_alias column
        step(db)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO requests (id, time, day, grp, status, prompt_tokens, completion_tokens,"
        " cost) VALUES ('old', ?, ?, 'gpt-4o', 200, 5, 7, 0.75)",
        (NOW - 60, usage_sqlite.utc_day(NOW - 60)),
    )
    db.commit()
    db.close()
    rows = read_sqlite(path, ("key",), NOW - DAY)
    assert rows is not None
    (row,) = report(rows, "key", NOW)
    assert (row.name, row.cost, row.requests) == (MASTER, 0.75, 1)


def test_a_missing_store_reads_as_none(tmp_path: Path) -> None:
    assert read_sqlite(tmp_path / "nothing.db", ("key",), 0.0) is None
    assert not (tmp_path / "nothing.db").exists()  # read-only: nothing created


def test_running_spend_today_and_all_time() -> None:
    spend = RunningSpend(["gpt-4o"])
    spend.add(request(NOW - 60, 0.25, session="s-1"))
    spend.add(request(NOW - 2 * DAY, 1.0, session="s-1"))
    spend.add(request(NOW - 60, 0.5, key=None, client="", group="claude"))
    today = usage_sqlite.utc_day(NOW)
    doc = spend.snapshot(today)
    assert doc["by_key"] == [
        {"key": "alice", "requests": 2, "tokens_in": 20, "tokens_out": 40, "cost": 1.25},
        {"key": MASTER, "requests": 1, "tokens_in": 10, "tokens_out": 20, "cost": 0.5},
    ]
    assert [(r["key"], r["cost"]) for r in doc["by_key_today"]] == [(MASTER, 0.5), ("alice", 0.25)]
    assert [(r["session"], r["cost"]) for r in doc["by_session"]] == [("s-1", 1.25)]
    assert {r["client"] for r in doc["by_client"]} == {"Claude Code", "(unnamed)"}
    assert {r["group"]: r["cost"] for r in doc["by_group_today"]} == {"claude": 0.5, "gpt-4o": 0.25}


def test_running_spend_loads_stored_rows_and_bounds_sessions(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    events = [request(NOW - 60, 0.01, session=f"s-{i}") for i in range(MAX_SESSIONS + 5)]
    write(path, events)
    rows = read_sqlite(path, ("key", "session"), 0.0)
    assert rows is not None
    spend = RunningSpend()
    spend.load(rows)
    doc = spend.snapshot(usage_sqlite.utc_day(NOW))
    assert doc["by_key"][0]["key"] == "alice"
    assert doc["by_key"][0]["requests"] == MAX_SESSIONS + 5
    assert len(doc["by_session"]) == MAX_SESSIONS
