"""The request detail's Bodies section against a real in-process proxy (a Messages request
translated to the fake OpenAI upstream): the three bodies side by side, plain text, no key;
"not stored" while storing is off, and B turning it on for the running proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from textual.widgets import DataTable, Static

from tests.fakes.upstream import FakeUpstream, reply
from tests.tui.conftest import local_app, running
from tui.launch import LocalDashboardApp
from tui.panes.request_log import RequestLogPane
from tui.screens.request_detail import NOT_STORED, RequestDetailScreen
from tui.source import LocalSource

UPSTREAM_KEY = "sk-fake-upstream-key-5e6d7c8b9a"


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def config(fake: FakeUpstream, *, store: bool) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake.openai_base,
                    "api_key": UPSTREAM_KEY,
                },
                "model_info": {"id": "oa-1"},
            }
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": {"store_prompts_in_spend_logs": store},
    }


async def started(app: LocalDashboardApp) -> str:
    await asyncio.to_thread(app.server.started.wait, 10)
    assert app.server.bind_error is None
    await app.source.refresh()
    return f"http://127.0.0.1:{app.server.port}"


async def ask(base: str) -> str:
    body = {
        "model": "claude",
        "max_tokens": 20,
        "system": "[bold]not markup[/bold]",
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
        )
    assert response.status_code == 200
    return response.headers["x-request-id"]


async def open_detail(pilot: Any, app: LocalDashboardApp, request_id: str) -> RequestDetailScreen:
    table = app.query_one("#requests-table", DataTable)
    for _ in range(100):
        app.refresh_data()
        if request_id in table.rows:
            break
        await pilot.pause(0.05)
    app.query_one(RequestLogPane).set_follow(False)
    table.focus()
    table.move_cursor(row=table.get_row_index(request_id))
    await pilot.press("enter")
    screen = app.screen
    assert isinstance(screen, RequestDetailScreen)
    return screen


async def shown(pilot: Any, screen: RequestDetailScreen, selector: str, wanted: str) -> str:
    """Waits until the widget at `selector` shows `wanted`; returns its text."""
    text = ""
    for _ in range(100):
        found = screen.query(selector)
        if found:
            text = str(getattr(found.first(Static).content, "plain", found.first(Static).content))
            if wanted in text:
                return text
        await pilot.pause(0.05)
    raise AssertionError(f"{selector} never showed {wanted!r}: {text!r}")


async def test_the_detail_shows_the_three_bodies_side_by_side(tmp_path, upstream) -> None:
    upstream.script(reply(f"the key {UPSTREAM_KEY}"))
    app = local_app(config(upstream, store=True), tmp_path)
    async with running(app, size=(160, 60)) as pilot:
        base = await started(app)
        request_id = await ask(base)
        screen = await open_detail(pilot, app, request_id)
        client = await shown(pilot, screen, "#detail-body-client", '"system"')
        upstream_text = await shown(pilot, screen, "#detail-body-upstream", '"role": "system"')
        answer = await shown(pilot, screen, "#detail-body-answer", "chat.completion")
        assert "[bold]not markup[/bold]" in client  # plain text, never markup
        assert '"max_tokens": 20' in client
        assert '"messages"' in upstream_text
        assert UPSTREAM_KEY not in answer and "…8b9a" in answer
        heading = await shown(pilot, screen, "#detail-bodies-heading", "storing on")
        assert "B turns it off" in heading
        await pilot.press("escape")


async def test_not_stored_until_b_turns_storing_on(tmp_path, upstream) -> None:
    app = local_app(config(upstream, store=False), tmp_path)
    async with running(app, size=(160, 60)) as pilot:
        base = await started(app)
        first = await ask(base)
        screen = await open_detail(pilot, app, first)
        await shown(pilot, screen, "#detail-bodies", NOT_STORED)
        await pilot.press("B")
        await shown(pilot, screen, "#detail-bodies-heading", "storing on")
        source = app.source
        assert isinstance(source, LocalSource)
        assert source.runtime.bodies_on is True
        await pilot.press("escape")
        second = await ask(base)
        screen = await open_detail(pilot, app, second)
        await shown(pilot, screen, "#detail-body-client", '"hi"')
        await pilot.press("escape")
