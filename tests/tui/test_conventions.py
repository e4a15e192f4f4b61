"""Conventional keys and habits (issue 16 §7–§9): `?` grouped by the focused pane, the focused
pane marked in text (`▶`, for NO_COLOR), the theme choice kept between runs, shift+number hides
a pane at home, and the Log collapses repeated lines."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from textual.widgets import RichLog

from tests.tui.conftest import NOW, FakeSource, make_app
from tui import settings
from tui.panes.base import Pane
from tui.panes.key_health import KeyHealthPane
from tui.panes.log import LogPane
from tui.panes.request_log import RequestLogPane
from tui.screens.help import HelpScreen


def titles(app: Any) -> dict[str, str]:
    return {str(p.id): str(p.border_title) for p in app.query(Pane)}


async def test_the_focused_pane_is_marked_in_text_and_leads_the_help(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert titles(app)["keys"] == "▶ 1 Keys" and titles(app)["requests"] == "2 Requests"
        await pilot.press("tab")  # the next pane: Requests
        await pilot.pause()
        assert titles(app)["keys"] == "1 Keys" and titles(app)["requests"] == "▶ 2 Requests"
        assert "▶ 2 Requests" in app.export_screenshot().replace("\xa0", " ").replace(
            "&#160;", " "
        )  # drawn, not only a colour
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.rows
        assert rows[0][0] == "▶ Requests (focused)"
        requests_keys = [key for _, key, _ in rows[: next(i for i, r in enumerate(rows[1:], 1)
                                                        if r[0])]]  # fmt: skip
        assert "c" in requests_keys and "/" in requests_keys and "K" in requests_keys
        assert rows[len(requests_keys)][0] == "Everywhere"
        assert sum(1 for where, _, _ in rows if where == "Keys") == 1  # each group named once


async def test_shift_number_hides_a_pane_so_the_requests_get_its_room(
    source: FakeSource,
) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        requests = app.query_one(RequestLogPane)
        before = requests.size.height
        await pilot.press("exclamation_mark", "dollar_sign", "number_sign")  # Keys, Cost, Cache
        await pilot.pause()
        assert not app.query_one(KeyHealthPane).display and not app.query_one("#bottom").display
        roomy = requests.size.height
        assert roomy > before + 10
        assert app.focused is not None and requests in app.focused.ancestors  # off the hidden
        await pilot.press("1")  # its number still zooms it
        assert app.query_one(KeyHealthPane).display
        await pilot.press("1", "exclamation_mark")
        await pilot.pause()
        assert app.query_one(KeyHealthPane).display and requests.size.height < roomy


async def test_the_theme_is_kept_between_runs(settings_dir: Path) -> None:
    app = make_app(FakeSource())
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "textual-dark"
        await pilot.press("T")
        await app.workers.wait_for_complete()
        assert app.theme == "textual-light"
    path = settings_dir / "settings.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert settings.load(path).theme == "textual-light"
    again = make_app(FakeSource())
    async with again.run_test(size=(80, 24)):
        assert again.theme == "textual-light"


def test_a_bad_settings_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert settings.load(path) == settings.Settings()  # missing
    path.write_text("{not json")
    assert settings.load(path) == settings.Settings()
    path.write_text('["theme"]')
    assert settings.load(path) == settings.Settings()
    settings.save(tmp_path / "new" / "settings.json", settings.Settings(theme="textual-light"))
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700


def test_the_settings_path_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(tmp_path))
    assert settings.settings_path() == tmp_path / "settings.json"
    monkeypatch.delenv(settings.CONFIG_DIR_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert settings.settings_path() == tmp_path / "xdg" / "llmproxy-tui" / "settings.json"


def log_event(message: str, at: float) -> dict[str, Any]:
    return {"type": "log", "time": at, "level": "WARNING", "logger": "proxy.router",
            "message": message}  # fmt: skip


async def test_the_log_collapses_repeated_lines(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one("#log-view", RichLog)
        await pilot.pause()
        start, records = len(view.lines), app.query_one(LogPane).lines
        source.push(*[log_event("gpt-4o-2: 429 rate limited", NOW + i) for i in range(12)])
        app.refresh_data()
        await pilot.pause()
        shown = [strip.text.rstrip() for strip in view.lines[start:]]
        assert len(shown) == 2 and shown[0].endswith("gpt-4o-2: 429 rate limited")
        assert shown[1] == "  … ×12"
        source.push(*[log_event("gpt-4o-2: 429 rate limited", NOW + 20 + i) for i in range(3)])
        source.push(log_event("claude-1: ok", NOW + 30))
        app.refresh_data()
        await pilot.pause()
        shown = [strip.text.rstrip() for strip in view.lines[start:]]
        assert shown[2:] == ["  … ×15", shown[3]] and shown[3].endswith("claude-1: ok")
        assert app.query_one(LogPane).lines == records + 16  # every record counted
