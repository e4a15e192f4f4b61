"""Snapshot tests of the main screens over a FakeSource with a fixed clock and no cursor blink.
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` after reading the report."""

from __future__ import annotations

import pytest

from tests.tui.conftest import NOW, FakeSource, deployment, finished, make_app


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
            params={"temperature": 0.2, "max_tokens": 4096, "tools": 25, "stream": True},
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
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=["4", "b"])


def test_tester_through_messages(snap_compare) -> None:
    press = ["t", "ctrl+f", *"hello"]
    assert snap_compare(make_app(FakeSource()), terminal_size=(120, 40), press=press)


def trouble() -> FakeSource:
    """Keys in every unhealthy state: rejected (with a long reason), at its rpm limit,
    cooling down, key missing; and a cancelled request."""
    source = FakeSource()
    deps = source.state["deployments"]
    deps.append(deployment("full-1", "gpt-4o", rpm_used=600, rpm_limit=600, key="…f011",
                           limit_frees_at=NOW + 12))  # fmt: skip
    deps.append(
        deployment("bad-1", "claude", provider="anthropic", health="key_rejected", key="…dead",
                   last_error="401 authentication_error: invalid x-api-key (key …dead)",
                   last_error_at=NOW - 75, errors=7)
    )  # fmt: skip
    source.state["recent"].append(finished("gone", status=499, latency_ms=1500.0, cost=0.00002))
    return source


async def _pause_follow(pilot) -> None:
    source = pilot.app.source
    await pilot.pause()  # the first rows are in before `k` moves up from the newest
    await pilot.press("2", "k")
    source.push(*[finished(f"new-{i}", at=NOW - 20 + i) for i in range(4)])
    pilot.app.refresh_data()
    await pilot.press("2")


async def _disconnect(pilot) -> None:
    source = pilot.app.source
    source.connected, source.error = False, "ConnectError: [Errno 111] Connection refused"
    pilot.app.refresh_data()


STATES = {
    "trouble": (trouble, []),
    "paused": (FakeSource, None),
    "stale": (FakeSource, None),
    "quit": (FakeSource, ["q"]),
    "key_detail": (trouble, ["1", "_", "g", "enter"]),  # the zoomed Keys laid out first
}
BEFORE = {"paused": _pause_follow, "stale": _disconnect}


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
@pytest.mark.parametrize("state", list(STATES))
def test_states(snap_compare, state, size) -> None:
    make, press = STATES[state]
    assert snap_compare(
        make_app(make()), terminal_size=size, press=press or [], run_before=BEFORE.get(state)
    )
