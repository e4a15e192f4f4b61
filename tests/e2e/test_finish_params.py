"""A finished request's finish reason and client parameters, through the real proxy and the fake
upstream: OpenAI chat (stream and not), an Anthropic upstream translated, Messages and Responses
passed through (lean, and with a cache), a cache hit; on `/llmproxy/state` and the events SSE."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import MASTER_KEY, anthropic_deployment, openai_deployment
from tests.e2e.test_events_e2e import SSE
from tests.fakes.upstream import FakeUpstream, Raw, reply

KEY_O = "sk-upstream-finish-openai-01"
KEY_A = "sk-ant-upstream-finish-0001"
KEY_R = "sk-upstream-finish-responses-1"
MSG = [{"role": "user", "content": "hi"}]
TOOL = {"name": "get_weather", "arguments": {"city": "Oslo"}}
CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
MESSAGES_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
LONG = "word " * 120  # past the 200 characters a lean stream decodes for its preview
CACHE = {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}}


def config(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    deps = [
        openai_deployment("gpt", fake, KEY_O, id="gpt-1"),
        anthropic_deployment("claude", fake, KEY_A, id="claude-1"),
        openai_deployment("resp", fake, KEY_R, model="openai/gpt-5", id="resp-1"),
    ]
    return {"model_list": deps, "router_settings": {"num_retries": 0}, **extra}


@pytest.fixture
def proxy(fake, start_proxy):
    return start_proxy(config(fake), master_key=MASTER_KEY)


def post(proxy: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    with proxy.client() as c:
        answer = c.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer


def row_of(proxy: Any, answer: httpx.Response) -> dict[str, Any]:
    """The finished request of `answer` in the state document (a stream's lands just after)."""
    rid = answer.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        for row in proxy.state()["recent"]:
            if row["id"] == rid:
                return row
        assert time.monotonic() < deadline, f"{rid} never reached recent"
        time.sleep(0.02)


def chat(proxy: Any, stream: bool, **body: Any) -> dict[str, Any]:
    body = {"model": "gpt", "messages": MSG, "stream": stream, **body}
    answer = post(proxy, "/v1/chat/completions", body)
    return row_of(proxy, answer)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("step", "finish"),
    [
        (reply("done"), "stop"),
        (reply(LONG, finish_reason="length"), "length"),
        (reply(tool_calls=[TOOL]), "tool_calls"),
    ],
    ids=["stop", "length", "tool_calls"],
)
def test_openai_chat_finish(fake, proxy, stream, step, finish) -> None:
    fake.script(step)
    row = chat(proxy, stream, tools=CHAT_TOOLS)
    assert (row["status"], row["finish"]) == (200, finish)


def test_a_lean_chat_stream_reads_a_spaced_finish_past_the_preview(fake, proxy) -> None:
    def event(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        doc = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "choices": [choice]}
        return b"data: " + orjson.dumps(doc).replace(b'":', b'": ') + b"\n\n"

    head = tuple(event({"content": "x" * 50}, None) for _ in range(6))
    fake.script(Raw(head=(*head, event({}, "length"), b"data: [DONE]\n\n")))
    assert chat(proxy, True)["finish"] == "length"


@pytest.mark.parametrize(
    ("step", "finish"),
    [(reply(LONG, finish_reason="length"), "length"), (reply(tool_calls=[TOOL]), "tool_calls")],
    ids=["length", "tool_calls"],
)
def test_anthropic_upstream_translated_stream_finish(fake, proxy, step, finish) -> None:
    fake.script(step)
    body = {"model": "claude", "messages": MSG, "stream": True, "tools": CHAT_TOOLS}
    answer = post(proxy, "/v1/chat/completions", body)
    row = row_of(proxy, answer)
    assert (row["provider"], row["status"], row["finish"]) == ("anthropic", 200, finish)


@pytest.mark.parametrize("cache", [False, True], ids=["lean", "cached"])
@pytest.mark.parametrize(
    ("step", "finish"),
    [
        (reply("done"), "stop"),
        (reply(LONG, finish_reason="length"), "length"),
        (reply(tool_calls=[TOOL]), "tool_calls"),
    ],
    ids=["stop", "length", "tool_calls"],
)
def test_messages_pass_through_stream_finish(fake, start_proxy, cache, step, finish) -> None:
    proxy = start_proxy(config(fake, **(CACHE if cache else {})), master_key=MASTER_KEY)
    fake.script(step)
    body = {"model": "claude", "max_tokens": 64, "messages": MSG, "stream": True,
            "tools": MESSAGES_TOOLS}  # fmt: skip
    answer = post(proxy, "/v1/messages", body)
    assert "event: message_stop" in answer.text
    row = row_of(proxy, answer)
    assert (row["front_door"], row["status"], row["finish"]) == ("messages", 200, finish)


