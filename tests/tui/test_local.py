"""The dashboard with a real proxy in-process (mock provider and the fake upstream)."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import time

import httpx
import pytest
from textual.widgets import DataTable, Markdown, Static, TextArea

from tests.fakes.upstream import FakeUpstream, rate_limit
from tests.tui.conftest import local_app, mock_config, running
from tui.launch import LocalDashboardApp
from tui.panes import format as fmt
from tui.screens import tester as tester_screen
from tui.screens import tester_wire


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


async def started(app: LocalDashboardApp) -> str:
    await asyncio.to_thread(app.server.started.wait, 10)
    assert app.server.bind_error is None
    await app.source.refresh()
    return f"http://127.0.0.1:{app.server.port}"


async def until(pilot, app, check, tries: int = 100) -> None:
    """Refreshes the dashboard until `check()` holds (each try is one refresh)."""
    for _ in range(tries):
        app.refresh_data()
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the dashboard never showed it")


def cell(app, table: str, row: str, column: str) -> str:
    value = app.query_one(f"#{table}", DataTable).get_cell(row, column)
    return str(getattr(value, "plain", value))


async def chat(base: str, model: str, text: str = "hi", **extra) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{base}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        )


async def test_a_request_appears_in_the_log(tmp_path) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        base = await started(app)
        response = await chat(base, "mock-a")
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        table = app.query_one("#requests-table", DataTable)
        await until(
            pilot,
            app,
            lambda: (
                request_id in table.rows
                and cell(app, "requests-table", request_id, "status") == "200"
            ),
        )
        assert cell(app, "requests-table", request_id, "route") == "mock-a → mock-a-1"
        await pilot.press("q", "y")
    assert app.return_code == 0
    # `q` stopped the proxy before the app exited: its serve() returned (the loop it ran on is
    # closed), it drained, and its port no longer accepts connections.
    assert app.server.loop is not None and app.server.loop.is_closed()
    assert app.server.runtime.draining is True
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", app.server.port), timeout=2).close()


async def test_a_rate_limited_key_cools_down_with_a_countdown(tmp_path, upstream) -> None:
    now = [time.time()]
    app = local_app(mock_config(tmp_path, upstream.openai_base), tmp_path, clock=lambda: now[0])
    upstream.script(rate_limit(30), key="sk-test-ratelimited-0001")
    async with running(app) as pilot:
        base = await started(app)
        assert (await chat(base, "gpt-up")).status_code == 429
        await until(pilot, app, lambda: "cooling down" in cell(app, "keys-table", "up-1", "health"))
        first = int(re.findall(r"(\d+)s", cell(app, "keys-table", "up-1", "health"))[0])
        now[0] += 10
        app.refresh_data()
        second = int(re.findall(r"(\d+)s", cell(app, "keys-table", "up-1", "health"))[0])
        assert second == first - 10
        assert cell(app, "keys-table", "up-1", "key") == "…0001"
        await pilot.press("q", "y")


async def test_the_cache_rate_moves_after_a_hit(tmp_path) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        base = await started(app)
        await chat(base, "mock-b", "same question")
        await app.source.refresh()
        app.refresh_data()
        summary = app.query_one("#cache-summary", Static)
        before = str(summary.content)
        assert "0.0% since start" in before
        hit = await chat(base, "mock-b", "same question")
        assert hit.headers["x-llmproxy-cache"] == "hit"
        await app.source.refresh()
        app.refresh_data()
        assert "50.0% since start" in str(summary.content)
        await pilot.press("q", "y")


async def test_cost_by_group_adds_up_to_the_usage_store(tmp_path, upstream) -> None:
    app = local_app(mock_config(tmp_path, upstream.openai_base), tmp_path)
    async with running(app) as pilot:
        base = await started(app)
        for i in range(3):
            await chat(base, "gpt-priced", f"question {i}")
        await chat(base, "mock-b", "another")
        runtime = app.source.runtime

        async def settled() -> dict:
            for _ in range(100):
                state = await asyncio.wrap_future(app.server.submit(runtime.state.snapshot()))
                if state["usage"]["totals"]["requests"] == 4:
                    return state
                await asyncio.sleep(0.05)
            raise AssertionError("usage never reached the store")

        state = await settled()
        await app.source.refresh()
        app.refresh_data()
        usage = app.source.snapshot()["usage"]
        groups = usage["by_group"]
        assert sum(g["cost"] for g in groups) == pytest.approx(state["usage"]["totals"]["cost"])
        assert sum(g["requests"] for g in groups) == 4
        total = cell(app, "cost-table", "total", "cost")
        assert state["usage"]["totals"]["cost"] > 0
        assert total == fmt.dollars(state["usage"]["totals"]["cost"])
        assert cell(app, "cost-table", "g:gpt-priced", "requests") == "3"
        costs = [cell(app, "cost-table", f"g:{g['group']}", "cost") for g in groups]
        shown = sum(0.0 if c == "<$0.0001" else float(c.strip("$")) for c in costs)
        assert shown == pytest.approx(state["usage"]["totals"]["cost"], abs=0.0001)
        await pilot.press("q", "y")


@pytest.mark.parametrize("wire", ["chat", "messages", "responses"])
async def test_the_tester_streams_an_answer(tmp_path, wire: str) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        await started(app)
        await pilot.press("t")
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        while tester.wire != wire:
            await pilot.press("ctrl+f")
        tester.query_one("#tester-prompt", TextArea).text = "say hello"
        await pilot.press("ctrl+s")
        assert tester.worker is not None
        await tester.worker.wait()
        run = tester.runs[-1]
        assert run.wire == wire
        assert run.error is None and run.answer == "**Hello** from mock A"
        assert run.deployment == "mock-a-1" and run.cache == "miss" and run.ttft_ms is not None
        assert isinstance(run.usage.get("completion_tokens"), int)
        assert "Hello" in tester.query_one("#tester-answer", Markdown).source
        await until(pilot, app, lambda: run.cost_known)
        result = str(tester.query_one("#tester-result", Static).content)
        assert "served by mock-a-1" in result and "cache miss" in result
        assert f"via {tester_wire.FORMATS[wire].label}" in result
        await pilot.press("escape")
        table = app.query_one("#requests-table", DataTable)
        await until(pilot, app, lambda: run.request_id in table.rows)
        door = cell(app, "requests-table", str(run.request_id), "door")
        assert door == {"messages": "msgs", "responses": "resp"}.get(wire, wire)
        assert cell(app, "requests-table", str(run.request_id), "client") == "httpx"
        await pilot.press("q", "y")
    assert app.return_code == 0


async def test_clients_and_sessions_reach_the_panes_and_the_store(tmp_path) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        base = await started(app)
        async with httpx.AsyncClient(base_url=base) as client:
            claude = await client.post(
                "/v1/messages",
                json={"model": "mock-a", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}]},
                headers={"user-agent": "claude-cli/2.1.0 (external, cli)",
                         "x-claude-code-session-id": "5d8e7c6b-aaaa-bbbb-cccc-1234567890ab"},
            )  # fmt: skip
            codex = await client.post(
                "/v1/responses",
                json={"model": "mock-b", "input": "hi", "prompt_cache_key": "codex-session-1"},
                headers={"user-agent": "codex_exec/0.171.0"},
            )
            plain = await client.post(
                "/v1/chat/completions",
                json={"model": "mock-b", "messages": [{"role": "user", "content": "yo"}]},
                headers={"user-agent": "something-new/1.0"},
            )
        assert {claude.status_code, codex.status_code, plain.status_code} == {200}
        table = app.query_one("#requests-table", DataTable)
        ids = [r.headers["x-request-id"] for r in (claude, codex, plain)]
        await until(pilot, app, lambda: all(i in table.rows for i in ids))
        shown = [
            tuple(cell(app, "requests-table", i, c) for c in ("door", "client", "session"))
            for i in ids
        ]
        assert shown == [
            ("msgs", "Claude Code", "5d8e7c6b…"),
            ("resp", "Codex", "codex-se…"),
            ("chat", "—", "—"),
        ]
        runtime = app.source.runtime
        for _ in range(100):
            state = await asyncio.wrap_future(app.server.submit(runtime.state.snapshot()))
            if state["usage"]["totals"]["requests"] == 3:
                break
            await asyncio.sleep(0.05)
        clients = {r["client"]: r for r in state["usage"]["by_client"]}
        assert set(clients) == {"Claude Code", "Codex", ""}
        assert sum(r["cost"] for r in clients.values()) == pytest.approx(
            state["usage"]["totals"]["cost"]
        )
        await app.source.refresh()
        app.refresh_data()
        await pilot.press("4", "b")
        rows = [str(k.value) for k in app.query_one("#cost-table", DataTable).rows]
        assert sorted(rows) == ["c:", "c:Claude Code", "c:Codex", "total"]
        assert cell(app, "cost-table", "total", "requests") == "3"
        await pilot.press("q", "y")
    # `q` stopped the proxy, which wrote every pending usage row.
    with sqlite3.connect(tmp_path / "usage.db") as db:
        stored = db.execute("SELECT front_door, client, session FROM requests ORDER BY time")
        assert stored.fetchall() == [
            ("messages", "Claude Code", "5d8e7c6b-aaaa-bbbb-cccc-1234567890ab"),
            ("responses", "Codex", "codex-session-1"),
            ("chat", "", None),
        ]
