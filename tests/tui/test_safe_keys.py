"""Safe and conventional keys (issue 16 §7): `q` asks before it stops a proxy others use,
ctrl+c in a text box never quits, pager keys in every table, `?` and `q` always in the footer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from textual.widgets import DataTable, Static, TextArea

from tests.tui.conftest import FakeSource, local_app, make_app, mock_config, running
from tests.tui.test_hostile import drawn
from tui.screens import tester as tester_screen
from tui.screens.help import HelpScreen
from tui.screens.quit import QuitScreen


async def served(base: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"model": "mock-a", "messages": [{"role": "user", "content": "still there?"}]}
        return (await client.post(f"{base}/v1/chat/completions", json=body)).status_code


async def test_ctrl_c_in_the_tester_and_q_then_no_keep_the_proxy_serving(tmp_path) -> None:
    app = local_app(mock_config(tmp_path), tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        base = f"http://127.0.0.1:{app.server.port}"
        await pilot.press("t", *"copy this")
        assert isinstance(app.screen, tester_screen.TesterScreen)
        prompt = app.screen.query_one("#tester-prompt", TextArea)
        assert prompt.has_focus and prompt.text == "copy this"
        prompt.select_all()
        await pilot.press("ctrl+c")  # the text box copies; nothing quits
        await pilot.pause()
        assert isinstance(app.screen, tester_screen.TesterScreen) and app.return_code is None
        assert app.clipboard == "copy this"
        assert await served(base) == 200

        await pilot.press("escape")  # back on the panes
        await app.source.refresh()
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        question = str(app.screen.query_one("#quit-question", Static).content)
        assert question == "Stop the proxy? 0 in flight"
        await pilot.press("n")
        assert not isinstance(app.screen, QuitScreen) and app.return_code is None
        assert await served(base) == 200  # still serving everyone

        await pilot.press("ctrl+c")  # outside a text box ctrl+c asks the same question
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("y")
    assert app.return_code == 0
    assert app.server.runtime.draining is True


async def test_an_attached_dashboard_quits_without_asking() -> None:
    source = FakeSource()
    source.in_process = False  # `--attach`: quitting leaves the proxy running
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("q")
    assert source.stopped and app.return_code == 0


def many_requests(source: FakeSource, count: int) -> None:
    from tests.tui.conftest import NOW, finished

    source.state["recent"] = [finished(f"r{i:03d}", at=NOW - 1000 + i) for i in range(count)]


@pytest.mark.parametrize("pane", ["1", "2", "4"])
async def test_pager_keys_in_every_table(pane: str) -> None:
    source = FakeSource()
    many_requests(source, 60)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(pane)  # zoomed: the pane's table has the focus
        table = app.focused
        assert isinstance(table, DataTable) and table.row_count > 3
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g", "ctrl+d")
        half = table.cursor_row
        assert half >= 1
        await pilot.press("ctrl+u")
        assert table.cursor_row == 0
        if pane == "2":
            assert half == table.scrollable_content_region.height // 2


async def test_the_footer_keeps_help_and_quit_at_80_columns() -> None:
    app = make_app(FakeSource())
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ["1", "2", "4", "1"]:  # whatever the focused pane's own keys are
            await pilot.press(key)
            footer = drawn(app.export_screenshot()).splitlines()[-1]
            assert "? Help" in footer and "q Quit" in footer, footer
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.query_one(DataTable)
        keys = {str(rows.get_row_at(i)[1]) for i in range(rows.row_count)}
        assert {"?", "q", "j / k", "g / G", "ctrl+d / ctrl+u"} <= keys
