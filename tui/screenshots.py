"""`python -m tui.screenshots`: runs the demo config proxy in-process, sends real traffic
through it (a cache hit and a streamed tester answer included) and saves `screenshots/*.svg`
(and `.png` when cairosvg is installed) of each screen. Never drawn by hand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

import httpx
from textual.pilot import Pilot
from textual.widgets import DataTable, Select, TextArea

from proxy.config.loader import DEMO_CONFIG, load_config
from proxy.events import BusLogHandler
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tui.launch import LocalDashboardApp
from tui.panes.request_log import RequestLogPane
from tui.screens.tester import TesterScreen

PANES = [("1", "keys"), ("2", "requests"), ("3", "cache"), ("4", "cost"), ("5", "log")]
PROMPT = "Write a short Markdown note on what this proxy does."


OPENAI_PYTHON = {"user-agent": "OpenAI/Python 1.99.0"}
CLAUDE_CODE = {
    "user-agent": "claude-cli/2.1.0 (external, cli)",
    "x-claude-code-session-id": "3f2a9c1d-7b4e-4f0a-9d2c-5e8b1a6f0c42",
}
CODEX = {"user-agent": "codex_exec/0.171.0 (Ubuntu 24.4.0; x86_64)"}


async def traffic(base: str) -> None:
    """Sends a mix of requests through each API, as the agents send them: plain, streamed, a
    repeat (cache hit) and an unknown model."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i, (model, stream) in enumerate([("demo-fast", False), ("demo-writer", True)]):
            body = {
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": f"question {i}"}],
            }
            await client.post("/v1/chat/completions", json=body, headers=OPENAI_PYTHON)
        claude = {"model": "demo-writer", "max_tokens": 512, "stream": True,
                  "messages": [{"role": "user", "content": "fix the failing test"}]}  # fmt: skip
        await client.post("/v1/messages?beta=true", json=claude, headers=CLAUDE_CODE)
        codex = {"model": "demo-fast", "stream": True, "input": "list the files",
                 "prompt_cache_key": "01a2334a-93bd-7c82-8588-5673ba24b07e"}  # fmt: skip
        await client.post("/v1/responses", json=codex, headers=CODEX)
        repeat = {"model": "demo-fast", "messages": [{"role": "user", "content": "question 0"}]}
        await client.post("/v1/chat/completions", json=repeat)  # answered from the cache
        await client.post("/v1/chat/completions", json={**repeat, "model": "no-such-model"})


async def run_tester(app: LocalDashboardApp, pilot: Pilot[int]) -> None:
    await pilot.press("t")
    tester = app.screen
    assert isinstance(tester, TesterScreen)
    tester.query_one("#tester-group", Select).value = "demo-writer"
    tester.query_one("#tester-prompt", TextArea).text = PROMPT
    await pilot.press("ctrl+f", "ctrl+s")  # through the Anthropic Messages API
    if tester.worker is not None:
        await tester.worker.wait()
    for _ in range(40):  # until the request's cost arrives from the bus
        app.refresh_data()
        if tester.runs and tester.runs[-1].cost_known:
            break
        await pilot.pause(0.05)


def open_request(app: LocalDashboardApp, client: str) -> None:
    """Puts the Requests pane's cursor on the first request from `client`."""
    pane = app.query_one(RequestLogPane)
    table = app.query_one("#requests-table", DataTable)
    keys = [str(row.value) for row in table.rows]
    row = next(i for i, key in enumerate(keys) if pane.requests[key].get("client") == client)
    table.move_cursor(row=row, animate=False)


async def settle(app: LocalDashboardApp, pilot: Pilot[int]) -> None:
    """Waits until the usage store has every row, then refreshes all panes."""
    for _ in range(100):
        await app.source.refresh()
        snapshot = app.source.snapshot() or {}
        if not snapshot.get("server", {}).get("usage_store", {}).get("pending"):
            break
        await pilot.pause(0.05)
    app.refresh_data()
    await pilot.pause(0.1)


COMPACT_SHOTS = {"home", "keys", "cost"}
"""What is also saved at 80×24 (`*_80x24.svg`): the layout of small terminals."""


async def capture(
    out: Path, size: tuple[int, int] = (120, 40), only: set[str] | None = None
) -> list[Path]:
    """Runs the demo and saves every screenshot (or those in `only`, named `*_<W>x<H>`) into
    `out` (an existing directory).

    Returns:
        The SVG files written.
    """
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(load_config(DEMO_CONFIG, demo=True), usage_db=Path(tmp) / "usage.db")
        server = ProxyServer(runtime, "127.0.0.1", 0)
        handler = BusLogHandler(runtime.bus)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        for noisy in ("httpx", "httpcore"):  # the screenshot client's own requests
            logging.getLogger(noisy).setLevel(logging.WARNING)
        app = LocalDashboardApp(
            runtime,
            server,
            config_label="built-in demo config",
            demo=True,
            refresh_interval=None,
            blink=False,
        )

        def save(name: str) -> None:
            if only is None:
                saved.append(Path(app.save_screenshot(f"{name}.svg", path=str(out))))
            elif name in only:
                file = f"{name}_{size[0]}x{size[1]}.svg"
                saved.append(Path(app.save_screenshot(file, path=str(out))))

        try:
            async with app.run_test(size=size) as pilot:
                await asyncio.to_thread(server.started.wait, 10)
                logging.getLogger("llmproxy").info("demo traffic for the screenshots")
                await traffic(f"http://127.0.0.1:{server.port}")
                await run_tester(app, pilot)
                save("tester")
                await pilot.press("escape")
                await settle(app, pilot)
                save("home")
                for key, name in PANES:
                    await pilot.press(key)
                    save(name)
                    await pilot.press(key)
                await pilot.press("4", "b")
                save("cost_by_client")
                await pilot.press("b", "b", "4")
                await pilot.press("2")
                open_request(app, client="Claude Code")
                await pilot.press("enter")
                save("request_detail")
                await pilot.press("escape", "2", "question_mark")
                save("help")
                await pilot.press("escape")
                await app.stop()
        finally:
            server.stop()
            logging.getLogger().removeHandler(handler)
    return saved


def to_png(svgs: list[Path]) -> bool:
    """Writes a PNG beside each SVG; False when cairosvg is not installed."""
    try:
        import cairosvg  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return False
    for svg in svgs:
        cairosvg.svg2png(url=str(svg), write_to=str(svg.with_suffix(".png")))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="screenshots", help="directory (screenshots/)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    svgs = asyncio.run(capture(out))
    svgs += asyncio.run(capture(out, (80, 24), COMPACT_SHOTS))
    png = to_png(svgs)
    print(
        f"saved {len(svgs)} SVG screenshots in {args.out}/"
        + ("" if png else " (no PNG: pip install cairosvg)")
    )


if __name__ == "__main__":
    main()
