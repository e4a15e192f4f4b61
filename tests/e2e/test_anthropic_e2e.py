"""Issue 4 end to end: the openai SDK, through the proxy, to the strict fake Anthropic API.

The fake answers 400 to any Messages request the real API would refuse, so every 200 here
also proves the translated request was valid.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from tests.conftest import MASTER_KEY, anthropic_deployment
from tests.fakes.upstream import DEFAULT_CONTENT, error, overloaded, rate_limit, reply

KEY_A = "sk-ant-key-aaaa"
KEY_B = "sk-ant-key-bbbb"
MODEL = "claude-sonnet-4-20250514"
HELLO = [{"role": "user", "content": "Hello there"}]
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def proxy(fake, start_proxy) -> Any:
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="ka", order=1),
        anthropic_deployment("claude", fake, KEY_B, id="kb", order=2),
    ]
    settings = {"num_retries": 2, "cooldown_time": 1}
    return start_proxy({"model_list": deps, "router_settings": settings}, master_key=MASTER_KEY)


@pytest.fixture
def client(proxy) -> Any:
    with proxy.openai() as c:
        yield c


def sent(fake: Any) -> dict[str, Any]:
    """The last Messages body the fake received."""
    return dict(fake.calls(path="/v1/messages")[-1].body)


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_plain_answer_usage_and_created(client, fake) -> None:
    before = int(time.time())
    answer = client.chat.completions.create(model="claude", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == 2
    assert answer.usage.completion_tokens == 6
    assert answer.usage.total_tokens == 8
    assert before <= answer.created <= int(time.time()) + 1
    body = sent(fake)
    assert body["model"] == MODEL
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}]}
    ]
    assert fake.requests[-1].headers["anthropic-version"]
    assert fake.requests[-1].key == KEY_A


def test_stream_text_usage_and_created(client) -> None:
    before = int(time.time())
    chunks = list(
        client.chat.completions.create(
            model="claude",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert stream_text(chunks) == DEFAULT_CONTENT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert all(before <= c.created <= int(time.time()) + 1 for c in chunks)


def test_multi_turn_and_system(client, fake) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]
    client.chat.completions.create(model="claude", messages=messages)
    body = sent(fake)
    assert "You are terse." in json.dumps(body["system"])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_images_data_url_and_http_url(client, fake) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PIXEL}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    answer = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content
    blocks = sent(fake)["messages"][0]["content"]
    sources = [b["source"] for b in blocks if b["type"] == "image"]
    assert sources[0]["type"] == "base64" and sources[0]["media_type"] == "image/png"
    assert sources[1] == {"type": "url", "url": "https://example.com/cat.jpg"}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(client, fake, stream) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "toolu_01"}
    fake.script(reply(tool_calls=[call]), reply("It is sunny in Paris."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="claude", messages=messages, tools=[WEATHER_TOOL], stream=True
            )
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        calls = [t for d in deltas for t in (d.tool_calls or [])]
        assert calls[0].id == "toolu_01" and calls[0].function.name == "get_weather"
        arguments = "".join(t.function.arguments or "" for t in calls)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        tool_id = calls[0].id
    else:
        answer = client.chat.completions.create(
            model="claude", messages=messages, tools=[WEATHER_TOOL]
        )
        tool_call = answer.choices[0].message.tool_calls[0]
        arguments, finish, tool_id = (
            tool_call.function.arguments,
            answer.choices[0].finish_reason,
            tool_call.id,
        )
    assert finish == "tool_calls"
    assert json.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tool_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": tool_id, "content": "sunny, 24 C"},
    ]
    final = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "It is sunny in Paris."
    body = sent(fake)
    assert body["messages"][1]["content"][-1]["type"] == "tool_use"
    result = body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_01"


@pytest.mark.parametrize(
    ("finish", "expected"), [("length", "length"), ("stop", "stop"), ("max_tokens", "length")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_stop_reasons(client, fake, finish, expected, stream) -> None:
    fake.script(reply("cut short", finish_reason=finish))
    if stream:
        chunks = list(client.chat.completions.create(model="claude", messages=HELLO, stream=True))
        got = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        got = (
            client.chat.completions.create(model="claude", messages=HELLO).choices[0].finish_reason
        )
    assert got == expected


@pytest.mark.parametrize("failure", [rate_limit(1), overloaded()])
@pytest.mark.parametrize("stream", [False, True])
def test_429_and_529_are_retried_on_the_other_key(client, proxy, fake, failure, stream) -> None:
    fake.script(failure, key=KEY_A)
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, stream=stream
    )
    parsed = raw.parse()
    text = stream_text(list(parsed)) if stream else parsed.choices[0].message.content
    assert text == DEFAULT_CONTENT
    assert raw.headers["x-llmproxy-deployment"] == "kb"
    assert [s.key for s in fake.requests] == [KEY_A, KEY_B]
    assert proxy.deployment("ka")["health"] in ("cooling_down", "failing")


def test_400_is_passed_through_not_retried(client, fake) -> None:
    fake.script(error(400, "messages.0.content: bad thing", type="invalid_request_error"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude", messages=HELLO)
    assert "bad thing" in str(caught.value)
    assert caught.value.body["type"] == "invalid_request_error"
    assert len(fake.requests) == 1


def test_context_too_long_is_a_400_context_length_exceeded(client, fake) -> None:
    fake.script(error(400, "prompt is too long: 208310 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude", messages=HELLO)
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_api_base_with_and_without_v1(fake, start_proxy, suffix) -> None:
    deps = [anthropic_deployment("claude", fake, KEY_A, api_base=fake.url + suffix)]
    proxy = start_proxy({"model_list": deps})
    with proxy.openai() as client:
        answer = client.chat.completions.create(model="claude", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert fake.requests[-1].path == "/v1/messages"


def test_anthropic_beta_header_is_passed_through(proxy, fake) -> None:
    beta = "prompt-caching-2024-07-31,output-128k-2025-02-19"
    with proxy.openai(default_headers={"anthropic-beta": beta}) as client:
        client.chat.completions.create(model="claude", messages=HELLO)
    assert fake.requests[-1].headers["anthropic-beta"] == beta


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
VALID_REQUESTS: dict[str, dict[str, Any]] = {
    "seed_penalties_n1_user": {
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.3,
        "n": 1,
        "user": "user-123",
        "logit_bias": {"50256": -100},
        "store": False,
    },
    "sampling": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 100},
    "max_completion_tokens": {"max_completion_tokens": 64},
    "stop_str": {"stop": "END"},
    "stop_list": {"stop": ["END", "STOP"]},
    "json_object": {"response_format": {"type": "json_object"}},
    "text_format": {"response_format": {"type": "text"}},
    "json_schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        }
    },
    "tool_choice_auto": {"tools": [TOOL], "tool_choice": "auto"},
    "tool_choice_none": {"tools": [TOOL], "tool_choice": "none"},
    "tool_choice_required": {"tools": [TOOL], "tool_choice": "required"},
    "tool_choice_named": {
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    },
    "parallel_tool_calls_false": {"tools": [TOOL], "parallel_tool_calls": False},
    "reasoning_effort": {"reasoning_effort": "low", "max_completion_tokens": 4096},
    "developer_role": {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
    },
    "assistant_first": {
        "messages": [
            {"role": "assistant", "content": "How can I help?"},
            {"role": "user", "content": "Say hi"},
        ]
    },
    "consecutive_users_and_named": {
        "messages": [
            {"role": "user", "content": "One", "name": "alice"},
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
        ]
    },
    "assistant_prefill_last": {
        "messages": [
            {"role": "user", "content": "Count"},
            {"role": "assistant", "content": "1, 2,"},
        ]
    },
    "image_detail": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}},
                ],
            }
        ]
    },
    "stream_with_usage": {"stream": True, "stream_options": {"include_usage": True}},
    "metadata_and_service_tier": {"metadata": {"k": "v"}, "service_tier": "auto"},
}


def test_no_valid_openai_request_is_refused_by_anthropic(proxy, fake) -> None:
    refused = {}
    with proxy.client() as c:
        for name, extra in VALID_REQUESTS.items():
            calls = len(fake.calls(path="/v1/messages"))
            body = {"model": "claude", "messages": HELLO, **extra}
            response = c.post("/v1/chat/completions", json=body)
            reached = len(fake.calls(path="/v1/messages")) == calls + 1
            done = not body.get("stream") or response.text.rstrip().endswith("data: [DONE]")
            if response.status_code != 200 or not reached or not done:
                refused[name] = (response.status_code, response.text[:300])
    assert refused == {}
