"""`--attach`: the dashboard fed over HTTP by a headless proxy running in a subprocess."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import httpx
import pytest
import yaml
from textual.widgets import DataTable, Static, TextArea

from tests.tui.conftest import mock_config
from tui.app import DashboardApp
from tui.screens import tester as tester_screen
from tui.source import RemoteSource

MASTER = "sk-master-attach-test-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_headless(tmp_path, port: int) -> subprocess.Popen[bytes]:
    config = mock_config(tmp_path)
    config["general_settings"] = {"master_key": MASTER}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--no-tui",
            "--config",
            str(path),
            "--port",
            str(port),
            "--usage-db",
            str(tmp_path / "usage.db"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(30) == 0


@pytest.fixture
def headless(tmp_path):
    port = free_port()
    proc = start_headless(tmp_path, port)
    yield port, proc
    if proc.poll() is None:
        stop(proc)


async def until(pilot, app, check, tries: int = 200) -> None:
    for _ in range(tries):
        app.refresh_data()
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the dashboard never showed it")


async def test_attach_shows_the_remote_proxy_and_reconnects(tmp_path, headless) -> None:
    port, proc = headless
    url = f"http://127.0.0.1:{port}"
    source = RemoteSource(url, MASTER, interval=0.5, backoff=(0.1, 0.5))
    app = DashboardApp(
        source, config_label=f"attached to {url}", refresh_interval=None, blink=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        keys = app.query_one("#keys-table", DataTable)
        await until(pilot, app, lambda: source.connected and keys.row_count == 2)
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {MASTER}"},
                json={"model": "mock-b", "messages": [{"role": "user", "content": "hi"}]},
            )
        request_id = response.headers["x-request-id"]
        requests = app.query_one("#requests-table", DataTable)
        await until(pilot, app, lambda: request_id in requests.rows)

        await pilot.press("t")
        tester = app.screen
        assert isinstance(tester, tester_screen.TesterScreen)
        tester.query_one("#tester-prompt", TextArea).text = "remote hello"
        await pilot.press("ctrl+s")
        assert tester.worker is not None
        run = await tester.worker.wait()
        assert run.answer == "**Hello** from mock A" and run.deployment == "mock-a-1"
        await pilot.press("escape")

        await asyncio.to_thread(stop, proc)
        status = app.query_one("#status", Static)
        await until(pilot, app, lambda: "disconnected" in str(status.content))
        restarted = start_headless(tmp_path, port)
        try:
            await until(pilot, app, lambda: source.connected)
            assert source.reconnects >= 1 and "disconnected" not in str(status.content)
        finally:
            await asyncio.to_thread(stop, restarted)
        await pilot.press("q")
    assert app.return_code == 0
