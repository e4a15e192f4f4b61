"""The request detail's Finish and Params rows: the finish reason explained where it needs a
word, the client's parameters on one line, and a hostile parameter shown as plain escaped text."""

from __future__ import annotations

from textual.widgets import Static

from tests.tui.conftest import FakeSource, finished, make_app
from tui.screens.request_detail import RequestDetailScreen, params, summary

HOSTILE = "[bold]x\x1b"


def line(text: str, label: str) -> str:
    (found,) = [row for row in text.splitlines() if row.startswith(f"{label:<12}")]
    return found[12:]


def test_finish_rows() -> None:
    assert line(summary(finished("a", finish="stop")).plain, "Finish") == "stop"
    shown = line(summary(finished("b", finish="length")).plain, "Finish")
    assert shown == "length (the answer hit max tokens)"
    assert line(summary(finished("c", finish="tool_calls")).plain, "Finish") == "tool_calls"
    assert line(summary(finished("d", finish=None)).plain, "Finish") == "—"
    old = finished("e")
    del old["finish"], old["params"]  # an event from a proxy that predates them
    assert line(summary(old).plain, "Finish") == "—"
    assert line(summary(old).plain, "Params") == "—"
    started = {"type": "request_started", "id": "f", "time": 0.0, "group": "g", "stream": True}
    assert line(summary(started).plain, "Finish") == "—"
    assert line(summary(started).plain, "Params") == "…"


def test_params_row() -> None:
    values = {"temperature": 0.2, "max_tokens": 4096, "tools": 25, "stream": True}
    assert params(values) == "temperature 0.2 · max_tokens 4096 · tools 25 · stream"
    assert params({"parallel_tool_calls": False}) == "parallel_tool_calls false"
    assert params({}) == params(None) == params(["not", "a", "dict"]) == "—"
    shown = line(summary(finished("p", params=values)).plain, "Params")
    assert shown == "temperature 0.2 · max_tokens 4096 · tools 25 · stream"


def test_a_hostile_param_is_plain_escaped_text() -> None:
    text = summary(finished("h", params={"tool_choice": HOSTILE, HOSTILE: 1}))
    assert line(text.plain, "Params") == "tool_choice [bold]x\\x1b · [bold]x\\x1b 1"
    assert "\x1b" not in text.plain
    assert not any(span.style == "bold" and text.plain[span.start : span.end] == "x"
                   for span in text.spans)  # fmt: skip


async def test_the_detail_screen_shows_finish_and_params() -> None:
    source = FakeSource()
    source.state["recent"].append(
        finished("req-params", finish="length", params={"tool_choice": HOSTILE, "tools": 3})
    )
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "enter")
        assert isinstance(app.screen, RequestDetailScreen)
        assert app.screen.request["id"] == "req-params"
        await pilot.pause()
        shown = str(app.screen.query_one("#detail-summary", Static).content)
        assert "Finish      length (the answer hit max tokens)" in shown
        assert "Params      tool_choice [bold]x\\x1b · tools 3" in shown
        screen = app.export_screenshot()
        assert "[bold]x\\x1b" in screen and "\x1b" not in shown
