"""UsageLedger: threaded recording, persistence, retention, a locked or unusable store, and the
aggregates against hand-computed sums."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from proxy.events import RequestFinished
from proxy.store.usage import UsageLedger
from proxy.store.usage_sqlite import MIGRATIONS, SCHEMA_VERSION

NOW = 1_750_003_600.0  # 2025-06-15T16:06:40Z
DAY = 86400.0


def event(n: int = 0, **kw) -> RequestFinished:
    fields = dict(
        id=f"req-{n}", time=NOW - 10, group="fast", deployment="openai-1", provider="openai",
        status=200, latency_ms=100.0, ttft_ms=None, prompt_tokens=10, completion_tokens=5,
        cost=0.001, cache="miss", attempts=1, fallback=None, stream=False,
    )  # fmt: skip
    fields.update(kw)
    return RequestFinished(**fields)


def ledger(path: Path | None, **kw) -> UsageLedger:
    kw.setdefault("flush_interval", 0.02)
    led = UsageLedger(path, clock=lambda: NOW, **kw)
    led.start()
    return led


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "usage.db"


def test_schema_and_wal(db_path: Path):
    led = ledger(db_path)
    led.record(event())
    assert led.flush()
    led.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"requests_day_grp", "requests_dep_day", "requests_time"} <= indexes
        row = db.execute("SELECT id, day, grp, deployment, status, cost, cache FROM requests")
        assert row.fetchone() == ("req-0", "2025-06-15", "fast", "openai-1", 200, 0.001, "miss")


def test_200_rows_from_8_threads(db_path: Path):
    led = ledger(db_path)

    def work(t: int) -> None:
        for i in range(25):
            led.record(event(t * 100 + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert led.flush()
    assert led.written == 200 and led.pending == 0 and led.dropped == 0
    assert count_rows(db_path) == 200
    assert led.snapshot()["totals"]["requests"] == 200
    led.close()
    assert count_rows(db_path) == 200


def test_rows_survive_close_and_reopen(db_path: Path):
    led = ledger(db_path)
    for i in range(5):
        led.record(event(i, cost=0.5))
    led.close()  # close flushes without an explicit flush()
    assert count_rows(db_path) == 5
    again = ledger(db_path)
    again.record(event(9, cost=0.25))
    assert again.flush()
    totals = again.snapshot()["totals"]
    assert totals["requests"] == 6
    assert totals["cost"] == pytest.approx(2.75)
    assert totals["p50_ms"] == 100.0
    again.close()
    assert count_rows(db_path) == 6


def test_retention_prunes_old_rows(db_path: Path):
    led = ledger(db_path, retention_days=30)
    led.record(event(1, time=NOW - 40 * DAY))
    led.record(event(2, time=NOW - 20 * DAY))
    led.record(event(3))
    led.close()
    assert count_rows(db_path) == 3  # pruning happens at start and hourly, not per write
    again = ledger(db_path, retention_days=30)
    assert again.flush()
    again.record(event(4))
    assert again.flush()
    with sqlite3.connect(db_path) as db:
        ids = sorted(r[0] for r in db.execute("SELECT id FROM requests"))
    assert ids == ["req-2", "req-3", "req-4"]
    assert again.snapshot()["totals"]["requests"] == 3
    again.close()


def test_locked_database_recovers(db_path: Path):
    states: list[tuple[bool, str | None]] = []
    led = ledger(db_path, on_state=lambda ok, err: states.append((ok, err)))
    led.record(event(0))
    assert led.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(1, 4):
            led.record(event(i))  # never raises, never blocks
        assert not led.flush(timeout=1.0)
        assert not led.ok
        assert led.error is not None and "locked" in led.error
        assert led.pending == 3
        assert led.snapshot()["totals"]["requests"] == 4  # pending rows count already
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert led.flush(timeout=10.0)
    assert led.ok and led.error is None
    assert count_rows(db_path) == 4
    assert [ok for ok, _ in states] == [False, True]
    assert states[0][1] is not None and states[1][1] is None
    led.close()


def test_unusable_path_never_raises(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    states: list[tuple[bool, str | None]] = []
    led = ledger(blocker / "usage.db", on_state=lambda ok, err: states.append((ok, err)))
    led.record(event(1))
    led.record(event(2, status=500, cost=None))
    assert not led.flush(timeout=0.5)
    assert not led.ok and led.error
    assert states and states[0][0] is False
    assert len(states) == 1  # once per change, not once per retry
    assert led.pending == 2
    snap = led.snapshot()
    assert snap["totals"]["requests"] == 2 and snap["totals"]["errors"] == 1
    led.close(timeout=5.0)


def test_bounded_pending_drops_oldest():
    led = UsageLedger(None, max_pending=3)  # not started: nothing is written
    for i in range(5):
        led.record(event(i))
    assert (led.pending, led.dropped) == (3, 2)
    led.start()
    assert led.flush()
    assert led.written == 3
    led.close()


def test_in_memory_ledger():
    led = ledger(None)
    led.record(event(1))
    assert led.flush()
    assert led.path is None and led.written == 1 and led.ok
    led.close()


def test_aggregates_match_hand_sums(db_path: Path):
    yesterday = NOW - DAY
    rows = [
        event(1, latency_ms=10.0, cost=0.10, prompt_tokens=100, completion_tokens=10),
        event(2, latency_ms=20.0, cost=0.20, prompt_tokens=200, completion_tokens=20),
        event(3, latency_ms=30.0, cost=None, prompt_tokens=300, completion_tokens=30,
              deployment="openai-2"),
        event(4, latency_ms=5.0, cost=0.0, cost_saved=0.3, cache="hit", prompt_tokens=7,
              completion_tokens=3),
        event(5, latency_ms=40.0, cost=1.0, group="smart", deployment="anthropic-1",
              provider="anthropic", prompt_tokens=1000, completion_tokens=100),
        event(6, latency_ms=900.0, status=502, cost=None, deployment=None, prompt_tokens=0,
              completion_tokens=0, error="all failed"),
        event(7, time=yesterday, latency_ms=50.0, cost=2.0, prompt_tokens=50,
              completion_tokens=5),
    ]  # fmt: skip
    first = ledger(db_path)
    for ev in rows[:4]:
        first.record(ev)
    first.close()
    led = ledger(db_path)  # half the rows come back from the database, half are new
    for ev in rows[4:]:
        led.record(ev)
    snap = led.snapshot()  # before any flush: pending rows are included
    assert snap == check_aggregates(snap)
    assert led.flush()
    assert led.snapshot() == snap
    led.close()


def check_aggregates(snap: dict) -> dict:
    totals = snap["totals"]
    assert totals == {
        "requests": 7, "tokens_in": 1657, "tokens_out": 168, "cost": pytest.approx(3.3),
        "cost_unknown": 1, "errors": 1, "cache_hits": 1,
        # successful, non-hit latencies: 10 20 30 40 50 -> nearest rank p50 30, p95 50
        "p50_ms": 30.0, "p95_ms": 50.0,
    }  # fmt: skip
    today = snap["today"]
    assert (today["requests"], today["cost"], today["tokens_in"]) == (
        6, pytest.approx(1.3), 1607,
    )  # fmt: skip
    assert (today["p50_ms"], today["p95_ms"]) == (20.0, 40.0)
    groups = {r["group"]: r for r in snap["by_group"]}
    assert set(groups) == {"fast", "smart"}
    assert groups["fast"]["requests"] == 6 and groups["fast"]["errors"] == 1
    assert groups["fast"]["p50_ms"] == 20.0  # 10 20 30 50
    assert groups["smart"]["cost"] == pytest.approx(1.0)
    today_groups = {r["group"]: r["requests"] for r in snap["by_group_today"]}
    assert today_groups == {"fast": 5, "smart": 1}
    deps = {(r["deployment"], r["group"]): r for r in snap["by_deployment"]}
    assert set(deps) == {("openai-1", "fast"), ("openai-2", "fast"), ("anthropic-1", "smart")}
    assert deps[("openai-1", "fast")]["requests"] == 4  # the 502 had no deployment
    assert deps[("openai-2", "fast")]["cost_unknown"] == 1
    deps_today = {r["deployment"]: r["requests"] for r in snap["by_deployment_today"]}
    assert deps_today == {"openai-1": 3, "openai-2": 1, "anthropic-1": 1}  # row 7 is yesterday
    series = snap["spend_series"]
    assert len(series) == 24
    assert series[-1][0] == NOW // 3600 * 3600
    assert series[-1][1] == pytest.approx(1.3)
    assert sum(c for _, c in series) == pytest.approx(1.3)  # yesterday's row is > 24 h old
    return snap


V1_COLUMNS = (
    "id, time, day, grp, deployment, provider, kind, stream, status, prompt_tokens, "
    "completion_tokens, cached_tokens, cost, cost_saved, latency_ms, ttft_ms, cache, attempts, "
    "fallback, error, estimated"
)


def v1_database(path: Path, rows: int) -> None:
    """A usage database as the v1 schema left it, with `rows` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    with db:
        MIGRATIONS[0](db)
        db.execute("PRAGMA user_version = 1")
        for i in range(rows):
            db.execute(
                f"INSERT INTO requests ({V1_COLUMNS}) VALUES "
                "(?, ?, '2025-06-15', 'fast', 'openai-1', 'openai', 'chat', 0, 200, 10, 5, 0, "
                "0.5, NULL, 100.0, NULL, 'miss', 1, NULL, NULL, 0)",
                (f"old-{i}", NOW - 100 - i),
            )
    db.close()


