"""True numbers (issue 16 §1): columns as wide as their values, costs never rounded to zero,
and a Cost tree whose parents are the sums of their children after fallback traffic."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from textual.widgets import DataTable

from tests.fakes.steps import error
from tests.fakes.upstream import FakeUpstream
from tests.tui.conftest import (
    NOW,
    FakeSource,
    deployment,
    finished,
    local_app,
    make_app,
    mock_config,
    running,
)
from tests.tui.test_hostile import drawn
from tui.panes import format as fmt
from tui.screens.key_detail import KeyDetailScreen

LONG_ERROR = (
    "401 invalid_api_key: Incorrect API key provided: sk-…9f2a. You can find your API key at "
    "https://platform.openai.com/account/api-keys. (request id req_8c1f…, organization org-…)"
)


def cell(app, table: str, row: str, column: str) -> str:
    value: Any = app.query_one(f"#{table}", DataTable).get_cell(row, column)
    return str(getattr(value, "plain", value))


async def test_600_rpm_a_long_error_and_tiny_costs_are_shown_whole() -> None:
    source = FakeSource()
    source.state["deployments"].insert(
        0,
        deployment("busy-1", "gpt-4o", health="key_rejected", rpm_used=37, rpm_limit=600,
                   last_error=LONG_ERROR, last_error_at=NOW - 5),
    )  # fmt: skip
    source.state["recent"] += [
        finished("fast", latency_ms=1.0, cost=0.00001),
        finished("gone", status=499, latency_ms=900.0),
        finished("slow", latency_ms=2000.0, cost=0.0),
    ]
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = drawn(app.export_screenshot())
        assert "37/600" in screen
        keys = app.query_one("#keys-table", DataTable)
        assert keys.virtual_size.width <= keys.size.width  # the error takes what is left
        shown = cell(app, "keys-table", "busy-1", "last_error")
        assert LONG_ERROR.startswith(shown.rstrip("…")) and len(shown) > 21
        assert cell(app, "requests-table", "fast", "latency") == "1 ms"
        assert cell(app, "requests-table", "slow", "latency") == "2.0 s"
        assert cell(app, "requests-table", "fast", "cost") == "<$0.0001"
        assert cell(app, "requests-table", "gone", "status") == "cancel"  # a 499
        for value in ("1 ms", "2.0 s", "<$0.0001"):
            assert value in screen, screen
        table = app.query_one("#requests-table", DataTable)
        cost = table.get_cell("fast", "cost")
        assert cost.justify == "right"  # numbers line up on their last digit

        await pilot.press("1", "g", "enter")  # rejected sorts first; Enter: the whole story
        assert isinstance(app.screen, KeyDetailScreen)
        await pilot.pause()
        detail = drawn(app.export_screenshot())
        assert "37 / 600 this minute" in detail
        joined = "".join(line.strip("│ ") for line in detail.splitlines())
        assert LONG_ERROR.replace(" ", "") in joined.replace(" ", "")  # whole, wrapped

        await pilot.resize_terminal(80, 24)
        await pilot.press("escape")
        await pilot.pause()
        screen = drawn(app.export_screenshot())
        assert "37/600" in screen and "401 invalid_api_key" in screen  # the reason, at 80x24


def test_dollars_never_round_a_charge_to_zero() -> None:
    assert fmt.dollars(0.0) == "$0"
    assert fmt.dollars(0.00001) == "<$0.0001"
    assert fmt.dollars(0.00006) == "$0.0001"
    assert fmt.dollars(12.5) == "$12.50"


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def fallback_config(tmp_path, base: str) -> dict[str, Any]:
    """`primary` (one key that always fails) falls back to `mock-b`."""
    config = mock_config(tmp_path)
    config["model_list"].append(
        {"model_name": "primary",
         "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": base,
                            "api_key": "sk-test-primary-000009"},
         "model_info": {"id": "primary-1", "input_cost_per_token": 0.000001,
                        "output_cost_per_token": 0.000002}}
    )  # fmt: skip
    config["router_settings"]["fallbacks"] = [{"primary": ["mock-b"]}]
    return config


def tree(app) -> list[tuple[str, list[str]]]:
    """Returns the Cost table as (parent key, [child keys]), then the total last."""
    out: list[tuple[str, list[str]]] = []
    for row_key in app.query_one("#cost-table", DataTable).rows:
        key = str(row_key.value)
        if key.startswith(("d:", "f:", "u:")):
            out[-1][1].append(key)
        else:
            out.append((key, []))
    return out


def number(app, row: str, column: str) -> int:
    return int(cell(app, "cost-table", row, column).replace(",", ""))


async def test_the_cost_tree_adds_up_after_fallback_traffic(tmp_path, upstream) -> None:
    upstream.set_default(error(500, "the primary upstream is down"))
    app = local_app(fallback_config(tmp_path, upstream.openai_base), tmp_path)
    async with running(app, size=(160, 40)) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.server.port}") as client:
            for model, text in [("primary", "a"), ("primary", "b"), ("mock-b", "c"),
                                ("mock-a", "d")]:  # fmt: skip
                body = {"model": model, "messages": [{"role": "user", "content": text}]}
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
                if model == "primary":
                    assert answer.headers["x-llmproxy-fallback"] == "mock-b"
        for _ in range(100):  # until the usage store has all four
            await app.source.refresh()
            usage = app.source.snapshot()["usage"]
            if usage["totals"]["requests"] == 4:
                break
            await asyncio.sleep(0.05)
        app.refresh_data()
        await pilot.press("4")
        await pilot.pause()

        shown = dict(tree(app))
        # mock-b-1 belongs to mock-b: its own request and the two it served for `primary`
        # (shown as fallback traffic) are mock-b's children, never primary's.
        assert sorted(shown["g:mock-b"]) == ["d:mock-b-1", "f:mock-b-1\0primary"]
        assert "└ mock-b-1 ↪ for primary" in cell(app, "cost-table", "f:mock-b-1\0primary", "name")
        assert number(app, "f:mock-b-1\0primary", "requests") == 2
        assert "g:primary" not in shown  # primary's key served nothing
        owners = {d["id"]: d["group"] for d in app.source.snapshot()["deployments"]}
        for parent, children in shown.items():
            if parent == "total":
                continue
            for column in ("requests", "tokens_in", "tokens_out"):
                assert number(app, parent, column) == sum(
                    number(app, child, column) for child in children
                ), (parent, column)
            owned = [d for d in usage["by_deployment"] if f"g:{owners[d['deployment']]}" == parent]
            assert cell(app, "cost-table", parent, "cost") == fmt.dollars(
                sum(d["cost"] for d in owned)
            )
        parents = [p for p in shown if p != "total"]
        for column in ("requests", "tokens_in", "tokens_out"):
            assert sum(number(app, p, column) for p in parents) == number(app, "total", column)
        assert number(app, "total", "requests") == 4
        await pilot.press("q", "y")


def test_a_cancelled_request_says_so_in_its_detail() -> None:
    from tui.screens.request_detail import summary

    text = summary(finished("gone", status=499)).plain
    assert "Status      499 cancelled (the client went away before the answer)" in text
