""" "Test this key" pins the tester to that key: every send carries `x-llmproxy-deployment`, so
the key's own answer comes back even while the group would never pick it (it is disabled
here), in process and attached alike; ctrl+t unpins (the group picks again) and pins again."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from textual.widgets import DataTable, Static, TextArea

from tests.conftest import MASTER_KEY
from tests.tui.conftest import local_app, running
from tui.app import DashboardApp
from tui.screens import tester as tester_screen
from tui.screens.key_detail import KeyDetailScreen
from tui.screens.tester_wire import FORMATS, curl_command
from tui.source import RemoteSource

PIN = "x-llmproxy-deployment"


def pool_config() -> dict[str, Any]:
    """Group `pool`: two mock keys with answers of their own."""
    return {
        "model_list": [
            {
                "model_name": "pool",
                "litellm_params": {"model": "mock/one", "mock_response": f"answer from {name}"},
                "model_info": {"id": name},
            }
            for name in ("pool-1", "pool-2")
        ],
        "router_settings": {"num_retries": 0},
    }


async def disable(url: str, dep_id: str, key: str | None = None) -> None:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers) as client:
        done = await client.post(
            f"{url}/llmproxy/actions", json={"action": "disable", "deployment": dep_id}
        )
    assert done.status_code == 200, done.text


async def until(pilot: Any, app: Any, check: Any, tries: int = 200) -> None:
    for _ in range(tries):
        app.refresh_data()
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the dashboard never showed it")


async def open_pinned_tester(pilot: Any, app: Any, dep_id: str) -> tester_screen.TesterScreen:
    """Enter on the key's row, then `t` ("test this key")."""
    table = app.query_one("#keys-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(dep_id))
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, KeyDetailScreen)
    await pilot.press("t")
    await pilot.pause()
    tester = app.screen
    assert isinstance(tester, tester_screen.TesterScreen)
    return tester


async def send(pilot: Any, tester: tester_screen.TesterScreen, text: str) -> Any:
    tester.query_one("#tester-prompt", TextArea).text = text
    await pilot.press("ctrl+s")
    assert tester.worker is not None
    return await tester.worker.wait()


def pin_line(tester: tester_screen.TesterScreen) -> str:
    box = tester.query_one("#tester-pin", Static)
    return str(box.content) if box.display else ""


async def check_pinned_sends(pilot: Any, tester: tester_screen.TesterScreen) -> None:
    """pool-2 (disabled) is under test: pinned, it answers; unpinned, pool-1 does."""
    assert "pinned to pool-2" in pin_line(tester) and "ctrl+t unpins" in pin_line(tester)
    assert tester.pin == "pool-2"
    for i in range(3):
        run = await send(pilot, tester, f"hello {i}")
        assert (run.status, run.error) == (200, None), run.error
        assert run.target == "pool-2" and run.deployment == "pool-2"
        assert run.answer == "answer from pool-2"
        assert "pinned to pool-2" in run.result_line().plain
    await pilot.press("ctrl+t")  # unpin: the group picks, and never its disabled key
    assert tester.pin is None and "unpinned" in pin_line(tester)
    run = await send(pilot, tester, "unpinned hello")
    assert run.target is None and run.deployment == "pool-1", run.error
    assert "pinned" not in run.result_line().plain
    await pilot.press("ctrl+t")  # pinned again
    assert tester.pin == "pool-2"
    run = await send(pilot, tester, "pinned again")
    assert run.deployment == "pool-2" and run.answer == "answer from pool-2"


async def test_test_this_key_pins_every_send_to_that_key(tmp_path) -> None:
    app = local_app(pool_config(), tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        await disable(app.source.base_url, "pool-2")
        await app.source.refresh()
        app.refresh_data()
        await pilot.pause()
        tester = await open_pinned_tester(pilot, app, "pool-2")
        await check_pinned_sends(pilot, tester)


async def test_an_attached_tester_pins_too(start_proxy) -> None:
    proxy = start_proxy(pool_config(), master_key=MASTER_KEY, usage_db=False)
    await disable(proxy.url, "pool-2", MASTER_KEY)
    source = RemoteSource(proxy.url, MASTER_KEY, interval=0.2, backoff=(0.1, 0.5))
    app = DashboardApp(source, config_label="attached", refresh_interval=None, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        keys = app.query_one("#keys-table", DataTable)
        await until(pilot, app, lambda: source.connected and keys.row_count == 2)
        tester = await open_pinned_tester(pilot, app, "pool-2")
        await check_pinned_sends(pilot, tester)
        await pilot.press("escape")
        await pilot.press("q")


async def test_the_pin_names_its_group_only(tmp_path) -> None:
    config = pool_config()
    config["model_list"].append(
        {
            "model_name": "solo",
            "litellm_params": {"model": "mock/solo", "mock_response": "solo answer"},
            "model_info": {"id": "solo-1"},
        }
    )
    app = local_app(config, tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        await app.source.refresh()
        app.refresh_data()
        await pilot.pause()
        tester = await open_pinned_tester(pilot, app, "pool-1")
        tester.query_one("#tester-group").value = "solo"  # type: ignore[attr-defined]
        await pilot.pause()
        assert tester.pin is None and "for group pool only" in pin_line(tester)
        run = await send(pilot, tester, "hello solo")
        assert run.target is None and run.deployment == "solo-1" and run.status == 200


def test_a_pinned_run_replays_and_copies_with_its_pin() -> None:
    run = tester_screen.TesterRun("pool", "hi", wire="messages", target="pool-2")
    preset = tester_screen.replay_preset({"id": "r1"}, run)
    assert preset.deployment == "pool-2" and preset.send
    line = tester_screen.request_curl({"id": "r1"}, run, "http://127.0.0.1:4000", keyed=True)
    assert f"-H '{PIN}: pool-2'" in line
    assert PIN not in tester_screen.request_curl(
        {"id": "r1"}, tester_screen.TesterRun("pool", "hi"), "http://x", keyed=False
    )
    # A hostile id from an attached proxy's state stays quoted for the shell.
    hostile = curl_command(FORMATS["chat"], "http://x", {}, keyed=True, pin="$(rm -rf ~)'")
    assert "-H 'x-llmproxy-deployment: $(rm -rf ~)'\\'''" in hostile
    for wire in FORMATS.values():
        assert wire.headers("k", "pool-2")[PIN] == "pool-2"
        assert PIN not in wire.headers("k")
