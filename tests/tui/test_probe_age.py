"""The Keys pane shows the background health check's last probe and its age (a column once some
key was probed, and in the key's detail screen), and a spent budget as a bad state with its
reset countdown. Pilot tests over a scripted FakeSource."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from tests.tui.conftest import NOW, FakeSource, deployment, make_app
from tui.screens.key_detail import KeyDetailScreen


def probed_source() -> FakeSource:
    source = FakeSource()
    source.update(
        deployments=[
            deployment("good-1", "gpt-4o", last_probe_at=NOW - 125, last_probe="ok",
                       last_probe_ok=True),
            deployment("dead-1", "gpt-4o", key="…dead", last_probe_at=NOW - 40,
                       last_probe="401 [red]key[/red] rejected", last_probe_ok=False),
            deployment("new-1", "gpt-4o"),
            deployment("spent-1", "claude", provider="anthropic", health="budget_spent",
                       health_reason="deployment spent-1's budget ($5.0100 of $5.0000) is "
                                     "spent until 2025-06-16 00:00 UTC",
                       budget=5.0, budget_spend=5.01, budget_reset_at=NOW + 3600,
                       budget_scope="deployment"),
        ]
    )  # fmt: skip
    return source


async def test_probe_column_shows_each_keys_last_probe_and_its_age() -> None:
    now = [NOW]
    app = make_app(probed_source(), clock=lambda: now[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        assert table.get_cell("good-1", "probe").plain == "✓ 2m05s"
        assert table.get_cell("dead-1", "probe").plain == "✖ 40s"
        assert table.get_cell("new-1", "probe").plain == "—"
        now[0] += 20
        app.refresh_data()
        await pilot.pause()
        assert table.get_cell("dead-1", "probe").plain == "✖ 1m00s"


async def test_no_probe_column_without_background_checks(source: FakeSource) -> None:
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        assert "probe" not in [key.value for key in table.columns]


async def test_key_detail_shows_the_probe_in_words_as_plain_text() -> None:
    app = make_app(probed_source())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("1")
        table = app.query_one("#keys-table", DataTable)
        table.move_cursor(row=table.get_row_index("dead-1"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, KeyDetailScreen)
        text = str(app.screen.query_one("#key-summary", Static).content)
        assert "Last probe  401 [red]key[/red] rejected, 40s ago (at " in text  # never markup
        await pilot.press("escape")
        await pilot.pause()
        table.move_cursor(row=table.get_row_index("new-1"))
        await pilot.press("enter")
        await pilot.pause()
        text = str(app.screen.query_one("#key-summary", Static).content)
        assert "Last probe" not in text  # never probed: no line about it


async def test_budget_spent_is_a_bad_state_with_its_reset_countdown() -> None:
    now = [NOW]
    app = make_app(probed_source(), clock=lambda: now[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        health = table.get_cell("spent-1", "health")
        assert health.plain == "$ budget spent · resets in 1h00m"
        assert "red" in str(health.style)
        order = [r.value for r in table.rows]
        assert order.index("spent-1") < order.index("good-1")  # bad keys first
        assert "1 budget spent" in str(app.query_one("#status", Static).content)
        now[0] += 1800
        app.refresh_data()
        await pilot.pause()
        assert table.get_cell("spent-1", "health").plain == "$ budget spent · resets in 30m00s"
        await pilot.press("1")
        table.move_cursor(row=table.get_row_index("spent-1"))
        await pilot.press("enter")
        await pilot.pause()
        text = str(app.screen.query_one("#key-summary", Static).content)
        assert "Budget      $5.0100 of $5.0000 (deployment), resets in 30m00s" in text
        assert "spent until 2025-06-16 00:00 UTC" in text


async def test_a_budget_event_shows_before_the_next_snapshot() -> None:
    source = probed_source()
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        source.push(
            {"type": "deployment_changed", "deployment": "good-1", "health": "budget_spent",
             "reason": "provider openai's budget is spent", "cooldown_until": NOW + 90}
        )  # fmt: skip
        app.refresh_data()
        await pilot.pause()
        table = app.query_one("#keys-table", DataTable)
        assert table.get_cell("good-1", "health").plain == "$ budget spent · resets in 1m30s"
