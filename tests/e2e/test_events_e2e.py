"""Live events through the real proxy: `/llmproxy/events` (snapshot, ordered batches, heartbeat),
`/llmproxy/state`, the master key on both, no key anywhere, and a stalled subscriber that loses
events (counted) without slowing or failing requests."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from proxy.events import LogRecord
from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import reply

KEY = "sk-upstream-events-3333dddd"
BAD_KEY = "sk-upstream-revoked-4444eeee"
MSG = [{"role": "user", "content": "tell me"}]


def config(fake: Any) -> dict[str, Any]:
    return {
        "model_list": [
            openai_deployment("gpt-4", fake, KEY, id="gpt4-a"),
            openai_deployment("bad", fake, BAD_KEY, id="bad-a"),
        ],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"cache": True},
    }


class SSE:
    """A blocking reader of `event:` / `data:` pairs from a streamed httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.raw: list[str] = []
        self._lines: Iterator[str] = response.iter_lines()

    def next(self) -> tuple[str, Any]:
        event, data = "", ""
        for line in self._lines:
            self.raw.append(line)
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and event:
                return event, orjson.loads(data)
        raise EOFError("the event stream ended")

    def until(self, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Collects event dicts from `events` batches until done(collected) is true."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not done(got):
            assert time.monotonic() < deadline, got
            kind, data = self.next()
            if kind == "events":
                got.extend(data)
        return got


def finished(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "request_finished"]


def test_subscriber_sees_snapshot_then_events_in_order(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    fake.set_default(reply("hello", usage={"prompt_tokens": 100, "completion_tokens": 50}))
    fake.rejected_keys.add(BAD_KEY)
    timeout = httpx.Timeout(30, read=15)
    with proxy.client() as c, c.stream("GET", "/llmproxy/events", timeout=timeout) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        sse = SSE(stream)
        kind, snapshot = sse.next()
        assert kind == "snapshot"
        assert {d["id"] for d in snapshot["deployments"]} == {"gpt4-a", "bad-a"}
        ids = []
        for i in range(6):
            body = {"model": "gpt-4", "messages": MSG, "seed": i % 3}
            r = c.post("/v1/chat/completions", json=body, headers={"x-request-id": f"r{i}"})
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
        events = sse.until(lambda got: len(finished(got)) == 6)
        lifecycle = [(e["type"], e["id"]) for e in events if e["type"].startswith("request_")]
        expected = [(t, rid) for rid in ids for t in ("request_started", "request_finished")]
        assert lifecycle == expected
        done = finished(events)
        assert [e["cache"] for e in done] == ["miss"] * 3 + ["hit"] * 3
        assert all(e["deployment"] == "gpt4-a" for e in done)
        hit = done[3]
        assert hit["cost"] == 0
        assert hit["cost_saved"] == done[0]["cost"] > 0
        # A rejected key changes the deployment's health.
        r = c.post("/v1/chat/completions", json={"model": "bad", "messages": MSG})
        assert r.status_code >= 400
        events = sse.until(lambda got: any(e["type"] == "deployment_changed" for e in got))
        change = next(e for e in events if e["type"] == "deployment_changed")
        assert (change["deployment"], change["health"]) == ("bad-a", "key_rejected")
        # Cleared cache, then the heartbeat when idle.
        c.post("/llmproxy/actions", json={"action": "clear_cache"})
        events = sse.until(lambda got: any(e["type"] == "cache_cleared" for e in got))
        assert next(e for e in events if e["type"] == "cache_cleared")["entries"] == 3
        kind, beat = sse.next()
        assert kind == "heartbeat"
        assert beat["time"] > 0
        everything = "\n".join(sse.raw)
    assert KEY not in everything
    assert BAD_KEY not in everything
    assert MASTER_KEY not in everything


def test_usage_store_state_reaches_subscribers(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    body = {"model": "gpt-4", "messages": MSG}
    timeout = httpx.Timeout(30, read=15)
    with proxy.client() as c, c.stream("GET", "/llmproxy/events", timeout=timeout) as stream:
        sse = SSE(stream)
        assert sse.next()[0] == "snapshot"
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        assert proxy.runtime.ledger.flush(10)
        lock = sqlite3.connect(str(proxy.usage_db), isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            assert c.post(
                "/v1/chat/completions", json=body, headers={"cache-control": "no-cache"}
            ).is_success
            events = sse.until(lambda got: any(e["type"] == "usage_store" for e in got))
            change = next(e for e in events if e["type"] == "usage_store")
            assert change["ok"] is False
            assert "locked" in change["error"]
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        events = sse.until(lambda got: any(e["type"] == "usage_store" for e in got))
        assert next(e for e in events if e["type"] == "usage_store")["ok"] is True


def test_admin_routes_need_the_master_key(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    with httpx.Client(base_url=proxy.url, timeout=10) as anon:
        for path in ("/llmproxy/state", "/llmproxy/events", "/metrics"):
            denied = anon.get(path)
            assert denied.status_code == 401, path
            assert denied.json()["error"]["type"]
            wrong = anon.get(path, headers={"authorization": "Bearer sk-wrong"})
            assert wrong.status_code == 401, path
        assert anon.get("/llmproxy/state", headers={"x-api-key": MASTER_KEY}).status_code == 200


def test_state_carries_ids_never_keys(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    fake.rejected_keys.add(BAD_KEY)
    with proxy.client() as c:
        c.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MSG})
        c.post("/v1/chat/completions", json={"model": "bad", "messages": MSG})
        text = c.get("/llmproxy/state").text
    state = orjson.loads(text)
    assert KEY not in text and BAD_KEY not in text and MASTER_KEY not in text
    keys = {d["id"]: d["key"] for d in state["deployments"]}
    assert keys == {"gpt4-a": "…dddd", "bad-a": "…eeee"}
    assert [r["deployment"] for r in state["recent"]] == ["gpt4-a", "bad-a"]


def _stalled_subscriber(url: str) -> socket.socket:
    """Opens /llmproxy/events and never reads (a tiny receive window, so it stalls fast)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /llmproxy/events HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {MASTER_KEY}\r\n\r\n".encode()
    )
    return sock


def test_stalled_subscriber_loses_events_not_requests(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    sock = _stalled_subscriber(proxy.url)
    try:
        deadline = time.monotonic() + 10
        while proxy.runtime.bus.subscribers < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with proxy.client() as c:
            for i in range(200):
                body = {"model": "gpt-4", "messages": MSG, "seed": i}
                assert c.post("/v1/chat/completions", json=body).status_code == 200
        # Past its bounded queue the subscriber loses events, counted; publish never blocks.
        for i in range(12_000):
            proxy.runtime.bus.publish(LogRecord(time.time(), "INFO", "test", f"line {i}"))
        with proxy.client() as c:
            assert c.post(
                "/v1/chat/completions", json={"model": "gpt-4", "messages": MSG}
            ).is_success
            dropped = proxy.state()["server"]["events_dropped"]
            metrics = c.get("/metrics").text
    finally:
        sock.close()
    assert dropped > 0
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert families["llmproxy_events_dropped"].samples[0].value >= dropped
    deadline = time.monotonic() + 10
    while proxy.runtime.bus.subscribers:  # the server notices the closed connection
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proxy.state()["server"]["events_dropped"] >= dropped  # never goes back down
