"""Pilot tests of each pane and binding over a scripted FakeSource."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, Markdown, Static

from tests.tui.conftest import CLAUDE_SESSION, NOW, FakeSource, finished, make_app
from tui.panes.request_log import RequestLogPane, matches
from tui.screens import tester as tester_screen
from tui.screens.help import HelpScreen
from tui.screens.quit import QuitScreen
from tui.screens.request_detail import RequestDetailScreen


def cell(app, table_id: str, row: str, column: str) -> str:
    value: Any = app.query_one(f"#{table_id}", DataTable).get_cell(row, column)
    return str(value.plain if hasattr(value, "plain") else value)


def text_of(app, selector: str) -> str:
    content: Any = app.query_one(selector, Static).content
    return str(content.plain if hasattr(content, "plain") else content)


async def test_home_shows_every_pane(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        assert source.started
        assert app.query_one("#keys-table", DataTable).row_count == 4
        assert app.query_one("#requests-table", DataTable).row_count == 3
        assert cell(app, "keys-table", "gpt-4o-2", "health") == "◔ cooling down 42s"
        assert cell(app, "keys-table", "groq-1", "health") == "○ key missing"
        assert cell(app, "keys-table", "gpt-4o-1", "key") == "…9f2a"
        assert "10.0% since start" in text_of(app, "#cache-summary")
        assert cell(app, "cost-table", "total", "cost") == "$0.7700"
        status = text_of(app, "#status")
        assert "http://127.0.0.1:4000" in status and "up 1h02m" in status
        assert app.query_one("#demo-banner").display


async def test_request_events_update_rows_in_place(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        table = app.query_one("#requests-table", DataTable)
        source.push(
            {
                "type": "request_started",
                "id": "new-1",
                "time": NOW,
                "group": "claude",
                "stream": False,
            }
        )
        app.refresh_data()
        assert table.row_count == 4
        assert cell(app, "requests-table", "new-1", "status") == "…"
        source.push(finished("new-1", group="claude", dep="claude-1", status=502, at=NOW))
        app.refresh_data()
        assert table.row_count == 4
        assert cell(app, "requests-table", "new-1", "status") == "502"
        assert cell(app, "requests-table", "new-1", "route") == "claude → claude-1"
        assert table.cursor_row == 3  # follow mode keeps the newest in view


async def test_cooldown_event_counts_down(source: FakeSource) -> None:
    now = [NOW]
    app = make_app(source, clock=lambda: now[0])
    async with app.run_test(size=(120, 40)):
        source.push(
            {
                "type": "deployment_changed",
                "deployment": "gpt-4o-1",
                "health": "cooling_down",
                "reason": "429",
                "cooldown_until": NOW + 30,
            }
        )
        app.refresh_data()
        assert cell(app, "keys-table", "gpt-4o-1", "health") == "◔ cooling down 30s"
        now[0] += 12
        app.refresh_data()
        assert cell(app, "keys-table", "gpt-4o-1", "health") == "◔ cooling down 18s"


async def test_key_actions_reach_the_source(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        keys = app.query_one("#keys-table", DataTable)
        assert [r.value for r in keys.rows] == ["gpt-4o-2", "groq-1", "gpt-4o-1", "claude-1"]
        await pilot.press("1", "G", "k", "g", "j", "k")  # zoom Keys; bad keys first: gpt-4o-2
        await pilot.press("r", "d", "p")
        await app.workers.wait_for_complete()
        assert source.actions == [
            ("reset", "gpt-4o-2"),
            ("disable", "gpt-4o-2"),
            ("probe", "gpt-4o-2"),
        ]
        notes = [n.message for n in app._notifications]
        assert any("probe gpt-4o-2: ok (HTTP 200, 85 ms) 42 models" in m for m in notes)


async def test_zoom_keys_toggle_each_pane(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.query_one("#home")
        for key, name in [
            ("1", "keys"),
            ("2", "requests"),
            ("3", "cache"),
            ("4", "cost"),
            ("5", "log"),
        ]:
            await pilot.press(key)
            assert home.has_class("zoomed") and app.query_one(f"#{name}").has_class("-zoomed")
            assert app.query_one(f"#{name}").region.height > 30
            await pilot.press(key)
            assert not home.has_class("zoomed")


async def test_requests_filter_follow_and_detail(source: FakeSource) -> None:
    source.state["recent"].append(finished("bad", group="claude", dep="claude-1", status=429))
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(RequestLogPane)
        table = app.query_one("#requests-table", DataTable)
        await pilot.press("2", "f")
        assert not pane.follow and "paused" in str(pane.border_subtitle)
        await pilot.press("slash", *"429", "enter")
        assert table.row_count == 1 and pane.query_text == "429"
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetailScreen)
        summary = str(app.screen.query_one("#detail-summary", Static).content)
        assert "claude-1" in summary and "429" in summary
        await pilot.press("escape")
        await pilot.press("slash", "end", "backspace", "backspace", "backspace", "enter")
        assert table.row_count == 4


def test_filter_words() -> None:
    req = {"group": "gpt-4o", "deployment": "gpt-4o-2", "status": 503}
    assert matches(req, "gpt 5") and matches(req, "err") and not matches(req, "ok")
    assert not matches(req, "claude") and matches(req, "")


async def test_cache_clear_and_cost_period(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "x")
        await app.workers.wait_for_complete()
        assert source.actions == [("clear_cache", None)]
        await pilot.press("4", "a")
        assert app.query_one("#cost-table", DataTable).row_count == 3  # today: group, dep, total
        assert cell(app, "cost-table", "total", "cost") == "$0.2100"
        await pilot.press("a")
        assert app.query_one("#cost-table", DataTable).row_count == 6


async def test_tester_help_theme_and_palette(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, tester_screen.TesterScreen)
        assert app.screen.query_one("#tester-group").value == "gpt-4o"
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "T")
        assert app.theme == "textual-light"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Zoom Keys",
            "Zoom Requests",
            "Zoom Cache",
            "Zoom Cost",
            "Tester",
            "Clear cache",
            "Probe key (selected deployment)",
        ):
            assert title in titles


async def test_header_shows_a_lost_connection(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        source.connected, source.error = False, "ConnectError: refused"
        app.refresh_data()
        assert "disconnected: ConnectError: refused — retrying" in text_of(app, "#status")


async def test_log_pane_shows_log_events_and_warnings(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        source.push(
            {
                "type": "log",
                "time": NOW,
                "level": "WARNING",
                "logger": "llmproxy",
                "message": "deployment gpt-4o-2 cooling down",
            }
        )
        app.refresh_data()
        assert app.query_one("#log").lines == 2  # the config warning, then the record


async def test_quit_asks_then_stops_the_source(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.has_class("compact")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and not source.stopped
        assert "Stop the proxy? 1 in flight" in text_of(app.screen, "#quit-question")
        await pilot.press("n")
        assert not isinstance(app.screen, QuitScreen) and not source.stopped
        await pilot.press("q", "y")
    assert source.stopped and app.return_code == 0


async def test_tester_reports_an_unreachable_proxy(source: FakeSource) -> None:
    source.base_url = "http://127.0.0.1:9"  # discard port: connection refused
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t", *"hi", "ctrl+s")
        await app.workers.wait_for_complete()
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        assert "ConnectError" in text_of(tester, "#tester-result")
        assert tester.query_one("#tester-answer", Markdown).source == ""


# The title bar Textual draws around every SVG screenshot (three dots and the title text).
_WINDOW_CHROME = {(255, 95, 87), (254, 188, 46), (40, 200, 64), (197, 200, 198)}


def _colours(svg: str) -> set[tuple[int, int, int]]:
    """The distinct #rrggbb colours an exported screenshot uses."""
    import re

    return {
        (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        for h in re.findall(r"#([0-9a-fA-F]{6})\b", svg)
    }


async def test_no_color_renders_in_greys_and_keeps_health_in_words(
    source: FakeSource, monkeypatch
) -> None:
    async with make_app(source).run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        plain_svg = pilot.app.export_screenshot()
    assert {c for c in _colours(plain_svg) if len(set(c)) > 1} - _WINDOW_CHROME  # colour
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.no_color
        svg = app.export_screenshot()
        assert cell(app, "keys-table", "gpt-4o-2", "health") == "◔ cooling down 42s"
    non_grey = {c for c in _colours(svg) if len(set(c)) > 1} - _WINDOW_CHROME
    assert not non_grey, sorted(non_grey)[:5]


def columns(app, table_id: str) -> list[str]:
    return [str(c.value) for c in app.query_one(f"#{table_id}", DataTable).columns]


async def test_requests_show_the_api_client_and_session(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        assert columns(app, "requests-table") == [
            "time", "door", "client", "session", "route", "status", "latency", "tokens", "cost",
            "cache",
        ]  # fmt: skip
        assert cell(app, "requests-table", "req-0", "door") == "chat"
        assert cell(app, "requests-table", "req-0", "client") == "openai-python"
        assert cell(app, "requests-table", "req-0", "session") == "—"
        assert cell(app, "requests-table", "req-1", "door") == "msgs"
        assert cell(app, "requests-table", "req-1", "client") == "Claude Code"
        assert cell(app, "requests-table", "req-1", "session") == "3f2a9c1d…"
        assert cell(app, "requests-table", "req-2", "door") == "resp"
        table = app.query_one("#requests-table", DataTable)
        assert table.virtual_size.width <= table.size.width  # fits: no sideways scrolling


async def test_requests_columns_follow_the_width(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        assert columns(app, "requests-table") == [
            "time", "door", "client", "route", "status", "latency", "cost",
        ]  # fmt: skip
        assert cell(app, "requests-table", "req-1", "door") == "msgs"
        assert cell(app, "requests-table", "req-2", "door") == "resp"
        table = app.query_one("#requests-table", DataTable)
        assert table.virtual_size.width <= table.size.width
        await pilot.resize_terminal(180, 40)
        await pilot.pause()
        assert {"session", "ttft", "fallback"} <= set(columns(app, "requests-table"))
        assert table.row_count == 3  # rebuilt with the new columns
        assert cell(app, "requests-table", "req-1", "session") == "3f2a9c1d-7b4…"


HOSTILE = "[/oops][bold red]x\x1b[2J\x07\u202e" + "y" * 5000


async def test_client_strings_are_plain_text_cut_short(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        source.push(
            finished("evil", group=HOSTILE, dep=None, status=404, client=HOSTILE, session=HOSTILE,
                     front_door="messages", error=HOSTILE, preview=HOSTILE)
        )  # fmt: skip
        source.push({"type": "deployment_changed", "deployment": "gpt-4o-1", "health": "failing",
                     "reason": HOSTILE})  # fmt: skip
        app.refresh_data()
        await pilot.pause()
        assert cell(app, "keys-table", "gpt-4o-1", "last_error").startswith("[/oops][bold")
        for column, cells in [("client", 13), ("session", 9), ("route", 28)]:
            shown = cell(app, "requests-table", "evil", column)
            assert shown.startswith("[/oops]") and "…" in shown, column
            assert len(shown) <= cells and "\x1b" not in shown, column
        table = app.query_one("#requests-table", DataTable)
        assert table.virtual_size.width <= table.size.width
        await pilot.press("2", "end", "enter")
        assert isinstance(app.screen, RequestDetailScreen)
        summary = text_of(app.screen, "#detail-summary")
        assert "\x1b" not in summary and "\x07" not in summary and "\u202e" not in summary
        assert "[/oops][bold red]x\\x1b[2J\\x07\\u202eyyy" in summary  # shown, escaped
        assert "yyy…" in summary and len(summary) < 3000


async def test_the_detail_shows_api_client_and_session_in_full(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "up", "enter")  # req-1, through the Messages API
        summary = text_of(app.screen, "#detail-summary")
        assert "API         messages (Anthropic Messages, /v1/messages)" in summary
        assert "Client      Claude Code" in summary
        assert f"Session     {CLAUDE_SESSION}" in summary


def test_filter_by_client_api_and_session() -> None:
    req = {"group": "gpt-4o", "client": "Claude Code", "front_door": "messages",
           "session": CLAUDE_SESSION, "status": 200}  # fmt: skip
    assert matches(req, "claude") and matches(req, "messages ok") and matches(req, "3f2a")
    assert not matches(req, "codex") and not matches(req, "responses")


async def test_cost_groups_by_group_deployment_or_client(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one("#cost")
        table = app.query_one("#cost-table", DataTable)
        assert table.row_count == 6 and "by deployment" in str(pane.border_subtitle)
        await pilot.press("4", "b")
        assert str(pane.border_subtitle) == "all time · by client"
        assert [str(k.value) for k in table.rows] == ["c:Claude Code", "c:Codex", "c:", "total"]
        assert cell(app, "cost-table", "c:", "name") == "(unnamed)"
        usage = source.state["usage"]
        for column, key in [("requests", "requests"), ("cost", "cost")]:
            shown = [cell(app, "cost-table", f"c:{r['client']}", column) for r in
                     usage["by_client"]]  # fmt: skip
            total = cell(app, "cost-table", "total", column)
            assert sum(float(v.strip("$")) for v in shown) == pytest.approx(
                float(total.strip("$"))
            ), key
        await pilot.press("a")  # today, by client
        assert [str(k.value) for k in table.rows] == ["c:Claude Code", "c:", "total"]
        await pilot.press("b")  # today, by group
        assert [str(k.value) for k in table.rows] == ["g:gpt-4o", "total"]
        await pilot.press("b")  # today, by deployment
        assert [str(k.value) for k in table.rows] == ["g:gpt-4o", "d:gpt-4o-1", "total"]
        await pilot.press("a")
        assert (
            table.row_count == 6
            and cell(app, "cost-table", "d:claude-1", "name").strip() == "└ claude-1"
        )


async def test_the_tester_switches_api(source: FakeSource) -> None:
    source.base_url = "http://127.0.0.1:9"  # discard port: connection refused
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t", *"hi")
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        assert tester.wire == "chat" and "/v1/chat/completions" in text_of(tester, "#tester-title")
        await pilot.press("ctrl+f")
        assert tester.wire == "messages" and "/v1/messages" in text_of(tester, "#tester-title")
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        assert tester.runs[-1].wire == "messages"
        result = text_of(tester, "#tester-result")
        assert "ConnectError" in result and "via Anthropic Messages (/v1/messages)" in result
        await pilot.press("ctrl+f")
        assert tester.wire == "responses" and "/v1/responses" in text_of(tester, "#tester-title")
        await pilot.press("ctrl+f")
        assert tester.wire == "chat"


async def test_retries_and_fallbacks_show_in_the_status(source: FakeSource) -> None:
    source.state["recent"].append(finished("fb", attempts=3, fallback="claude", dep="claude-1"))
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        assert cell(app, "requests-table", "fb", "status") == "200 ×3 ↪"
        assert cell(app, "requests-table", "req-0", "status") == "200"
        await pilot.resize_terminal(180, 40)
        await pilot.pause()
        assert cell(app, "requests-table", "fb", "status") == "200"
        assert cell(app, "requests-table", "fb", "attempts") == "3"
        assert cell(app, "requests-table", "fb", "fallback") == "claude"


async def test_the_route_takes_the_room_the_pane_has(source: FakeSource) -> None:
    long_group = "claude-sonnet-4-5-20250929"
    source.state["recent"].append(finished("long", group=long_group, dep="anthropic-main-1"))
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        narrow = cell(app, "requests-table", "long", "route")
        assert len(narrow) == 28 and narrow.endswith("anthropic-main-1") and "…" in narrow
        await pilot.resize_terminal(140, 40)
        await pilot.pause()
        wide = cell(app, "requests-table", "long", "route")
        assert wide == f"{long_group} → anthropic-main-1"
        table = app.query_one("#requests-table", DataTable)
        assert table.virtual_size.width <= table.size.width


async def test_a_filter_with_brackets_is_not_markup(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "slash", *"[/x]", "enter")
        await pilot.pause()
        assert app.query_one(RequestLogPane).query_text == "[/x]"
        assert "filter:&#160;[/x]" in app.export_screenshot()  # drawn, as typed
        assert app.query_one("#requests-table", DataTable).row_count == 0
