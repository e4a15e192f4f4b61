"""Stopping the proxy (what SIGTERM does) while streams run longer than the drain allows: each
open request is ended with a clean error in its client's format before the drain runs out (a
stream's error event, a whole answer's 503), and each is a usage row once the proxy has exited."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config.loader import build_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.e2e.test_upstream_bounds import assert_ends_in_error, events
from tests.fakes.upstream import FakeUpstream, hang, stream_stall

PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
STREAMS = [("chat", "gpt"), ("messages", "claude"), ("responses", "gpt"), ("responses", "claude")]
GRACE = 2


@pytest.fixture
def proxy(fake: FakeUpstream, tmp_path: Path) -> Iterator[Proxy]:
    deps = [
        anthropic_deployment("claude", fake, "sk-ant-drain-aaaa", id="claude-a",
                             model="claude-sonnet-4-20250514"),
        openai_deployment("gpt", fake, "sk-oai-drain-oooo", id="gpt-o", model="openai/gpt-4o"),
    ]  # fmt: skip
    doc = {"model_list": deps, "general_settings": {"master_key": MASTER_KEY}}
    runtime = Runtime(build_config(doc, path=tmp_path / "config.yaml"), usage_db=tmp_path / "u.db")
    server = ProxyServer(runtime, "127.0.0.1", 0, grace=GRACE)
    thread = threading.Thread(target=server.run, name="proxy", daemon=True)
    thread.start()
    assert server.started.wait(15) and not server.bind_error
    url = f"http://127.0.0.1:{server.port}"
    running = Proxy(server, runtime, thread, url, MASTER_KEY, tmp_path / "u.db")
    yield running
    running.stop()


def body(door: str, group: str, stream: bool) -> dict[str, Any]:
    if door == "responses":
        return {"model": group, "input": "tell me a story", "stream": stream}
    messages = [{"role": "user", "content": "tell me a story"}]
    return {"model": group, "max_tokens": 99, "messages": messages, "stream": stream}


def open_stream(proxy: Proxy, door: str, group: str, started: threading.Event) -> str:
    """Streams one request; sets `started` once its first text arrived; returns all it got."""
    headers = {**proxy.headers, "x-request-id": f"drain-{door}-{group}"}
    with (
        httpx.Client(base_url=proxy.url, headers=headers, timeout=20) as c,
        c.stream("POST", PATHS[door], json=body(door, group, True)) as r,
    ):
        assert r.status_code == 200
        got = ""
        for text in r.iter_text():
            got += text
            if "Hello!" in got:
                started.set()
        return got


def test_stopping_ends_open_streams_with_an_error_event_and_a_row(
    proxy: Proxy, fake: FakeUpstream
) -> None:
    fake.set_default(stream_stall(after=2))  # streams that would run for an hour
    fake.script(hang(), key="sk-oai-drain-oooo")  # and one whole answer that never comes
    with ThreadPoolExecutor(len(STREAMS) + 1) as pool:
        whole_headers = {**proxy.headers, "x-request-id": "drain-whole"}
        whole = pool.submit(
            httpx.post, proxy.url + PATHS["chat"], json=body("chat", "gpt", False),
            headers=whole_headers, timeout=20,
        )  # fmt: skip
        fake.wait_requests(1)  # it took the hang: the streams get the stalls
        flags = [threading.Event() for _ in STREAMS]
        runs: list[Future[str]] = [
            pool.submit(open_stream, proxy, door, group, flag)
            for (door, group), flag in zip(STREAMS, flags, strict=True)
        ]
        assert all(flag.wait(10) for flag in flags)
        proxy.server.stop()  # what SIGTERM does: drain, then end what is left
        for (door, _group), run in zip(STREAMS, runs, strict=True):
            message = assert_ends_in_error(door, events(run.result(timeout=20)))
            assert "shutting down" in message
        answer = whole.result(timeout=20)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "shutting_down"
    proxy.thread.join(20)
    assert not proxy.thread.is_alive()
    assert proxy.usage_db is not None
    with sqlite3.connect(proxy.usage_db) as db:
        rows = dict(db.execute("SELECT id, status FROM requests WHERE id LIKE 'drain-%'"))
    expected = {f"drain-{door}-{group}": 503 for door, group in STREAMS}
    assert rows == {**expected, "drain-whole": 503}
