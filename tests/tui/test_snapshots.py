"""Snapshot tests of the main screens over a FakeSource with a fixed clock and no cursor blink.
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` after reading the report."""

from __future__ import annotations

import pytest

from tests.tui.conftest import FakeSource, finished, make_app


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_home(snap_compare, size) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=size)


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"])
def test_zoomed_pane(snap_compare, key) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=[key])


def test_request_detail(snap_compare) -> None:
    source = FakeSource()
    attempts = [
        {
            "deployment": "gpt-4o-2",
            "group": "gpt-4o",
            "status": 429,
            "reason": "rate limited (retry after 42s)",
            "latency_ms": 120.0,
        },
        {
            "deployment": "claude-1",
            "group": "claude",
            "status": 200,
            "reason": "ok",
            "latency_ms": 900.0,
        },
    ]
    source.state["recent"].append(
        finished(
            "req-fb",
            group="gpt-4o",
            dep="claude-1",
            attempts=2,
            fallback="claude",
            attempt_log=attempts,
        )
    )
    assert snap_compare(make_app(source), terminal_size=(120, 40), press=["2", "enter"])


def test_tester(snap_compare) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=["t", *"hello"])


def test_help(snap_compare) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=["question_mark"])


def test_light_theme(snap_compare) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=["T"])


def test_cost_by_client(snap_compare) -> None:
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=["4", "g"])


def test_tester_through_messages(snap_compare) -> None:
    press = ["t", "ctrl+f", *"hello"]
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=press)
