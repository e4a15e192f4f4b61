"""The Requests pane's row actions and history (issue 16 §5): a live filter with its match count,
copy as curl (the key as `$LLMPROXY_KEY`), replay in the tester, jump to the key, errors kept
longer than successes, and each attempt's upstream message in the request's detail."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

from textual.widgets import DataTable, Input, Select, Static, TextArea

from tests.tui.conftest import NOW, FakeSource, finished, local_app, make_app, mock_config, running
from tui.panes.request_log import MAX_ERRORS, MAX_ROWS, RequestLogPane
from tui.screens import tester as tester_screen
from tui.screens.request_detail import RequestDetailScreen

MASTER = "sk-master-secret-7f3a"


def select(app: Any, request_id: str) -> None:
    """Selects a request's row as the user would (which pauses the tail)."""
    app.query_one(RequestLogPane).set_follow(False)
    table = app.query_one("#requests-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(request_id))


async def test_the_filter_counts_its_matches_as_you_type(source: FakeSource) -> None:
    source.state["recent"].append(finished("bad", group="claude", dep="claude-1", status=429))
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(RequestLogPane)
        table = app.query_one("#requests-table", DataTable)
        await pilot.press("2", "slash", "4")
        await pilot.pause()
        assert app.query_one("#filter", Input).display  # still typing
        assert table.row_count == 1 and "filter: 4 · 1 match" in str(pane.border_subtitle)
        await pilot.press("backspace", *"gpt")
        await pilot.pause()
        assert table.row_count == 2 and "filter: gpt · 2 matches" in str(pane.border_subtitle)
        source.push(finished("new", at=NOW - 1))
        app.refresh_data()
        await pilot.pause()
        assert table.row_count == 3 and "3 matches" in str(pane.border_subtitle)
        await pilot.press("enter")
        assert not app.query_one("#filter", Input).display and pane.query_text == "gpt"


async def test_errors_outlive_successes(source: FakeSource) -> None:
    source.state["recent"] = []
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(RequestLogPane)
        source.push(*[finished(f"e{i}", status=503, at=NOW - 5000 + i) for i in range(250)])
        source.push(*[finished(f"s{i}", at=NOW - 4000 + i) for i in range(MAX_ROWS + 50)])
        app.refresh_data()
        await pilot.pause()
        assert len(pane.requests) == MAX_ROWS and pane.requests.popitem(last=False)[0] == "s50"
        assert pane.find("s0") is None  # an old success is gone
        assert pane.find("e249") is not None and pane.find("e49") is None  # the newest errors stay
        assert len(pane.old_errors) == MAX_ERRORS
        pane.set_filter("err")
        await pilot.pause()
        assert pane.match_count() == MAX_ERRORS
        assert "200 matches" in str(pane.border_subtitle)


async def test_jump_to_the_key_that_served_a_request(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")  # zoomed: the jump goes back to the layout with the Keys pane
        select(app, "req-1")
        await pilot.press("K")
        await pilot.pause()
        keys = app.query_one("#keys-table", DataTable)
        assert app.zoomed is None and app.focused is keys
        assert keys.coordinate_to_cell_key(keys.cursor_coordinate).row_key.value == "claude-1"


async def test_a_failed_attempts_upstream_message_is_shown_whole(source: FakeSource) -> None:
    long = "Rate limit reached for gpt-4o in organization org-abc on tokens per min " * 4
    attempts = [
        {"deployment": "gpt-4o-2", "group": "gpt-4o", "status": 429, "reason": long.strip(),
         "latency_ms": 120.0},
        {"deployment": "claude-1", "group": "claude", "status": 200, "reason": "ok",
         "latency_ms": 900.0},
    ]  # fmt: skip
    source.state["recent"].append(
        finished("fb", dep="claude-1", attempts=2, fallback="claude", attempt_log=attempts)
    )
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        select(app, "fb")
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetailScreen)
        text = str(app.screen.query_one("#detail-upstream", Static).content)
        assert text.startswith("#1 gpt-4o-2 · 429: Rate limit") and text.endswith("per min")
        assert "#2" not in text  # the attempt that worked has no message
        summary = str(app.screen.query_one("#detail-summary", Static).content)
        assert "openai-python" in summary and "Chat Completions" in summary


async def test_copy_as_curl_and_replay_a_tester_request(tmp_path) -> None:
    config = mock_config(tmp_path)
    config["general_settings"] = {"master_key": MASTER}
    app = local_app(config, tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        await app.source.refresh()
        await pilot.press("t")
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        tester.query_one("#tester-group", Select).value = "mock-b"
        tester.query_one("#tester-prompt", TextArea).text = "it's a test"
        await pilot.press("ctrl+s")
        assert tester.worker is not None
        run = await tester.worker.wait()
        assert run.status == 200 and run.request_id
        await pilot.press("escape")
        for _ in range(100):  # the request's row arrives with the next drains
            app.refresh_data()
            if run.request_id in app.query_one("#requests-table", DataTable).rows:
                break
            await pilot.pause(0.05)
        select(app, run.request_id)
        await pilot.press("c")
        line = app.clipboard
        assert MASTER not in line and '"Authorization: Bearer $LLMPROXY_KEY"' in line
        assert "/v1/chat/completions" in line and "it'\\''s a test" in line
        env = {**os.environ, "LLMPROXY_KEY": MASTER}
        sent = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", line + " -sS -o /dev/null -w '%{http_code}'"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert sent.stdout == "200", sent.stderr  # the copied line works as it is
        await pilot.press("R")  # replay: the same prompt, sent again at once
        await pilot.pause()
        assert app.screen is tester and tester.worker is not None
        again = await tester.worker.wait()
        assert again is not run and (again.group, again.prompt) == ("mock-b", "it's a test")
        assert again.status == 200 and again.request_id != run.request_id


async def test_replay_of_a_clients_request_opens_its_group_and_api(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        select(app, "req-1")  # Claude Code through /v1/messages
        await pilot.press("c")
        assert "/v1/messages" in app.clipboard and '"x-api-key: $LLMPROXY_KEY"' not in app.clipboard
        await pilot.press("R")
        await pilot.pause()
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        assert tester.query_one("#tester-group", Select).value == "claude"
        assert tester.wire == "messages" and not tester.runs  # nothing sent: no prompt known
