"""The dashboard redraws only what changed: an unchanged header, Keys table or cache summary
costs the in-process proxy nothing, yet a countdown still moves every frame."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable, Static

from tests.tui.conftest import NOW, FakeSource, deployment, finished, make_app, state
from tui.panes.header import WINDOW_S, RecentRequests, StatusHeader
from tui.panes.key_health import KeyHealthPane


def test_the_summary_is_made_again_only_when_it_changes() -> None:
    recent = RecentRequests()
    recent.add([finished("a", at=NOW - 10), finished("b", status=500, at=NOW - 5)])
    first = recent.summary(NOW)
    assert first.plain == "err 50.0% · p50 812 ms / p95 812 ms"
    assert recent.summary(NOW + 1) is first  # nothing came, nothing left the window
    # The oldest request leaves the last minute: the numbers move without a new request.
    assert recent.summary(NOW - 10 + WINDOW_S + 1).plain.startswith("err 100.0%")
    recent.add([finished("c", at=NOW + 51)])
    assert recent.summary(NOW + 51).plain.startswith("err 50.0%")
    assert recent.summary(NOW + 200).plain == ""


def test_an_earlier_clock_makes_the_summary_again() -> None:
    recent = RecentRequests()
    recent.add([finished("a", at=NOW), finished("b", status=500, at=NOW - 100)])  # unsorted
    assert recent.summary(NOW + 10).plain.startswith("err 0.0%")
    assert recent.summary(NOW - 50).plain.startswith("err 50.0%")


async def test_an_unchanged_header_is_not_redrawn(source: FakeSource, monkeypatch) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        header = app.query_one(StatusHeader)
        updates: list[Any] = []
        real = Static.update

        def update(self: Static, *args: Any, **kwargs: Any) -> None:
            if self is header:
                updates.append(args)
            real(self, *args, **kwargs)

        monkeypatch.setattr(Static, "update", update)
        app.refresh_data()
        app.refresh_data()
        assert updates == []  # the same clock and snapshot: the same line
        source.push(finished("new-1", at=NOW))
        app.refresh_data()
        assert len(updates) == 1


async def test_keys_are_drawn_again_only_when_something_moved(
    source: FakeSource, monkeypatch
) -> None:
    now = [NOW]
    source.update(deployments=[deployment("a-1", "a"), deployment("a-2", "a")])
    app = make_app(source, clock=lambda: now[0])
    async with app.run_test(size=(120, 40)):
        pane = app.query_one(KeyHealthPane)
        drawn: list[float] = []
        real = KeyHealthPane._render_rows

        def render_rows(self: KeyHealthPane) -> None:
            drawn.append(now[0])
            real(self)

        monkeypatch.setattr(KeyHealthPane, "_render_rows", render_rows)
        now[0] += 1
        app.refresh_data()
        assert drawn == []  # no countdown, no new snapshot, no event
        source.update(deployments=[deployment("a-1", "a", rpm_used=30), deployment("a-2", "a")])
        app.refresh_data()
        assert len(drawn) == 1
        table = app.query_one("#keys-table", DataTable)
        assert table.get_cell("a-1", "rpm").plain.endswith("30/60")
        source.push(
            {"type": "deployment_changed", "deployment": "a-2", "health": "cooling_down",
             "reason": "429", "cooldown_until": NOW + 30}
        )  # fmt: skip
        app.refresh_data()
        for _ in range(3):  # while a key cools down, every frame moves its countdown
            now[0] += 1
            app.refresh_data()
        assert len(drawn) == 5
        assert pane.deployment("a-2") is not None
        assert table.get_cell("a-2", "health").plain == "◔ cooling down 26s"


async def test_an_unchanged_cache_summary_is_not_redrawn(monkeypatch) -> None:
    source = FakeSource(state())
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        summary = app.query_one("#cache-summary", Static)
        updates: list[Any] = []
        real = Static.update

        def update(self: Static, *args: Any, **kwargs: Any) -> None:
            if self is summary:
                updates.append(args)
            real(self, *args, **kwargs)

        monkeypatch.setattr(Static, "update", update)
        source.update(cache=dict(source.state["cache"]))  # a new snapshot, the same numbers
        app.refresh_data()
        assert updates == []
        source.update(cache={**source.state["cache"], "hits": 999})
        app.refresh_data()
        assert len(updates) == 1


async def test_heavy_traffic_repaints_every_two_seconds_and_says_so(source: FakeSource) -> None:
    from tui.app import BUSY_REPAINT_S
    from tui.panes.request_log import RequestLogPane

    tick = [100.0]
    app = make_app(source)
    async with app.run_test(size=(120, 40)):
        app.monotonic = lambda: tick[0]
        pane = app.query_one(RequestLogPane)
        app.refresh_data()
        source.push(*(finished(f"r{n}", at=NOW) for n in range(150)))  # 600 events a second
        tick[0] += 0.25
        app.refresh_data()
        assert "busy: every 2 s" in str(pane.border_subtitle)
        source.push(finished("late", at=NOW))
        for _ in range(7):  # the next 1.75 s: nothing is drained, nothing repainted
            tick[0] += 0.25
            app.refresh_data()
            assert source.events and "late" not in pane.requests
        tick[0] += 0.25
        app.refresh_data()  # 2 s after the last repaint
        assert not source.events and "late" in pane.requests
        # Traffic falls below half the threshold: back to a repaint every tick, said too.
        source.push(finished("quiet", at=NOW))
        tick[0] += BUSY_REPAINT_S
        app.refresh_data()
        assert "quiet" in pane.requests
        assert "busy" not in str(pane.border_subtitle)
        source.push(finished("next", at=NOW))
        tick[0] += 0.25
        app.refresh_data()
        assert "next" in pane.requests
