"""Hostile strings (issue 13 §6): whatever a client, an upstream or the usage store hands the
dashboard reaches the screen as plain text, control characters shown escaped, never as markup,
and nothing a client can store crashes it, then or after a restart."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import httpx
from textual.widgets import DataTable, Static

from tests.tui.conftest import (
    NOW,
    FakeSource,
    deployment,
    finished,
    local_app,
    make_app,
    mock_config,
    row,
    running,
)
from tui.screens.key_detail import KeyDetailScreen
from tui.screens.request_detail import RequestDetailScreen

MIB = "m" * (1 << 20)
CORPUS = [
    "openrouter/[/]",
    "[link=http://x]y[/link]",
    "\x1b]0;TITLE\x07",
    "two\nlines",
    "\u202eevil\u2066",
    "[bold red]z[/]",
    "ok" + MIB,
]
"""Markup that breaks (`[/]`) or plants a link, an OSC title change, a forged line, bidi
overrides, and a megabyte."""
ESCAPED = ["openrouter/[/]", "[link=http://x]y[/link]", "\\x1b]0;TITLE\\x07", "two\\x0alines",
           "\\u202eevil\\u2066", "[bold red]z[/]"]  # fmt: skip
"""How the corpus reads on screen."""
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters that must never reach the terminal (escape sequences, bidi controls)."""


def drawn(svg: str) -> str:
    """Returns the text of a Textual SVG screenshot, one line per terminal row."""
    rows: dict[int, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text[^>]*x="([\d.]+)"[^>]*line-(\d+)\)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(int(m[2]), []).append(
            (float(m[1]), html.unescape(m[3]).replace("\xa0", " "))
        )
    return "\n".join("".join(t for _x, t in sorted(parts)) for _r, parts in sorted(rows.items()))


def hostile_state(source: FakeSource) -> None:
    """Puts the corpus into every field of the state document a client or upstream can fill."""
    state = source.state
    state["deployments"].append(
        deployment(CORPUS[0], CORPUS[1], provider=CORPUS[5], health="failing",
                   last_error=CORPUS[2] + CORPUS[6], health_reason=CORPUS[3],
                   api_base=CORPUS[4], model=CORPUS[6], last_error_at=NOW)
    )  # fmt: skip
    usage = state["usage"]
    for i, name in enumerate(CORPUS):
        usage["by_group"].append(dict(row(1, cost=0.001), group=name))
        usage["by_deployment"].append(dict(row(1, cost=0.001), deployment=f"d{i}", group=name))
        usage["by_client"].append(dict(row(1, cost=0.001), client=name))
        usage["by_client_today"].append(dict(row(1, cost=0.001), client=name))
        state["recent"].append(
            finished(f"{name}#{i}", group=name, dep=CORPUS[0], status=404, client=name,
                     session=name, fallback=name, error=name, preview=name, at=NOW - 10 + i,
                     attempt_log=[{"deployment": name, "group": name, "status": name,
                                   "reason": name, "latency_ms": 1.0}])
        )  # fmt: skip
    state["server"]["warnings"].append(CORPUS[2] + CORPUS[3])


def assert_harmless(svg: str) -> str:
    """Asserts the screen shows nothing raw and nothing huge; returns its text."""
    text = drawn(svg)
    assert not RAW.search(text), repr(RAW.search(text))
    assert len(text) < 12_000  # a screenful: the megabyte was cut, not drawn
    return text


class HostileSource(FakeSource):
    """A source whose actions answer with hostile text too (a probe quotes the upstream)."""

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        await super().action(name, deployment)
        return {"ok": False, "status": 401, "latency_ms": 5.0, "detail": CORPUS[2] + CORPUS[1]}


