"""A key at its rpm/tpm limit says when it frees (issue 16 §2): the key pool's snapshot gives
`limit_frees_at` from its minute window, the Keys pane and the key detail count down to it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from textual.widgets import DataTable, Select, Static, TextArea

from proxy.config.loader import build_config
from proxy.routing.keys import KeyPool
from tests.tui.conftest import (
    NOW,
    FakeSource,
    deployment,
    local_app,
    make_app,
    mock_config,
    running,
)
from tui.panes import format as fmt
from tui.screens import tester as tester_screen
from tui.screens.key_detail import KeyDetailScreen

WALL = 1_700_000_000.0


class Clock:
    """Monotonic seconds the test moves; wall time is WALL ahead."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now


def pool(clock: Clock, **params: Any) -> KeyPool:
    doc = {
        "model_list": [
            {
                "model_name": "gpt",
                "litellm_params": {"model": "mock/a", "mock_response": "hi", **params},
                "model_info": {"id": "a"},
            }
        ]
    }
    config = build_config(doc)
    return KeyPool(config.deployments, config.router, clock=clock, wall=clock.wall)


def row(keys: KeyPool) -> dict[str, Any]:
    return keys.snapshot()[0]


def test_rpm_limit_frees_when_the_oldest_request_leaves_the_minute() -> None:
    clock = Clock()
    keys = pool(clock, rpm=2)
    st = keys.states["a"]
    keys.begin(st)
    assert row(keys)["limit_frees_at"] is None  # 1 of 2: not at the limit
    clock.now += 5
    keys.begin(st)
    assert row(keys)["limit_frees_at"] == WALL + 1000 + 60  # the first request's minute ends
    assert fmt.health_state(row(keys)) == "at_limit"
    clock.now += 55.5
    assert row(keys)["limit_frees_at"] is None  # it left the window: a slot is free
    assert fmt.health_state(row(keys)) == "ok"


def test_tpm_limit_frees_when_enough_tokens_leave_the_minute() -> None:
    clock = Clock()
    keys = pool(clock, tpm=100)
    st = keys.states["a"]
    for tokens in (30, 50, 40):  # 120 of 100
        keys.add_tokens(st, tokens)
        clock.now += 10
    # Dropping the first 30 leaves 90 < 100: free when the first entry leaves the window.
    assert row(keys)["limit_frees_at"] == WALL + 1000 + 60
    keys.add_tokens(st, 60)  # 180: the first three must go (100 is still at the limit)
    assert row(keys)["limit_frees_at"] == WALL + 1020 + 60


def limited_state(source: FakeSource) -> None:
    source.update(
        deployments=[
            deployment("gpt-4o-1", "gpt-4o", rpm_used=600, rpm_limit=600, limit_frees_at=NOW + 12),
            deployment("gpt-4o-2", "gpt-4o"),
        ]
    )


async def test_keys_pane_and_key_detail_count_down_to_the_free_slot() -> None:
    source = FakeSource()
    limited_state(source)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        health = table.get_cell("gpt-4o-1", "health")
        assert health.plain == "◑ at limit · frees in 12s"
        assert table.get_cell("gpt-4o-1", "rpm").plain.endswith("600/600")
        assert "1 at limit" in str(app.query_one("#status", Static).content)
        await pilot.press("1")  # zoom Keys: the limited key sorts first
        table.move_cursor(row=table.get_row_index("gpt-4o-1"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, KeyDetailScreen)
        text = str(app.screen.query_one("#key-summary", Static).content)
        assert "at limit · frees in 12s" in text
        assert "Frees in    12s left" in text
        assert "at its rpm limit (600 requests a minute)" in text


async def test_a_freed_slot_reads_ok_again() -> None:
    source = FakeSource()
    limited_state(source)
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        assert table.get_cell("gpt-4o-1", "health").plain == "◑ at limit 12s"  # 80 columns
        source.update(
            deployments=[deployment("gpt-4o-1", "gpt-4o"), deployment("gpt-4o-2", "gpt-4o")]
        )
        app.refresh_data()
        await pilot.pause()
        assert table.get_cell("gpt-4o-1", "health").plain == "● ok"


async def test_test_this_key_opens_the_tester_on_its_group_and_says_which_key_answered(
    tmp_path,
) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        await app.source.refresh()
        app.refresh_data()
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("mock-b-1"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, KeyDetailScreen)
        await pilot.press("t")
        await pilot.pause()
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        assert tester.query_one("#tester-group", Select).value == "mock-b"
        assert "testing key mock-b-1 through its group mock-b" in str(
            tester.query_one("#tester-result", Static).content
        )
        tester.query_one("#tester-prompt", TextArea).text = "hello"
        await pilot.press("ctrl+s")
        assert tester.worker is not None
        await tester.worker.wait()
        run = tester.runs[-1]
        assert run.target == "mock-b-1" and run.deployment == "mock-b-1" and run.status == 200
        assert "not mock-b-1" not in run.result_line().plain
        await pilot.press("escape")  # back to the panes, not to the closed detail
        assert not isinstance(app.screen, (tester_screen.TesterScreen, KeyDetailScreen))


def test_the_result_says_when_another_key_of_the_group_answered() -> None:
    run = tester_screen.TesterRun("gpt", "hi", latency_ms=12.0, deployment="gpt-2", target="gpt-1")
    assert "not gpt-1: the group picked another key" in run.result_line().plain
    run.deployment = "gpt-1"
    assert "not gpt-1" not in run.result_line().plain


async def test_a_real_key_at_its_rpm_limit_counts_down(tmp_path) -> None:
    config = mock_config(tmp_path)
    config["model_list"][0]["litellm_params"]["rpm"] = 1  # mock-a-1: one request a minute
    app = local_app(config, tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{app.server.port}/v1/chat/completions",
                json={"model": "mock-a", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert answer.status_code == 200
        await app.source.refresh()
        app.refresh_data()
        await pilot.pause()
        dep = next(d for d in app.source.snapshot()["deployments"] if d["id"] == "mock-a-1")
        assert dep["rpm_used"] == 1 and dep["limit_frees_at"] is not None
        left = dep["limit_frees_at"] - time.time()
        assert 0 < left <= 60
        health = app.query_one("#keys-table", DataTable).get_cell("mock-a-1", "health").plain
        assert health.startswith("◑ at limit · frees in ") and health.endswith("s")