def test_migration_from_v1_keeps_old_rows(db_path: Path):
    v1_database(db_path, rows=3)
    led = ledger(db_path)
    led.record(event(1, front_door="messages", client="Claude Code", session="sess-1234"))
    assert led.flush()
    snap = led.snapshot()
    led.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        stored = db.execute(
            "SELECT id, cost, front_door, client, session FROM requests ORDER BY id"
        ).fetchall()
    assert stored == [
        ("old-0", 0.5, "chat", "", None),
        ("old-1", 0.5, "chat", "", None),
        ("old-2", 0.5, "chat", "", None),
        ("req-1", 0.001, "messages", "Claude Code", "sess-1234"),
    ]
    assert snap["totals"]["requests"] == 4
    assert {r["client"]: r["requests"] for r in snap["by_client"]} == {"": 3, "Claude Code": 1}


def test_a_newer_schema_is_refused(db_path: Path):
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    led = ledger(db_path)
    led.record(event(1))
    assert not led.flush(timeout=0.5)
    assert led.error is not None and "newer" in led.error
    led.close(timeout=2.0)


def test_hostile_client_strings_are_cut(db_path: Path):
    led = ledger(db_path)
    led.record(event(1, client="x" * 10_000, session="s" * 10_000))
    led.close()
    with sqlite3.connect(db_path) as db:
        client, session = db.execute("SELECT client, session FROM requests").fetchone()
    assert (len(client), len(session)) == (64, 200)
    again = ledger(db_path)  # the reloaded row lands in the slice the live one was counted in
    again.record(event(2, client="x" * 10_000))
    assert again.flush()
    assert [r["requests"] for r in again.snapshot()["by_client"]] == [2]
    again.close()


