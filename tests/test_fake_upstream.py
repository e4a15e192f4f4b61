"""Tests of the fake upstream itself: real clients (httpx, the openai SDK) against its socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_wire import embedding_vector
from tests.fakes.recorded import (
    FIXTURES,
    fixture_json,
    fixture_lines,
    shape,
    sse_bytes,
    sse_events,
)
from tests.fakes.upstream import (
    DEFAULT_CONTENT,
    FakeUpstream,
    context_too_long,
    drop,
    error,
    hang,
    overloaded,
    rate_limit,
    reply,
    stream_cut,
    stream_error_first,
)

KEY = "sk-test-1234567890"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
CALL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
A_HEADERS = {"x-api-key": "ak-test-1", "anthropic-version": "2023-06-01"}
A_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]


@pytest.fixture
def up():
    with FakeUpstream() as server:
        yield server


def sdk(up: FakeUpstream, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.openai_base, api_key=key, max_retries=0)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}], **extra}


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    } | extra


def post_messages(
    up: FakeUpstream, body: Any, headers: dict[str, str] = A_HEADERS
) -> httpx.Response:
    with httpx.Client(base_url=up.url) as client:
        return client.post("/v1/messages", json=body, headers=headers)


# -- OpenAI -------------------------------------------------------------------------------


async def test_openai_reply_through_the_sdk(up):
    async with sdk(up) as client:
        answer = await client.chat.completions.create(**chat())
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gpt-4o-mini"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 6)
    [seen] = up.calls(key=KEY, path="/v1/chat/completions")
    assert seen.method == "POST" and seen.body["messages"][0]["content"] == "hi there"
    assert seen.headers["authorization"] == f"Bearer {KEY}"


async def test_openai_stream_parsed_by_the_sdk_with_usage(up):
    async with sdk(up) as client:
        stream = await client.chat.completions.create(
            **chat(stream=True, stream_options={"include_usage": True})
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_CONTENT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8
    assert len(chunks) == 1 + 6 + 1 + 1  # role, one per word, finish, usage


async def test_openai_stream_without_include_usage_has_no_usage_chunk(up):
    async with httpx.AsyncClient() as client:
        response = await client.post(
            up.openai_base + "/chat/completions",
            json=chat(stream=True),
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    assert all("usage" not in data for _, data in events[:-1])


async def test_openai_tool_call_stream_parsed_by_the_sdk(up):
    up.script(reply(tool_calls=[CALL]), reply(tool_calls=[CALL]))
    async with sdk(up) as client:
        stream = await client.chat.completions.create(**chat(stream=True, tools=TOOLS))
        chunks = [chunk async for chunk in stream]
        whole = await client.chat.completions.create(**chat(tools=TOOLS))
    parts = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert parts[0].id and parts[0].function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in parts)
    assert json.loads(arguments) == CALL["arguments"] and len(parts) > 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    call = whole.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == CALL["arguments"]
    assert whole.choices[0].message.content is None
    assert whole.choices[0].finish_reason == "tool_calls"


async def test_embeddings_completions_and_models_through_the_sdk(up):
    async with sdk(up) as client:
        vectors = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b c"])
        floats = await client.embeddings.create(model="m", input="a", encoding_format="float")
        text = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
        models = await client.models.list()
    for got, text_in in zip(vectors.data, ("a", "b c"), strict=True):
        assert got.embedding == pytest.approx(embedding_vector(text_in), abs=1e-5)
    assert vectors.usage.prompt_tokens == 3 and floats.data[0].embedding == embedding_vector("a")
    assert text.object == "text_completion" and text.choices[0].text == DEFAULT_CONTENT
    assert [m.id for m in models.data][:2] == ["gpt-4o-mini", "gpt-4o"]
    assert len(up.calls(path="/v1/models")) == 1


async def test_rejected_key_gets_401_in_each_vendor_shape(up):
    up.rejected_keys.add(KEY)
    up.rejected_keys.add(A_HEADERS["x-api-key"])
    async with sdk(up) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
    assert caught.value.code == "invalid_api_key" and KEY not in caught.value.message
    response = post_messages(up, anthropic_body())
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert up.calls(path="/v1/messages")[0].key == A_HEADERS["x-api-key"]


async def test_openai_error_and_light_validation(up):
    up.script(error(500, "boom", code="server_fault"))
    async with sdk(up) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**chat())
        with pytest.raises(openai.BadRequestError) as missing:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": "server_fault",
    }
    assert missing.value.code == "empty_array"
    assert len(up.requests) == 2  # the invalid request consumed no step


async def test_rate_limit_headers_seen_by_the_sdk(up):
    up.script(rate_limit(1.5, reset_headers=True), rate_limit(0.25, ms=True))
    async with sdk(up) as client:
        with pytest.raises(openai.RateLimitError) as first:
            await client.chat.completions.create(**chat())
        with pytest.raises(openai.RateLimitError) as second:
            await client.chat.completions.create(**chat())
    headers = first.value.response.headers
    assert headers["retry-after"] == "2" and headers["x-ratelimit-reset-requests"] == "1.5s"
    assert first.value.code == "rate_limit_exceeded"
    assert second.value.response.headers["retry-after-ms"] == "250"
    assert "retry-after" not in second.value.response.headers


async def test_overloaded_and_context_too_long_per_vendor(up):
    up.script(overloaded(), context_too_long(), overloaded(), context_too_long())
    async with sdk(up) as client:
        with pytest.raises(openai.InternalServerError) as busy:
            await client.chat.completions.create(**chat())
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.chat.completions.create(**chat())
    assert busy.value.status_code == 503
    assert too_long.value.code == "context_length_exceeded"
    assert too_long.value.body["message"].startswith("This model's maximum context length is")
    busy_a, long_a = post_messages(up, anthropic_body()), post_messages(up, anthropic_body())
    assert busy_a.status_code == 529 and busy_a.json()["error"]["type"] == "overloaded_error"
    assert long_a.status_code == 400
    assert long_a.json()["error"]["message"].startswith("prompt is too long: ")


async def test_drop_is_a_connection_error(up):
    up.script(drop(), drop())
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                up.openai_base + "/chat/completions",
                json=chat(),
                headers={"authorization": "Bearer k"},
            )
    async with sdk(up) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(**chat())
        answer = await client.chat.completions.create(**chat())  # queue empty: default reply
    assert answer.choices[0].message.content == DEFAULT_CONTENT


async def test_stream_cut_raises_mid_iteration(up):
    up.script(stream_cut(after=3), stream_cut(after=2))
    received: list[str] = []
    async with sdk(up) as client:
        stream = await client.chat.completions.create(**chat(stream=True))
        with pytest.raises(openai.APIConnectionError):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "Hello! ", "This ", "is "]
    async with httpx.AsyncClient() as client:
        body = anthropic_body(stream=True)
        request = client.build_request(
            "POST", up.url + "/v1/messages", json=body, headers=A_HEADERS
        )
        response = await client.send(request, stream=True)
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in response.aiter_bytes():
                pass
        await response.aclose()
    assert response.status_code == 200


async def test_stream_cut_on_a_plain_request_sends_half_a_body(up):
    up.script(stream_cut())
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                up.openai_base + "/chat/completions",
                json=chat(),
                headers={"authorization": "Bearer k"},
            )


async def test_stream_error_first_per_vendor(up):
    up.script(stream_error_first("busy now"), stream_error_first("busy", "api_error"))
    async with sdk(up) as client:
        stream = await client.chat.completions.create(**chat(stream=True))
        with pytest.raises(openai.APIError, match="busy now"):
            async for _ in stream:
                pass
    response = post_messages(up, anthropic_body(stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "busy"}})
    ]
    [(name, recorded)] = fixture_lines("anthropic/stream_error.jsonl")
    assert (name, shape(recorded)) == (events[0][0], shape(events[0][1]))


async def test_hang_ends_on_stop(up):
    up.script(hang())
    async with httpx.AsyncClient() as client:
        pending = asyncio.create_task(
            client.post(
                up.openai_base + "/chat/completions",
                json=chat(),
                headers={"authorization": "Bearer k"},
            )
        )
        await asyncio.to_thread(up.wait_requests, 1)
        up.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            await pending


async def test_hang_ends_after_its_time_and_delay_holds_the_headers(up):
    up.script(hang(0.1), reply(delay=5))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                up.openai_base + "/chat/completions",
                json=chat(),
                headers={"authorization": "Bearer k"},
            )
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                up.openai_base + "/chat/completions",
                json=chat(),
                headers={"authorization": "Bearer k"},
                timeout=0.2,
            )


async def test_script_queues_per_key_then_any_key_then_default(up):
    up.script(reply("for a"), key="a")
    up.script(reply("anyone"))
    up.set_default(reply("default"))
    seen = []
    async with httpx.AsyncClient(base_url=up.openai_base) as client:
        for key in ("b", "a", "a", "a"):
            response = await client.post(
                "/chat/completions", json=chat(), headers={"authorization": f"Bearer {key}"}
            )
            seen.append(response.json()["choices"][0]["message"]["content"])
    assert seen == ["anyone", "for a", "default", "default"]
    assert [s.key for s in up.calls(key="a")] == ["a", "a", "a"]
    up.reset()
    assert up.requests == [] and up.calls() == []


async def test_unknown_path_and_missing_key(up):
    async with httpx.AsyncClient(base_url=up.url) as client:
        missing = await client.post("/v1/nope", json={}, headers={"authorization": "Bearer k"})
        keyless = await client.post("/v1/chat/completions", json=chat())
        no_version = await client.post(
            "/v1/messages", json=anthropic_body(), headers={"x-api-key": "k"}
        )
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    assert keyless.status_code == 401 and set(keyless.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"


# -- Anthropic ----------------------------------------------------------------------------

TOOL_ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "text", "text": "and now?"},
    ]},
]  # fmt: skip


async def test_anthropic_tool_round_trip_accepted_and_answered_with_tool_use(up):
    up.script(reply(tool_calls=[CALL]), reply(tool_calls=[CALL], reasoning="Look it up"))
    body = anthropic_body(messages=TOOL_ROUND_TRIP, tools=A_TOOLS, system="Be brief.")
    whole = post_messages(up, body)
    assert whole.status_code == 200, whole.text
    message = whole.json()
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": message["content"][0]["id"],
            "name": "get_weather",
            "input": CALL["arguments"],
        }
    ]
    assert (
        message["usage"]["input_tokens"] == 2 + 6 + 3 + 3
    )  # system, user, "Let me check.", result+text
    stream = post_messages(up, body | {"stream": True})
    events = sse_events(stream.text)
    # 3 thinking words + the signature; the arguments' JSON cut in 8-character pieces
    thinking = ["content_block_start", "ping", *["content_block_delta"] * 4, "content_block_stop"]
    tool_use = ["content_block_start", *["content_block_delta"] * 5, "content_block_stop"]
    assert [name for name, _ in events] == [
        "message_start",
        *thinking,
        *tool_use,
        "message_delta",
        "message_stop",
    ]
    partial = "".join(
        d["delta"].get("partial_json", "")
        for n, d in events
        if d.get("index") == 1 and n == "content_block_delta"
    )
    assert json.loads(partial) == CALL["arguments"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_text_stream_and_usage_override(up):
    up.script(reply("two words", usage={"input_tokens": 10, "cache_read_input_tokens": 4}))
    response = post_messages(up, anthropic_body(stream=True))
    events = sse_events(response.text)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 10
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 4
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "two words" and events[-2][1]["usage"] == {"output_tokens": 2}


async def test_tool_calls_only_when_the_request_offers_tools(up):
    up.script(reply("plain", tool_calls=[CALL]))
    message = post_messages(up, anthropic_body()).json()
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "end_turn"


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


USER, ASSISTANT = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
ASKED, RESULT, TEXT = TOOL_ROUND_TRIP[:2], *TOOL_ROUND_TRIP[2]["content"]
BASE64_NO_TYPE = {"type": "image", "source": {"type": "base64", "data": "x"}}
BAD_TOOL_USE = {"type": "tool_use", "id": "t", "name": "f", "input": "x"}


def msgs(*messages: Any) -> dict[str, Any]:
    return anthropic_body(messages=list(messages))


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


BAD_BODIES = [
    (_without(anthropic_body(), "max_tokens"), "max_tokens: Field required"),
    (anthropic_body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    (_without(anthropic_body(), "model"), "model: Field required"),
    (msgs(), "messages: at least one message is required"),
    (msgs(ASSISTANT), 'first message must use the "user" role'),
    (msgs(USER, USER), "roles must alternate"),
    (msgs({"role": "system", "content": "x"}, USER), 'Unexpected role "system"'),
    (msgs({"role": "tool", "content": "x"}), "messages.0.role:"),
    (anthropic_body(n=2), "n: Extra inputs are not permitted"),
    (anthropic_body(seed=1), "seed: Extra inputs are not permitted"),
    (anthropic_body(presence_penalty=0.5), "presence_penalty: Extra inputs are not permitted"),
    (anthropic_body(stream_options={}), "stream_options: Extra inputs are not permitted"),
    (anthropic_body(response_format={}), "response_format: Extra inputs are not permitted"),
    (anthropic_body(system=[{"type": "image"}]), "system.0.type"),
    (msgs(user({"type": "image_url"})), "Input tag 'image_url'"),
    (msgs(user(BASE64_NO_TYPE)), "media_type"),
    (msgs({"role": "user", "content": ""}), "non-empty content"),
    (msgs(USER, {"role": "assistant", "content": [BAD_TOOL_USE]}), "tool_use.input"),
    (msgs(*ASKED, user(TEXT)), "without `tool_result` blocks"),
    (msgs(*ASKED, user(RESULT, RESULT | {"tool_use_id": "toolu_9"})), "unexpected `tool_use_id`"),
    (msgs(*ASKED, user(TEXT, RESULT)), "must come first"),
    (anthropic_body(tools=[{"name": "f"}]), "tools.0.input_schema: Field required"),
    (anthropic_body(tools=[{"input_schema": {}}]), "tools.0.name: Field required"),
    (anthropic_body(tools=A_TOOLS, tool_choice={"type": "required"}), "Input tag 'required'"),
    (anthropic_body(stop_sequences="END"), "stop_sequences"),
    (anthropic_body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m[:40] for _, m in BAD_BODIES])
def test_anthropic_strict_validation_rejects(up, body, message):
    response = post_messages(up, body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]


def test_anthropic_accepts_the_documented_shapes(up):
    image = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}}
    body = anthropic_body(
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]},
                  {"role": "assistant", "content": "It is"}],
        tools=A_TOOLS, tool_choice={"type": "tool", "name": "get_weather"}, stop_sequences=["END"],
        temperature=0.5, metadata={"user_id": "u1"}, stream=False,
    )  # fmt: skip
    response = post_messages(up, body)
    assert response.status_code == 200, response.text


def test_anthropic_models_shape_and_v1_suffix_base(up):
    with httpx.Client(base_url=up.anthropic_base + "/v1", headers=A_HEADERS) as client:
        models = client.get("/models")
        message = client.post("/messages", json=anthropic_body())
    assert models.json()["data"][0]["type"] == "model" and "has_more" in models.json()
    assert message.json()["content"][0]["text"] == DEFAULT_CONTENT


# -- the fake's output has the recorded shapes ------------------------------------------


def test_json_answers_match_the_recorded_shapes(up):
    oa, a_body = {"authorization": "Bearer k"}, anthropic_body(tools=A_TOOLS)
    up.script(reply(), reply(tool_calls=[CALL]), rate_limit(), context_too_long(), key="k")
    up.script(reply(), reply(tool_calls=[CALL]), overloaded(), context_too_long(), key="ak-test-1")
    requests = [
        ("POST", "/v1/chat/completions", chat(), oa, "openai/chat_completion"),
        (
            "POST",
            "/v1/chat/completions",
            chat(tools=TOOLS),
            oa,
            "openai/chat_completion_tool_calls",
        ),
        ("POST", "/v1/chat/completions", chat(), oa, "openai/error_rate_limit"),
        ("POST", "/v1/chat/completions", chat(), oa, "openai/error_context_length"),
        ("POST", "/v1/completions", {"model": "m", "prompt": "x"}, oa, "openai/completion"),
        ("POST", "/v1/embeddings", {"model": "m", "input": "x"}, oa, "openai/embeddings"),
        ("GET", "/v1/models", None, oa, "openai/models"),
        ("POST", "/v1/messages", a_body, A_HEADERS, "anthropic/message"),
        ("POST", "/v1/messages", a_body, A_HEADERS, "anthropic/message_tool_use"),
        ("POST", "/v1/messages", a_body, A_HEADERS, "anthropic/error_overloaded"),
        ("POST", "/v1/messages", a_body, A_HEADERS, "anthropic/error_prompt_too_long"),
        ("GET", "/v1/models", None, A_HEADERS, "anthropic/models"),
        ("POST", "/v1/messages", {"model": "m"}, A_HEADERS, "anthropic/error_invalid_request"),
        (
            "GET",
            "/v1/models",
            None,
            {"authorization": "Bearer bad"},
            "openai/error_invalid_api_key",
        ),
        (
            "GET",
            "/v1/models",
            None,
            A_HEADERS | {"x-api-key": "bad"},
            "anthropic/error_authentication",
        ),
    ]
    up.rejected_keys.add("bad")
    with httpx.Client(base_url=up.url) as client:
        for method, path, body, headers, name in requests:
            answer = client.request(method, path, json=body, headers=headers).json()
            recorded = fixture_json(f"{name}.json")
            if name == "anthropic/message_tool_use":
                recorded["content"] = recorded["content"][1:]  # the fake sends no text with tools
            assert shape(answer) == shape(recorded), name


STREAM_CASES = [
    ("/v1/chat/completions", chat(stream_options={"include_usage": True}), ["chat_stream"]),
    (
        "/v1/chat/completions",
        chat(tools=TOOLS, stream_options={"include_usage": True}),
        ["chat_stream", "chat_stream_tool_calls"],
    ),
    ("/v1/messages", anthropic_body(), ["stream"]),
    ("/v1/messages", anthropic_body(tools=A_TOOLS), ["stream_tool_use"]),
]


@pytest.mark.parametrize(("path", "body", "fixtures"), STREAM_CASES)
def test_stream_events_match_the_recorded_shapes(up, path, body, fixtures):
    if "tools" in body:
        up.script(reply(tool_calls=[CALL]))
    headers = A_HEADERS if path == "/v1/messages" else {"authorization": "Bearer k"}
    vendor = "anthropic" if path == "/v1/messages" else "openai"
    with httpx.Client(base_url=up.url) as client:
        events = sse_events(client.post(path, json=body | {"stream": True}, headers=headers).text)
    recorded = [event for name in fixtures for event in fixture_lines(f"{vendor}/{name}.jsonl")]
    known = {json.dumps([name, shape(data)]) for name, data in recorded}
    for name, data in events:
        assert json.dumps([name, shape(data)]) in known, (name, data)
    if path == "/v1/messages":
        assert [n for n, _ in events][:3] == ["message_start", "content_block_start", "ping"]
        assert [n for n, _ in events][-3:] == [
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.jsonl")), ids=lambda p: p.name)
def test_recorded_streams_round_trip_through_sse(path):
    events = fixture_lines(f"{path.parent.name}/{path.name}")
    assert events and sse_events(sse_bytes(events).decode()) == events