async def test_the_corpus_through_every_pane_and_screen() -> None:
    source = HostileSource()
    hostile_state(source)
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        source.push(*[{"type": "log", "time": NOW, "level": "WARNING", "logger": name,
                       "message": name} for name in CORPUS])  # fmt: skip
        source.push({"type": "deployment_changed", "deployment": CORPUS[0], "health": "failing",
                     "reason": CORPUS[2]})  # fmt: skip
        app.refresh_data()
        await pilot.pause()
        seen = assert_harmless(app.export_screenshot())
        for key in ["1", "2", "3", "4", "5"]:  # each pane zoomed
            await pilot.press(key)
            seen += assert_harmless(app.export_screenshot())
            await pilot.press(key)
        await pilot.press("4")
        for keys in (["b"], ["b", "a"], ["a", "b"]):  # by group; by client today, all time
            await pilot.press(*keys)
            seen += assert_harmless(app.export_screenshot())
        await pilot.press("4")
        for shown in ESCAPED:  # every string was drawn somewhere, as sent, escaped
            assert shown in seen, shown
        assert "ok" + "m" * 20 in seen

        details = ""
        await pilot.press("2", "g")  # zoomed, paused at the top
        table = app.query_one("#requests-table", DataTable)
        for i in (0, 1, 2, 6):  # markup that breaks, a link, an escape sequence, a megabyte
            table.move_cursor(row=3 + i)  # after the first three
            await pilot.press("enter")
            assert isinstance(app.screen, RequestDetailScreen)
            assert app.screen.request["id"] == f"{CORPUS[i]}#{i}"
            await pilot.pause()
            details += assert_harmless(app.export_screenshot())
            await pilot.press("escape")
        await pilot.press("2")
        for shown in ESCAPED[:2]:  # the detail shows the id, group, client and error whole
            assert f"Group       {shown}" in details and f"Client      {shown}" in details

        await pilot.press("1", "g", "enter")  # the hostile key sorts first: it is failing
        assert isinstance(app.screen, KeyDetailScreen)
        summary = str(app.screen.query_one("#key-summary", Static).content)
        assert "Group       [link=http://x]y[/link]" in summary
        assert "Why         \\x1b]0;TITLE\\x07\n" in summary  # the newest health event's
        assert "Base URL    \\u202eevil\\u2066" in summary and "\\x1b]0;TITLE\\x07ok" in summary
        assert not RAW.search(summary) and len(summary) < 10_000
        await pilot.pause()
        assert_harmless(app.export_screenshot())
        await pilot.press("p")  # a probe of it: the notification is plain too
        await app.workers.wait_for_complete()
        notes = [str(n.message) for n in app._notifications]
        assert any("\\x1b]0;TITLE\\x07[link=http://x]y[/link]" in n for n in notes), notes
        assert not any(RAW.search(n) for n in notes)
        await pilot.press("escape")
        assert app.return_code is None  # still running: nothing crashed it

        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert_harmless(app.export_screenshot())


def hostile_config(tmp_path) -> dict[str, Any]:
    """The mock config plus a wildcard group: any model name under `wild/` is served (and
    stored) as the client wrote it."""
    config = mock_config(tmp_path)
    config["model_list"].append(
        {"model_name": "wild/*", "litellm_params": {"model": "mock/*", "mock_response": "ok"},
         "model_info": {"id": "wild-1"}}
    )  # fmt: skip
    return config


async def send_corpus(base: str) -> list[str]:
    """Sends each name as a model (served by the wildcard, and unknown), a session and a
    User-Agent. Returns: the names the proxy served (and so stored)."""
    served = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i, name in enumerate(CORPUS):
            header = name.replace("\n", " ").replace("\x1b", "").replace("\x07", "")
            headers = {"x-session-id": header[:200].encode(), "user-agent": header[:200].encode()}
            body = {"model": f"wild/{name}", "messages": [{"role": "user", "content": "hi"}]}
            door = "/v1/messages" if i % 2 else "/v1/chat/completions"
            if door == "/v1/messages":
                body["max_tokens"] = 20
            response = await client.post(door, json=body, headers=headers)
            assert response.status_code < 500, response.text[:200]
            if response.status_code == 200:
                served.append(name)
            unknown = await client.post(door, json={**body, "model": name}, headers=headers)
            assert 400 <= unknown.status_code < 500, unknown.text[:200]
    return served


async def test_stored_hostile_names_are_harmless_after_a_restart(tmp_path) -> None:
    first = local_app(hostile_config(tmp_path), tmp_path)
    async with running(first) as pilot:
        await asyncio.to_thread(first.server.started.wait, 10)
        served = await send_corpus(f"http://127.0.0.1:{first.server.port}")
        assert set(CORPUS[:6]) <= set(served)  # the proxy may refuse a megabyte of name
        await first.source.refresh()
        first.refresh_data()
        await pilot.pause()
        assert_harmless(first.export_screenshot())
        await pilot.press("q", "y")  # stops the proxy: every usage row is written

    second = local_app(hostile_config(tmp_path), tmp_path)  # the store replays those rows
    async with running(second) as pilot:
        await asyncio.to_thread(second.server.started.wait, 10)
        await second.source.refresh()
        second.refresh_data()
        await pilot.pause()
        usage = second.source.snapshot()["usage"]
        assert {f"wild/{name}" for name in CORPUS[:6]} <= {g["group"] for g in usage["by_group"]}
        seen = assert_harmless(second.export_screenshot())
        await pilot.press("4")
        for _grouping in ("group", "client", "deployment"):
            await pilot.press("b")
            seen += assert_harmless(second.export_screenshot())
        for shown in ESCAPED:
            assert f"wild/{shown}"[:20] in seen, shown
        assert second.return_code is None
        await pilot.press("q", "y")
    assert second.return_code == 0
