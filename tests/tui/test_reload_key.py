"""The dashboard's reload key (ctrl+r, also in the command palette): it asks the proxy to
re-read its config and says what changed; an invalid file is shown as an error and the old
config keeps serving; a reload the dashboard did not ask for (SIGHUP, a file change) is told too.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from proxy.config.loader import build_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tests.tui.conftest import FakeSource, make_app, mock_config, running
from tests.tui.test_tmux import capture, command, free_port, tmux, wait_for
from tui.launch import LocalDashboardApp
from tui.panes.log import LogPane


def local_app_on_file(doc: dict[str, Any], tmp_path: Path) -> tuple[LocalDashboardApp, Path]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    runtime = Runtime(build_config(doc, path=path), usage_db=tmp_path / "usage.db")
    server = ProxyServer(runtime, "127.0.0.1", 0)
    app = LocalDashboardApp(
        runtime, server, config_label="test", demo=False, refresh_interval=None, blink=False
    )
    return app, path


async def chat(base: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{base}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )


def notes(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def settle(pilot: Any, app: Any, check: Any, tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened; notifications: {notes(app)}")


async def test_ctrl_r_reloads_the_in_process_proxy(tmp_path) -> None:
    doc = mock_config(tmp_path)
    app, path = local_app_on_file(doc, tmp_path)
    async with running(app) as pilot:
        await asyncio.to_thread(app.server.started.wait, 10)
        # The file watch would reload on its own; stop it so the key is what reloads.
        await asyncio.wrap_future(app.server.submit(app.server.runtime.reloader.stop()))
        base = f"http://127.0.0.1:{app.server.port}"
        assert (await chat(base, "mock-c")).status_code == 404
        doc["model_list"].append(
            {
                "model_name": "mock-c",
                "litellm_params": {"model": "mock/c", "mock_response": "from C"},
                "model_info": {"id": "mock-c-1"},
            }
        )
        path.write_text(yaml.safe_dump(doc))
        await pilot.press("ctrl+r")
        await settle(pilot, app, lambda: any("config reloaded" in n for n in notes(app)))
        assert any("groups added: mock-c" in n for n in notes(app))
        assert (await chat(base, "mock-c")).status_code == 200

        path.write_text("model_list: [\n")
        await pilot.press("ctrl+r")
        await settle(pilot, app, lambda: any("FAILED" in n for n in notes(app)))
        failed = next(n for n in app._notifications if "FAILED" in str(n.message))
        assert failed.severity == "error" and "invalid YAML" in str(failed.message)
        assert (await chat(base, "mock-c")).status_code == 200  # the old config serves on
        await app.source.refresh()
        app.refresh_data()  # the reload it asked for is not told twice
        assert sum("FAILED" in n for n in notes(app)) == 1
        await pilot.press("q", "y")


async def test_the_key_and_the_palette_ask_the_source_and_other_reloads_are_told() -> None:
    source = FakeSource()
    source.update(reload={"number": 0, "at": None, "ok": None})
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        app.refresh_data()
        await pilot.press("ctrl+r")
        await settle(pilot, app, lambda: ("reload", None) in source.actions)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Reload config" in commands

        # A reload the dashboard did not ask for, that failed: told as an error, once.
        failed = {
            "number": 7,
            "at": 1.0,
            "trigger": "file change",
            "ok": False,
            "error": "config.yaml: line 2: invalid YAML: [bold]x[/bold]",
            "restart_needed": [],
        }
        source.update(reload=failed)
        logged = app.query_one(LogPane).lines
        app.refresh_data()
        app.refresh_data()
        await pilot.pause()
        told = [n for n in app._notifications if "FAILED" in str(n.message)]
        assert len(told) == 1 and told[0].severity == "error"
        assert "[bold]x[/bold]" in str(told[0].message)  # plain text, never markup
        assert app.query_one(LogPane).lines == logged + 1


def test_sighup_reloads_the_dashboards_proxy(tmp_path) -> None:
    """The real command in tmux: SIGHUP to the dashboard process reloads its proxy (which
    serves off the main thread, so the CLI catches the signal for it) and the screen says so."""
    master = "sk-master-dashboard-reload-0123456789"
    doc = dict(mock_config(tmp_path), general_settings={"master_key": master})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    port = free_port()
    session = f"llmproxy-reload-{os.getpid()}-{port}"
    args = [*command(), "--config", str(path), "--port", str(port)]
    args += ["--usage-db", str(tmp_path / "usage.db")]
    env = {k: v for k, v in os.environ.items() if k not in ("LLMPROXY_CONFIG", "TMUX")}
    env["HOME"] = str(tmp_path)
    new = ["new-session", "-d", "-s", session, "-x", "120", "-y", "40", "-c", str(tmp_path)]
    subprocess.run(tmux(session, *new, "exec " + shlex.join(args)), check=True, env=env)
    try:
        # The header shows the listen address once the dashboard read a snapshot.
        assert wait_for(lambda: f"127.0.0.1:{port}" in capture(session)), capture(session)
        shown = subprocess.run(
            tmux(session, "display", "-p", "-t", session, "#{pane_pid}"),
            capture_output=True,
            text=True,
            check=True,
        )
        pid = int(shown.stdout.strip())
        os.kill(pid, signal.SIGHUP)

        def reloaded() -> dict[str, Any] | None:
            headers = {"authorization": f"Bearer {master}"}
            url = f"http://127.0.0.1:{port}/llmproxy/state"
            try:
                section = httpx.get(url, headers=headers, timeout=5).json()["reload"]
            except httpx.TransportError:
                return None
            return section if section["number"] else None

        deadline = time.monotonic() + 20
        section = None
        while section is None and time.monotonic() < deadline:
            section = reloaded()
            time.sleep(0.1)
        assert section is not None and section["trigger"] == "SIGHUP" and section["ok"]
        assert wait_for(lambda: "config reloaded" in capture(session)), capture(session)
        # Closing the terminal also sends SIGHUP: that one still ends the dashboard.
        subprocess.run(tmux(session, "kill-server"), capture_output=True, check=False)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20)
    finally:
        subprocess.run(tmux(session, "kill-server"), capture_output=True, check=False)
