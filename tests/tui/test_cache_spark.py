"""The Cache pane's hit-rate chart tells the truth: no history is a flat line, never a full
chart, and a steady hit rate stands above an empty one."""

from __future__ import annotations

from textual.widgets import Sparkline

from tests.tui.conftest import NOW, FakeSource, make_app, state
from tui.panes.cache_rate import minute_rates


def test_the_rates_start_at_a_zero_anchor() -> None:
    assert minute_rates([]) == []
    assert minute_rates([[NOW, 3, 1], [NOW + 60, 0, 0]]) == [0.0, 0.75, 0.0]


def chart(spark: Sparkline) -> str:
    return "".join(spark.render_line(y).text for y in range(spark.size.height))


async def test_no_history_draws_no_bars_and_a_steady_rate_draws_full_ones() -> None:
    doc = state()
    doc["cache"] = {**doc["cache"], "history": []}
    source = FakeSource(doc)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        app.refresh_data()
        await pilot.pause()
        spark = app.query_one("#cache-spark", Sparkline)
        assert chart(spark).strip() and "█" not in chart(spark)  # was a full chart
        steady = [[NOW - 60 * i, 9, 1] for i in range(10, 0, -1)]  # 90% every minute
        source.update(cache={**doc["cache"], "history": steady})
        app.refresh_data()
        await pilot.pause()
        assert "█" in chart(spark)  # was drawn as empty bars (min == max)
