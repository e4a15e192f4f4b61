"""`llmproxy-tui spend` as a subprocess: over a running proxy (`--attach`, `/llmproxy/spend`)
and over its usage file (local mode), after real requests through virtual keys; and over
stores written by the usage store's own insert (older days, a store from before key aliases).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from proxy.events import RequestFinished
from proxy.store import usage_sqlite
from tests.conftest import MASTER_KEY, CliProxy, cli_command
from tests.e2e.test_keys_cli import chat, config_file, one_line_error
from tests.scaleout import conftest as scaleout

DAY = 86400.0


def spend(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    full_env.update({"HOME": str(tmp_path), "LITELLM_MASTER_KEY": MASTER_KEY, **(env or {})})
    return subprocess.run(
        [*cli_command(), "spend", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
    )


def new_key(url: str, alias: str) -> str:
    answer = httpx.post(
        url + "/key/generate",
        json={"key_alias": alias},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


def rows_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.fixture
def served(run_cli, tmp_path: Path) -> tuple[CliProxy, Path]:
    """A proxy that served 2 requests for alice, 1 for bob and 1 with the master key."""
    proxy = run_cli("--config", str(config_file(tmp_path)), env={"LITELLM_MASTER_KEY": MASTER_KEY})
    alice, bob = new_key(proxy.url, "alice"), new_key(proxy.url, "bob")
    for key, model in (
        (alice, "mock-a"),
        (alice, "mock-b"),
        (bob, "mock-a"),
        (MASTER_KEY, "mock-b"),
    ):
        assert chat(proxy.url, key, model).status_code == 200
    return proxy, tmp_path / "cli0.db"  # run_cli's usage file


def test_spend_by_key_over_attach(served: tuple[CliProxy, Path], tmp_path: Path) -> None:
    proxy, _db = served
    rows = rows_of(spend(tmp_path, "--attach", proxy.url, "--by", "key", "--json"))
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"alice", "bob", "(master)"}
    assert by_key["alice"]["requests"] == 2 and by_key["bob"]["requests"] == 1
    for row in rows:
        assert row["today"] == row["last_7d"] == row["last_30d"] == row["total"]
    table = spend(tmp_path, "--attach", proxy.url)
    assert table.returncode == 0, table.stderr
    assert "alice" in table.stdout and "30 days" in table.stdout


def test_spend_by_group_client_and_day_locally(
    served: tuple[CliProxy, Path], tmp_path: Path
) -> None:
    proxy, db = served
    httpx.get(proxy.url + "/llmproxy/spend", headers={"authorization": f"Bearer {MASTER_KEY}"})
    local = ("--usage-db", str(db), "--config", str(tmp_path / "config.yaml"))
    groups = rows_of(spend(tmp_path, *local, "--by", "group", "--json"))  # flushed above
    assert {r["group"]: r["requests"] for r in groups} == {"mock-a": 2, "mock-b": 2}
    out = spend(tmp_path, *local, "--by", "client", "--csv")
    assert out.returncode == 0, out.stderr
    parsed = list(csv.DictReader(io.StringIO(out.stdout)))
    assert sum(int(r["requests"]) for r in parsed) == 4
    assert list(parsed[0]) == [
        "client", "requests", "tokens_in", "tokens_out", "today", "last_7d", "last_30d", "total",
    ]  # fmt: skip
    days = rows_of(spend(tmp_path, *local, "--by", "day", "--json"))
    assert [d["day"] for d in days] == [usage_sqlite.utc_day(time.time())]


def event(at: float, cost: float, key: str | None = "carol") -> RequestFinished:
    return RequestFinished(
        id=f"r-{at}", time=at, group="gpt-4o", deployment="gpt-4o-1", provider="openai",
        status=200, latency_ms=100.0, ttft_ms=None, prompt_tokens=10, completion_tokens=20,
        cost=cost, cache="miss", attempts=1, fallback=None, stream=False, key_alias=key,
    )  # fmt: skip


def test_spend_over_older_days_and_an_older_store(tmp_path: Path) -> None:
    now = time.time()
    db_path = tmp_path / "usage.db"
    db = usage_sqlite.open_db(db_path)
    usage_sqlite.insert(
        db, [event(now - 60, 0.5), event(now - 3 * DAY, 1.0), event(now - 40 * DAY, 8.0)]
    )
    db.close()
    rows = rows_of(spend(tmp_path, "--usage-db", str(db_path), "--json"))
    (carol,) = rows
    assert (carol["today"], carol["last_7d"], carol["total"]) == (0.5, 1.5, 1.5)  # 30d window
    longer = rows_of(spend(tmp_path, "--usage-db", str(db_path), "--since", "60d", "--json"))
    assert longer[0]["total"] == 9.5 and longer[0]["last_30d"] == 1.5
    days = rows_of(
        spend(tmp_path, "--usage-db", str(db_path), "--by", "day", "--since", "60d", "--json")
    )
    assert len(days) == 3 and days[0]["day"] > days[-1]["day"]  # newest first

    old_path = tmp_path / "old.db"
    old = sqlite3.connect(old_path)
    for step in usage_sqlite.MIGRATIONS[:2]:  # a store of schema v2: no key_alias column
        step(old)
    old.execute(
        "INSERT INTO requests (id, time, day, grp, status, prompt_tokens, completion_tokens, cost)"
        " VALUES ('old', ?, ?, 'gpt-4o', 200, 5, 7, 0.25)",
        (now - 60, usage_sqlite.utc_day(now - 60)),
    )
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    (master,) = rows_of(spend(tmp_path, "--usage-db", str(old_path), "--json"))
    assert master["key"] == "(master)" and master["total"] == 0.25


def test_spend_errors_exit_2(tmp_path: Path) -> None:
    assert "--since" in one_line_error(spend(tmp_path, "--since", "soon"))
    not_db = tmp_path / "not.db"
    not_db.write_text("this is not a database")
    assert "usage store" in one_line_error(spend(tmp_path, "--usage-db", str(not_db)))
    assert spend(tmp_path, "--by", "planet").returncode == 2
    empty = spend(tmp_path, "--usage-db", str(tmp_path / "none.db"), "--json")
    assert rows_of(empty) == []


pg_admin_url = scaleout.pg_admin_url  # the scale-out suite's private PostgreSQL cluster
pg_url = scaleout.pg_url


def test_spend_on_postgresql(start_proxy, pg_url: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(config_file(tmp_path).read_text())
    doc["general_settings"] = {"database_url": pg_url}
    proxy = start_proxy(doc, master_key=MASTER_KEY)
    alice = new_key(proxy.url, "alice")
    for key in (alice, alice, MASTER_KEY):
        assert chat(proxy.url, key).status_code == 200
    attached = rows_of(spend(tmp_path, "--attach", proxy.url, "--json"))
    assert {r["key"]: r["requests"] for r in attached} == {"alice": 2, "(master)": 1}
    conf = tmp_path / "pg.yaml"
    conf.write_text(yaml.safe_dump(doc))
    local = rows_of(spend(tmp_path, "--config", str(conf), "--by", "group", "--json"))
    assert [(r["group"], r["requests"]) for r in local] == [("mock-a", 3)]
    deadline = time.monotonic() + 15  # the shared store's sums are re-read every 2 s
    while [r["key"] for r in proxy.state()["spend"]["by_key"]] != ["alice", "(master)"]:
        assert time.monotonic() < deadline, proxy.state()["spend"]["by_key"]
        time.sleep(0.1)
    by_key = {r["key"]: r["requests"] for r in proxy.state()["spend"]["by_key"]}
    assert by_key == {"alice": 2, "(master)": 1}  # not counted twice by the re-read
