"""A client that goes away cancels the upstream call, on every front door, streamed or not:
the fake upstream sees its connection closed, the deployment's slot is free with no cooldown,
and the request is a usage row with status 499, its estimated tokens and its cost."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.upstream import FakeUpstream, hang, stream_stall

PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
QUESTION = "Write a very long story about a lighthouse keeper and the sea " * 4
CASES = [("chat", "gpt"), ("messages", "claude"), ("responses", "gpt")]
"""Pass-through on each door (translated: `test_a_client_gone_mid_stream_cancels_the_upstream`)."""


def config(fake: FakeUpstream) -> dict[str, Any]:
    deps = [
        anthropic_deployment("claude", fake, "sk-ant-cancel-aaaa", id="claude-a",
                             model="claude-sonnet-4-20250514"),
        openai_deployment("gpt", fake, "sk-oai-cancel-oooo", id="gpt-o", model="openai/gpt-4o"),
    ]  # fmt: skip
    for dep in deps:
        dep["model_info"].update(PRICES)
    return {"model_list": deps, "router_settings": {"num_retries": 2}}


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    return start_proxy(config(fake), master_key=MASTER_KEY)


def body(door: str, group: str, stream: bool) -> bytes:
    if door == "responses":
        doc: dict[str, Any] = {"model": group, "input": QUESTION, "max_output_tokens": 64}
    else:
        doc = {
            "model": group,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": QUESTION}],
        }
    return orjson.dumps({**doc, "stream": stream})


def send_request(proxy: Proxy, door: str, group: str, stream: bool, rid: str) -> socket.socket:
    """Sends the request on a raw socket (so the test decides exactly when it goes away)."""
    raw = body(door, group, stream)
    head = (
        f"POST {PATHS[door]} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {MASTER_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        f"x-request-id: {rid}\r\ncontent-length: {len(raw)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10)
    sock.sendall(head.encode() + raw)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        data = sock.recv(65536)
        assert data, f"the proxy closed before {marker!r}: {seen[-300:]!r}"
        seen += data
    return seen


def row(proxy: Proxy, rid: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((r for r in proxy.state()["recent"] if r["id"] == rid), None)
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no usage row for {rid}")


def assert_cancelled(proxy: Proxy, fake: FakeUpstream, rid: str, dep_id: str) -> dict[str, Any]:
    fake.wait_hangups(1, timeout=5)  # the proxy closed its upstream connection
    found = row(proxy, rid)
    assert found["status"] == 499, found
    assert found["deployment"] == dep_id
    assert found["prompt_tokens"] > 0 and found["cost"] is not None and found["cost"] > 0
    assert len(fake.requests) == 1  # a cancellation is not retried elsewhere
    dep = proxy.deployment(dep_id)
    assert (dep["in_flight"], dep["health"]) == (0, "ok"), dep  # slot free, no cooldown
    return found


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("door", "group"), CASES)
def test_a_client_gone_before_the_answer_cancels_the_upstream(
    proxy: Proxy, fake: FakeUpstream, door: str, group: str, stream: bool
) -> None:
    fake.set_default(hang())  # the upstream never answers: only the client leaving ends it
    rid = f"gone-early-{door}-{group}-{stream}"
    sock = send_request(proxy, door, group, stream, rid)
    fake.wait_requests(1)
    sock.close()
    found = assert_cancelled(proxy, fake, rid, "claude-a" if group == "claude" else "gpt-o")
    assert found["completion_tokens"] == 0 and found["tokens_estimated"]


@pytest.mark.parametrize(("door", "group"), [*CASES, ("messages", "gpt"), ("chat", "claude")])
def test_a_client_gone_mid_stream_cancels_the_upstream(
    proxy: Proxy, fake: FakeUpstream, door: str, group: str
) -> None:
    fake.set_default(stream_stall(after=2))  # two text pieces, then silence, never an end
    rid = f"gone-mid-{door}-{group}"
    sock = send_request(proxy, door, group, True, rid)
    read_until(sock, b"Hello!")
    sock.close()
    found = assert_cancelled(proxy, fake, rid, "claude-a" if group == "claude" else "gpt-o")
    assert found["completion_tokens"] > 0  # what was streamed is counted


def test_the_proxy_serves_on_after_many_cancellations(proxy: Proxy, fake: FakeUpstream) -> None:
    fake.set_default(hang())
    socks = [send_request(proxy, "chat", "gpt", i % 2 == 0, f"many-{i}") for i in range(20)]
    fake.wait_requests(20)
    for sock in socks:
        sock.close()
    fake.wait_hangups(20, timeout=10)
    fake.reset()
    with proxy.client() as c:
        doc = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
        assert c.post(PATHS["chat"], json=doc).status_code == 200
    recent = proxy.state()["recent"]
    assert sorted(r["id"] for r in recent if r["status"] == 499) == sorted(
        f"many-{i}" for i in range(20)
    )
    assert proxy.deployment("gpt-o")["in_flight"] == 0
