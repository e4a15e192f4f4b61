"""An upstream that misbehaves mid-stream or sends too much ends each request in a clean,
bounded error in the client's own format: a stream that never ends, a body of hundreds of MB,
an SSE line of many MB, garbage, an error event mid-stream. Nothing hangs or grows unbounded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes import anthropic_wire, openai_wire
from tests.fakes.exchange import Exchange
from tests.fakes.upstream import FakeUpstream, raw, reply, stream_stall

PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
CASES = [("chat", "gpt"), ("messages", "claude"), ("responses", "claude")]
"""Every door; an OpenAI and an Anthropic upstream, passed through and translated."""
MIB = 1024 * 1024
TIMEOUT = httpx.Timeout(30, connect=5)


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    quick = {"timeout": 5, "stream_timeout": 1}
    deps = [
        anthropic_deployment("claude", fake, "sk-ant-bounds-aaaa", id="claude-a",
                             model="claude-sonnet-4-20250514", **quick),
        openai_deployment("gpt", fake, "sk-oai-bounds-oooo", id="gpt-o", model="openai/gpt-4o",
                          **quick),
    ]  # fmt: skip
    return start_proxy({"model_list": deps, "router_settings": {"num_retries": 0}},
                       master_key=MASTER_KEY)  # fmt: skip


def first_events(group: str) -> tuple[bytes, ...]:
    """The upstream's opening events, up to and including its first text."""
    body = {"model": "m", "stream": True, "max_tokens": 9,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    if group == "claude":
        answer = anthropic_wire.render(reply("Hi there"), Exchange("/v1/messages", body, "k", 1))
        assert answer.events is not None
        return tuple(answer.events[:4])  # message_start, content_block_start, ping, a delta
    answer = openai_wire.render(reply("Hi there"), Exchange("/v1/chat/completions", body, "k", 1))
    assert answer.events is not None
    return tuple(answer.events[:2])  # the role chunk, a content chunk


def error_event(group: str) -> bytes:
    if group == "claude":
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n"
    err = {"error": {"message": "The server had an error", "type": "server_error"}}
    return b"data: " + json.dumps(err).encode() + b"\n\n"


def events(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "")
        data = "".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
        if data:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def stream(proxy: Proxy, door: str, group: str, rid: str) -> list[tuple[str, Any]]:
    if door == "responses":
        doc: dict[str, Any] = {"model": group, "input": "hi", "stream": True}
    else:
        doc = {"model": group, "max_tokens": 9, "stream": True,
               "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    headers = {**proxy.headers, "x-request-id": rid}
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=TIMEOUT) as c:
        response = c.post(PATHS[door], json=doc)
    assert response.status_code == 200, response.text[:500]
    assert "sk-ant-bounds" not in response.text and "sk-oai-bounds" not in response.text
    return events(response.text)


def assert_ends_in_error(door: str, got: list[tuple[str, Any]]) -> str:
    """Asserts the stream began, then ended in the door's own error event; returns its text."""
    assert len(got) >= 2, got
    if door == "chat":
        assert got[-1][1] == "[DONE]"
        assert not any(c.get("finish_reason") for _, d in got[:-2] for c in d.get("choices", []))
        return str(got[-2][1]["error"]["message"])
    if door == "messages":
        assert got[0][0] == "message_start" and "message_stop" not in [n for n, _ in got]
        assert got[-1][0] == "error" and got[-1][1]["type"] == "error"
        return str(got[-1][1]["error"]["message"])
    kinds = [d["type"] for _, d in got]
    assert kinds[0] == "response.created" and "response.completed" not in kinds
    last = got[-1][1]
    assert last["type"] in ("response.failed", "error"), kinds
    return str(last["response"]["error"]["message"] if "response" in last else last["message"])


def row(proxy: Proxy, rid: str) -> dict[str, Any]:
    return next(r for r in proxy.state()["recent"] if r["id"] == rid)


@pytest.mark.parametrize(("door", "group"), CASES)
def test_a_stream_that_never_ends_is_bounded_by_the_stream_timeout(
    proxy: Proxy, fake: FakeUpstream, door: str, group: str
) -> None:
    fake.set_default(stream_stall(after=2))  # never a [DONE] or message_stop, never closed
    message = assert_ends_in_error(door, stream(proxy, door, group, f"endless-{door}"))
    assert "quiet" in message
    assert row(proxy, f"endless-{door}")["status"] == 504
    fake.wait_hangups(1)  # and the upstream connection was closed


@pytest.mark.parametrize(("door", "group"), CASES)
def test_garbage_and_an_error_event_mid_stream_end_in_a_clean_error(
    proxy: Proxy, fake: FakeUpstream, door: str, group: str
) -> None:
    head = first_events(group)
    fake.script(
        raw(*head, piece=b"data: {this is not json\n\n", repeat=1, pause=0.2),
        raw(*head, piece=error_event(group), repeat=1, pause=0.2),
    )
    garbled = assert_ends_in_error(door, stream(proxy, door, group, f"garbage-{door}"))
    assert "invalid" in garbled or "not JSON" in garbled
    upstream = assert_ends_in_error(door, stream(proxy, door, group, f"error-{door}"))
    assert "Overloaded" in upstream or "server had an error" in upstream
    assert row(proxy, f"garbage-{door}")["status"] == 502


@pytest.mark.parametrize(("door", "group"), CASES)
def test_a_line_of_many_megabytes_is_refused_mid_stream(
    proxy: Proxy, fake: FakeUpstream, door: str, group: str
) -> None:
    fake.set_default(raw(*first_events(group), b"data: ", piece=b"x" * MIB, repeat=12, pause=0.2))
    message = assert_ends_in_error(door, stream(proxy, door, group, f"line-{door}"))
    assert "longer than 8 MiB" in message
    assert row(proxy, f"line-{door}")["status"] == 502


def test_a_stream_of_hundreds_of_megabytes_is_cut_at_the_bound(
    fake: FakeUpstream, start_proxy: Callable[..., Proxy]
) -> None:
    deps = [openai_deployment("gpt", fake, "sk-oai-bounds-oooo", id="gpt-o", stream_timeout=60)]
    proxy = start_proxy({"model_list": deps}, master_key=MASTER_KEY)
    padding = b": " + b"p" * MIB + b"\n\n"  # comments: no chunk, nothing for the client
    fake.set_default(raw(*first_events("gpt"), piece=padding, repeat=300, pause=0.2))
    message = assert_ends_in_error("chat", stream(proxy, "chat", "gpt", "flood"))
    assert "longer than 64 MiB" in message


@pytest.mark.parametrize("door", PATHS)
def test_a_whole_answer_of_hundreds_of_megabytes_is_a_502(
    proxy: Proxy, fake: FakeUpstream, door: str
) -> None:
    fake.set_default(raw(piece=b"x" * MIB, repeat=300, sse=False))
    group = "gpt" if door == "chat" else "claude"
    doc: dict[str, Any] = {"model": group, "input": "hi"}
    if door != "responses":
        doc = {"model": group, "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
    with proxy.client() as c:
        response = c.post(PATHS[door], json=doc)
    assert response.status_code == 502, response.text
    body = response.json()
    err = body["error"]
    assert "answer too large" in err["message"]
    if door == "messages":
        assert body["type"] == "error" and err["type"] == "api_error"


def test_a_whole_answer_without_a_length_is_cut_at_the_bound(
    proxy: Proxy, fake: FakeUpstream
) -> None:
    fake.set_default(raw(piece=b"x" * MIB, repeat=300))  # chunked: no Content-Length to refuse
    with proxy.client() as c:
        doc = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
        response = c.post(PATHS["chat"], json=doc)
    assert response.status_code == 502, response.text
    assert "answer too large" in response.json()["error"]["message"]
    assert proxy.deployment("gpt-o")["in_flight"] == 0
