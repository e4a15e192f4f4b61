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
from textual.widgets import Select, TextArea

from proxy.config.loader import DEMO_CONFIG, load_config
from proxy.events import BusLogHandler
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tui.launch import LocalDashboardApp
from tui.screens.tester import TesterScreen

PANES = [("1", "keys"), ("2", "requests"), ("3", "cache"), ("4", "cost"), ("5", "log")]
PROMPT = "Write a short Markdown note on what this proxy does."


async def traffic(base: str) -> None:
    """Sends a mix of requests: plain, streamed, a repeat (cache hit) and an unknown model."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i, (model, stream) in enumerate(
            [
                ("demo-fast", False),
                ("demo-writer", True),
                ("demo-fast", True),
                ("demo-writer", False),
            ]
        ):
            body = {
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": f"question {i}"}],
            }
            await client.post("/v1/chat/completions", json=body)
        repeat = {"model": "demo-fast", "messages": [{"role": "user", "content": "question 0"}]}
        await client.post("/v1/chat/completions", json=repeat)  # answered from the cache
        await client.post("/v1/chat/completions", json={**repeat, "model": "no-such-model"})


async def run_tester(app: LocalDashboardApp, pilot: Pilot[int]) -> None:
    await pilot.press("t")
    tester = app.screen
    assert isinstance(tester, TesterScreen)
    tester.query_one("#tester-group", Select).value = "demo-writer"
    tester.query_one("#tester-prompt", TextArea).text = PROMPT
    await pilot.press("ctrl+s")
    if tester.worker is not None:
        await tester.worker.wait()
    for _ in range(40):  # until the request's cost arrives from the bus
        app.refresh_data()
        if tester.runs and tester.runs[-1].cost_known:
            break
        await pilot.pause(0.05)


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


async def capture(out: Path, size: tuple[int, int] = (120, 40)) -> list[Path]:
    """Runs the demo and saves every screenshot into `out` (an existing directory).

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
            saved.append(Path(app.save_screenshot(f"{name}.svg", path=str(out))))

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
                await pilot.press("2", "enter")
                save("request_detail")
                await pilot.press("escape", "2", "question_mark")
                save("help")
                await pilot.press("escape")
                await app.action_quit()
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
    png = to_png(svgs)
    print(
        f"saved {len(svgs)} SVG screenshots in {args.out}/"
        + ("" if png else " (no PNG: pip install cairosvg)")
    )


if __name__ == "__main__":
    main()