@pytest.mark.parametrize("cache", [False, True], ids=["lean", "cached"])
@pytest.mark.parametrize(
    ("step", "finish"),
    [
        (reply("done"), "stop"),
        (reply(LONG, finish_reason="length"), "length"),
        (reply(tool_calls=[TOOL]), "tool_calls"),
    ],
    ids=["stop", "length", "tool_calls"],
)
def test_responses_pass_through_stream_finish(fake, start_proxy, cache, step, finish) -> None:
    proxy = start_proxy(config(fake, **(CACHE if cache else {})), master_key=MASTER_KEY)
    fake.script(step)
    body = {"model": "resp", "input": "hi", "stream": True, "tools": RESPONSES_TOOLS}
    answer = post(proxy, "/v1/responses", body)
    assert "response." in answer.text
    row = row_of(proxy, answer)
    assert (row["front_door"], row["status"], row["finish"]) == ("responses", 200, finish)
    assert fake.requests[-1].path == "/v1/responses"  # passed through, not translated


@pytest.mark.parametrize("stream", [False, True])
def test_a_cache_hit_keeps_the_finish_reason(fake, start_proxy, stream) -> None:
    proxy = start_proxy(config(fake, **CACHE), master_key=MASTER_KEY)
    fake.script(reply(LONG, finish_reason="length"))
    first, second = (chat(proxy, stream, max_tokens=20) for _ in range(2))
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    assert first["finish"] == second["finish"] == "length"


def test_params_from_a_chat_body(fake, proxy) -> None:
    fake.script(reply("done"))
    row = chat(
        proxy,
        True,
        temperature=0.2,
        top_p=0.9,
        max_tokens=4096,
        stop=["END", "STOP"],
        seed=7,
        n=1,
        tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        reasoning_effort="low",
        parallel_tool_calls=False,
        user="someone",
    )
    assert row["params"] == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 4096, "seed": 7, "n": 1,
        "reasoning_effort": "low", "parallel_tool_calls": False, "stream": True, "stop": 2,
        "tools": 2, "tool_choice": "function:get_weather", "response_format": "json_schema",
    }  # fmt: skip
    assert MSG[0]["content"] not in orjson.dumps(row["params"]).decode()


def test_params_from_a_messages_body(fake, proxy) -> None:
    fake.script(reply("done"))
    body = {
        "model": "claude", "max_tokens": 4096, "messages": MSG, "stream": True, "top_k": 40,
        "stop_sequences": ["\n\nHuman:"], "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": MESSAGES_TOOLS,
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "metadata": {"user_id": "u-1"},
    }  # fmt: skip
    row = row_of(proxy, post(proxy, "/v1/messages", body))
    assert row["params"] == {
        "top_k": 40, "max_tokens": 4096, "stream": True, "stop_sequences": 1, "tools": 1,
        "tool_choice": "tool:get_weather", "thinking": "enabled", "thinking.budget_tokens": 2048,
    }  # fmt: skip


def test_params_from_a_responses_body_cut_small(fake, proxy) -> None:
    fake.script(reply("done"))
    body = {
        "model": "resp", "input": "hi", "max_output_tokens": 300,
        "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_object"}}, "tools": RESPONSES_TOOLS,
        "tool_choice": {"type": "function", "name": "x" * 500},
    }  # fmt: skip
    row = row_of(proxy, post(proxy, "/v1/responses", body))
    assert row["params"] == {
        "max_output_tokens": 300, "tools": 1, "tool_choice": "function:" + "x" * 31,
        "text.format": "json_object", "reasoning.effort": "high",
    }  # fmt: skip
    assert row["finish"] == "stop"


def test_the_events_stream_carries_finish_and_params(fake, proxy) -> None:
    fake.script(reply(tool_calls=[TOOL]))
    timeout = httpx.Timeout(30, read=15)
    with proxy.client() as c, c.stream("GET", "/llmproxy/events", timeout=timeout) as stream:
        sse = SSE(stream)
        assert sse.next()[0] == "snapshot"
        chat(proxy, False, temperature=0.5, tools=CHAT_TOOLS)
        got = sse.until(lambda evs: any(e["type"] == "request_finished" for e in evs))
    (ev,) = [e for e in got if e["type"] == "request_finished"]
    assert ev["finish"] == "tool_calls"
    assert ev["params"] == {"temperature": 0.5, "stream": False, "tools": 2}


def test_a_failed_request_has_no_finish(fake, proxy) -> None:
    fake.rejected_keys.add(KEY_O)
    with proxy.client() as c:
        answer = c.post("/v1/chat/completions", json={"model": "gpt", "messages": MSG})
    assert answer.status_code >= 400
    row = row_of(proxy, answer)
    assert row["finish"] is None and row["params"] == {}
