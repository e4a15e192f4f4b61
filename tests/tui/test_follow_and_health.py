"""The request tail follows like `tail -f` (issue 16 §3) and the header answers "is it healthy
right now" (§2): the health rollup, keys at their limit, and `stale` while disconnected."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable, RichLog, Static

from tests.tui.conftest import NOW, FakeSource, deployment, finished, make_app
from tui.panes.request_log import RequestLogPane


def requests(first: int, count: int) -> list[dict[str, Any]]:
    return [finished(f"r{i:03d}", at=NOW - 1000 + i) for i in range(first, first + count)]


def selected(table: DataTable[Any]) -> str:
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def visible(table: DataTable[Any]) -> range:
    """The row indexes in view."""
    top = int(table.scroll_y)
    return range(top, top + table.scrollable_content_region.height - 1)  # minus the header


async def test_moving_up_pauses_new_rows_are_counted_and_g_resumes() -> None:
    source = FakeSource()
    source.state["recent"] = requests(0, 40)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(RequestLogPane)
        table = app.query_one("#requests-table", DataTable)
        await pilot.pause()
        assert pane.follow and selected(table) == "r039"
        assert table.row_count - 1 in visible(table)  # the newest is in view
        await pilot.press("2")  # zoom (laid out before the next keys, as a person sees it)
        await pilot.pause()
        await pilot.press("k", "k")  # moving up pauses where the cursor is
        assert not pane.follow and selected(table) == "r037"
        assert str(pane.border_subtitle) == "paused · G resumes"
        source.push(*requests(40, 5))
        app.refresh_data()
        await pilot.pause()
        assert selected(table) == "r037"  # the cursor was not stolen
        assert str(pane.border_subtitle) == "paused · 5 new ↓"
        await pilot.press("2")  # back to the home layout: a resize; the row stays selected
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert selected(table) == "r037" and table.cursor_row in visible(table)
        await pilot.press("2", "G")
        assert pane.follow and selected(table) == "r044"
        assert str(pane.border_subtitle) == "following"
        await pilot.press("f")  # f pauses and resumes too
        assert not pane.follow
        source.push(*requests(45, 1))
        app.refresh_data()
        assert selected(table) == "r044"
        await pilot.press("f")
        assert pane.follow and selected(table) == "r045"


async def test_the_tail_is_in_view_after_a_zoom_and_a_resize() -> None:
    source = FakeSource()
    source.state["recent"] = requests(0, 60)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#requests-table", DataTable)
        for step in ("2", "2", (80, 24)):
            if isinstance(step, str):
                await pilot.press(step)
            else:
                await pilot.resize_terminal(*step)
            await pilot.pause()
            assert selected(table) == "r059" and table.row_count - 1 in visible(table), step


def header(app) -> str:
    return str(app.query_one("#status", Static).content)


async def test_the_header_rolls_up_health_and_the_last_minute() -> None:
    source = FakeSource()
    deps = source.state["deployments"]
    deps.append(deployment("full-1", "gpt-4o", rpm_used=600, rpm_limit=600))
    deps.append(deployment("bad-1", "gpt-4o", health="key_rejected", last_error="401"))
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        source.push(finished("e1", status=503, at=NOW - 5, latency_ms=100.0),
                    finished("e2", at=NOW - 4, latency_ms=300.0),
                    finished("old", status=500, at=NOW - 600))  # fmt: skip
        app.refresh_data()
        line = header(app)
        assert line.startswith(
            "llmproxy-tui 1 rejected · 1 cooling · 1 at limit · 2 ok · 1 off │ 1.5 req/s"
        ), line
        assert "err 50.0% · p50 100 ms / p95 300 ms" in line  # the last minute only
        assert str(app.query_one("#keys-table", DataTable).get_cell("full-1", "health")) == (
            "◑ at limit"
        )
        keys = [str(k.value) for k in app.query_one("#keys-table", DataTable).rows]
        assert keys[:3] == ["bad-1", "gpt-4o-2", "full-1"]  # bad keys first

        source.connected, source.error = False, "ConnectError: connection refused"
        app.refresh_data()
        await pilot.pause()
        line = header(app)
        assert line.startswith(
            "llmproxy-tui stale ✖ disconnected: ConnectError: connection refused"
        )
        assert app.query_one("#home").has_class("-stale")
        source.connected, source.error = True, None
        app.refresh_data()
        assert "stale" not in header(app) and not app.query_one("#home").has_class("-stale")


async def test_key_changes_and_operator_actions_are_in_the_log() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        source.push({"type": "deployment_changed", "deployment": "gpt-4o-1", "time": NOW,
                     "health": "cooling_down", "reason": "429 rate limited",
                     "cooldown_until": NOW + 30})  # fmt: skip
        app.refresh_data()
        await pilot.press("1", "g", "r")  # reset the first key (gpt-4o-1 now sorts first)
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = [strip.text for strip in app.query_one("#log-view", RichLog).lines]
        text = "\n".join(lines)
        assert "WARNING keys: gpt-4o-1: cooling down 30s (429 rate limited)" in text, text
        assert "INFO    operator: reset gpt-4o-1: ok" in text, text