def test_by_client_adds_up(db_path: Path):
    yesterday = NOW - DAY
    rows = [
        event(1, client="Claude Code", cost=0.10, latency_ms=10.0),
        event(2, client="Claude Code", cost=0.20, latency_ms=30.0, group="smart"),
        event(3, client="Codex", cost=0.40, latency_ms=20.0, front_door="responses"),
        event(4, client="", cost=None, status=502, deployment=None, latency_ms=900.0),
        event(5, client="Codex", cost=1.0, time=yesterday, latency_ms=50.0),
    ]
    first = ledger(db_path)
    for ev in rows[:3]:
        first.record(ev)
    first.close()
    led = ledger(db_path)
    for ev in rows[3:]:
        led.record(ev)
    for snap in (led.snapshot(), (led.flush(), led.snapshot())[1]):
        clients = {r["client"]: r for r in snap["by_client"]}
        assert set(clients) == {"", "Claude Code", "Codex"}
        assert clients["Claude Code"]["requests"] == 2
        assert clients["Claude Code"]["cost"] == pytest.approx(0.30)
        assert clients["Claude Code"]["p50_ms"] == 10.0  # nearest rank over 10, 30
        assert clients["Codex"]["cost"] == pytest.approx(1.40)
        assert clients[""]["errors"] == 1 and clients[""]["p50_ms"] is None
        today = {r["client"]: r["requests"] for r in snap["by_client_today"]}
        assert today == {"": 1, "Claude Code": 2, "Codex": 1}
        for key in ("requests", "tokens_in", "tokens_out", "cost", "errors", "cost_unknown"):
            whole = sum(r[key] for r in snap["by_client"])
            assert whole == pytest.approx(snap["totals"][key]), key
            part = sum(r[key] for r in snap["by_client_today"])
            assert part == pytest.approx(snap["today"][key]), key
    led.close()


def test_snapshot_follows_every_change_and_the_day():
    """The roll-up is kept between polls: a new request, and the UTC day turning, both show."""
    clock = [NOW]
    led = UsageLedger(None, clock=lambda: clock[0])
    led.record(event(1, latency_ms=10.0))
    first = led.snapshot()
    assert led.snapshot() == first
    led.record(event(2, latency_ms=30.0, group="smart", deployment="anthropic-1"))
    second = led.snapshot()
    assert second["totals"]["requests"] == 2 and second["today"]["requests"] == 2
    assert {r["group"] for r in second["by_group"]} == {"fast", "smart"}
    assert first["totals"]["requests"] == 1  # an earlier answer is not changed under its reader
    clock[0] = NOW + DAY  # tomorrow, nothing new recorded: "today" is empty again
    tomorrow = led.snapshot()
    assert tomorrow["totals"]["requests"] == 2 and tomorrow["today"]["requests"] == 0
    assert tomorrow["by_group_today"] == []


def test_percentiles_match_a_plain_sort():
    """Per-slice runs merged into each scope give the same nearest-rank percentiles as
    sorting each scope's samples from scratch."""
    import random

    from proxy.store.rollups import percentile

    rnd = random.Random(7)
    led = UsageLedger(None, clock=lambda: NOW)
    samples: dict[str, list[float]] = {}
    for n in range(3000):
        grp = rnd.choice(["a", "b", "c"])
        ms = round(rnd.uniform(1, 500), 3)
        led.record(event(n, group=grp, deployment=f"{grp}-{n % 2}", latency_ms=ms,
                         client=rnd.choice(["x", "y"])))  # fmt: skip
        samples.setdefault(grp, []).append(ms)
        samples.setdefault("*", []).append(ms)
    snap = led.snapshot()
    for row in snap["by_group"]:
        want = sorted(samples[row["group"]])
        assert (row["p50_ms"], row["p95_ms"]) == (percentile(want, 0.5), percentile(want, 0.95))
    everything = sorted(samples["*"])
    assert snap["totals"]["p95_ms"] == percentile(everything, 0.95)
    assert sum(r["requests"] for r in snap["by_client"]) == 3000
