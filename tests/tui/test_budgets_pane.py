"""The Budgets pane over a FakeSource: each virtual key's spend against its budget, reset
countdown, rpm, last use and state; hidden without keys; budget crossings as notices and Log
lines; and the fake's `virtual_keys` and `spend` sections against a real proxy's."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from rich.text import Text
from textual.widgets import DataTable

from tests.conftest import MASTER_KEY, Proxy
from tests.tui.conftest import NOW, FakeSource, make_app, mock_config, virtual_key
from tests.tui.test_fake_state import key_diff
from tui.panes.budgets import BudgetsPane
from tui.panes.log import LogPane


def with_keys() -> FakeSource:
    source = FakeSource()
    source.state["virtual_keys"] = [
        virtual_key("alice"),
        virtual_key(
            "ci-runner", token="77aa01bb02cc", key_name="sk-...c1d0", spend=4.5,
            soft_budget=4.0, rpm=60, last_used=None,
        ),
        virtual_key(
            None, token="0f0f0f0f0f0f", key_name="sk-...dead", spend=5.0, blocked=True,
            budget_reset_at=None, budget_duration=None,
        ),
    ]  # fmt: skip
    return source


def cell(table: DataTable[object], row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


async def test_each_key_with_its_budget_reset_rpm_and_state() -> None:
    app = make_app(with_keys())
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(BudgetsPane)
        assert pane.has_keys and pane.display and not pane.has_class("-empty")
        table = app.query_one("#budgets-table", DataTable)
        assert table.row_count == 3
        assert cell(table, "5c1b2e8f0a3d", "key") == "alice"
        assert cell(table, "5c1b2e8f0a3d", "budget").endswith("$1.25/$5.00")
        assert cell(table, "5c1b2e8f0a3d", "resets") == "12d04h"
        assert cell(table, "5c1b2e8f0a3d", "rpm") == "12/60"
        assert cell(table, "5c1b2e8f0a3d", "last_used") == "3m05s ago"
        assert "ok" in cell(table, "5c1b2e8f0a3d", "state")
        assert "soft budget" in cell(table, "77aa01bb02cc", "state")
        assert cell(table, "77aa01bb02cc", "last_used") == "never"
        assert cell(table, "0f0f0f0f0f0f", "key") == "sk-...dead"  # no alias: its name
        assert "blocked" in cell(table, "0f0f0f0f0f0f", "state")
        assert cell(table, "0f0f0f0f0f0f", "resets") == "—"
        await pilot.press("6")
        await pilot.pause()
        assert app.zoomed == "budgets" and pane.has_class("-zoomed")
        assert pane.region.height > 30 and table.region.height > 30  # the whole screen
        await pilot.press("6")
        await pilot.pause()
        assert app.zoomed is None and pane.region.height == 6  # 3 keys, a header, 2 borders


async def test_hidden_without_virtual_keys_and_6_does_nothing() -> None:
    app = make_app(FakeSource())
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(BudgetsPane)
        assert not pane.has_keys and pane.has_class("-empty")
        assert pane.region.height == 0  # not on the home screen
        await pilot.press("6")
        assert app.zoomed is None
        assert all(row[1] != "6" for row in app.help_rows())


async def test_keys_appearing_later_show_the_pane() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        source.update(virtual_keys=[virtual_key("late")])
        app.refresh_data()
        await pilot.pause()
        pane = app.query_one(BudgetsPane)
        assert pane.has_keys and pane.region.height > 0
        assert any(row[1] == "6" for row in app.help_rows())


async def test_a_budget_crossing_is_a_notice() -> None:
    source = with_keys()
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(LogPane)
        before = log.lines
        source.push(
            {
                "type": "budget_crossed", "time": NOW, "scope": "key", "name": "ci-runner",
                "kind": "soft_budget", "spend": 4.01, "budget": 4.0, "reset_at": NOW + 3600,
            },
            {
                "type": "budget_crossed", "time": NOW, "scope": "key", "name": "[red]x\x1b[2J",
                "kind": "max_budget", "spend": 5.0, "budget": 5.0, "reset_at": None,
            },
        )  # fmt: skip
        source.push(  # the proxy's own log line about it (proxy/observe/alerts.py)
            {
                "type": "log", "time": NOW, "level": "WARNING", "logger": "llmproxy.alerts",
                "message": "budget: virtual key 'ci-runner' reached its soft budget",
            }
        )  # fmt: skip
        app.refresh_data()
        await pilot.pause()
        assert app.query_one(BudgetsPane).notices == 2
        assert log.lines == before + 1  # the log line, not a second copy of it
        notices = [n.message for n in app._notifications]
        assert any("ci-runner reached its soft budget: $4.01 of $4.00" in m for m in notices)
        hostile = next(m for m in notices if "reached its budget" in m)
        assert "\x1b" not in hostile and "[red]x\\x1b[2J" in hostile  # plain, escaped


async def test_a_hostile_alias_is_plain_text() -> None:
    source = FakeSource()
    source.state["virtual_keys"] = [virtual_key("[b]boss[/b]\x1b[31m\u202e")]
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        table = app.query_one("#budgets-table", DataTable)
        shown = cell(table, "5c1b2e8f0a3d", "key")
        assert shown.startswith("[b]boss[/b]\\x1b") and "\x1b" not in shown


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_snapshot(snap_compare, size) -> None:
    assert snap_compare(make_app(with_keys()), terminal_size=size)


def test_the_fake_sections_have_the_fields_of_the_real_ones(
    tmp_path, start_proxy: Callable[..., Proxy]
) -> None:
    proxy = start_proxy(mock_config(tmp_path), master_key=MASTER_KEY)
    with proxy.client() as client:
        made = client.post(
            "/key/generate", json={"key_alias": "alice", "max_budget": 5, "metadata": {"team": "x"}}
        )
        assert made.status_code == 200, made.text
        key = made.json()["key"]
    body = {"model": "mock-a", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", "x-session-id": "s-1"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while not (real := proxy.state())["spend"]["by_session"]:
        assert time.monotonic() < deadline, "the request never reached the spend sums"
        time.sleep(0.02)
    fake = with_keys().state
    assert real["virtual_keys"] and key_diff(real["virtual_keys"], fake["virtual_keys"]) == []
    assert key_diff(real["spend"], fake["spend"], "spend") == []
    assert set(real["spend"]) == set(fake["spend"])
    assert [r["key"] for r in real["spend"]["by_key"]] == ["alice"]
    assert key not in str(real)
