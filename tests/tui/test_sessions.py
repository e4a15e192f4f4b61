"""The Sessions view (issue 16 §6): one row per agent session from the request events: client,
groups, deployments used, requests, tokens, the provider's prompt-cache read share, cost and
last active."""

from __future__ import annotations

import asyncio

import httpx
from textual.widgets import DataTable, Static

from tests.tui.conftest import (
    CLAUDE_SESSION,
    CODEX_SESSION,
    NOW,
    FakeSource,
    finished,
    local_app,
    make_app,
    mock_config,
    running,
)
from tui.panes.sessions import SessionBook, SessionsPane


def test_a_session_adds_up_its_requests_once() -> None:
    book = SessionBook()
    first = finished("a", session="s1", client="Claude Code", prompt_tokens=1000,
                     cached_tokens=800, completion_tokens=50, cost=0.01, at=NOW - 10)  # fmt: skip
    second = finished("b", session="s1", client="Claude Code", group="claude", dep="claude-1",
                      prompt_tokens=1000, cached_tokens=0, completion_tokens=10, cost=None,
                      status=529, at=NOW - 5)  # fmt: skip
    assert book.add([first, second, first])  # `first` twice (recent, then live): counted once
    assert not book.add([finished("c", session=None)])  # no session: no row
    (s,) = book.sessions.values()
    assert (s.requests, s.errors, s.unpriced) == (2, 1, 1)
    assert s.groups == ["gpt-4o", "claude"] and s.deployments == ["gpt-4o-1", "claude-1"]
    assert s.cache_read == 0.4 and s.cost == 0.01 and s.last_active == NOW - 5


async def test_the_sessions_pane_lists_the_most_recently_active_first(source: FakeSource) -> None:
    source.state["recent"].append(
        finished(
            "req-3",
            at=NOW - 2,
            group="claude",
            dep="claude-1",
            front_door="messages",
            client="Claude Code",
            session=CLAUDE_SESSION,
            prompt_tokens=2000,
            cached_tokens=1500,
            cost=0.02,
        )  # fmt: skip
    )
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        pane = app.query_one(SessionsPane)
        table = app.query_one("#sessions-table", DataTable)
        assert pane.display and app.focused is table
        assert [k.value for k in table.rows] == [CLAUDE_SESSION, CODEX_SESSION]
        row = {str(c.key.value): table.get_cell(CLAUDE_SESSION, c.key).plain
               for c in table.columns.values()}  # fmt: skip
        assert row["client"] == "Claude Code" and row["group"] == "claude"
        assert row["requests"] == "2" and row["tokens"] == "2025/240"
        assert row["cache_read"] == "74.1%"  # 1500 of 2025 prompt tokens read from the cache
        assert row["cost"] == "$0.0213" and row["last"] == "2s ago"
        assert str(pane.border_subtitle) == "2 sessions"
        await pilot.press("7")  # back home: the pane takes no room there
        assert not pane.display


async def test_an_empty_sessions_pane_says_what_will_appear(source: FakeSource) -> None:
    source.state["recent"] = []
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        assert "No agent sessions yet" in str(app.query_one("#sessions-empty", Static).content)


async def test_sessions_from_a_real_proxy(tmp_path) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        base = f"http://127.0.0.1:{app.server.port}"
        async with httpx.AsyncClient() as client:
            for model in ("mock-a", "mock-b", "mock-a"):
                answer = await client.post(
                    f"{base}/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"x-session-id": "agent-run-42", "user-agent": "claude-cli/1.0.0"},
                )
                assert answer.status_code == 200
        await pilot.press("7")
        table = app.query_one("#sessions-table", DataTable)
        for _ in range(100):
            app.refresh_data()
            pane = app.query_one(SessionsPane)
            found = pane.book.sessions.get("agent-run-42")
            if found is not None and found.requests == 3:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert table.get_cell("agent-run-42", "requests").plain == "3"
        assert table.get_cell("agent-run-42", "deployments").plain == "mock-a-1, mock-b-1"
        assert table.get_cell("agent-run-42", "cost").plain.startswith("$")
