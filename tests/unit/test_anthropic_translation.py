"""The Anthropic adapter's pure translation: requests, answers, streams and errors."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.config.types import Deployment
from proxy.errors import BadRequest, NotImplementedByProvider, UpstreamError
from proxy.providers.anthropic.provider import AnthropicProvider
from proxy.schema import ChatRequest, Chunk, SSEEvent
from proxy.secret import Secret
from proxy.sse import SSEDecoder

KEY = "sk-ant-api03-secret-value-9f2a"
DEP = Deployment(
    id="anthropic-1",
    group="claude",
    provider="anthropic",
    wire="anthropic",
    model="claude-sonnet-4-20250514",
    api_base="https://api.anthropic.com",
    key=Secret(KEY),
    key_env="ANTHROPIC_API_KEY",
)
P = AnthropicProvider()
HELLO = [{"role": "user", "content": "Hello"}]


def chat(body: dict[str, Any] | None = None, **kw: Any) -> ChatRequest:
    full = {"model": "claude", "messages": HELLO, **(body or {})}
    return ChatRequest(model="claude", body=full, **kw)


def sent(body: dict[str, Any] | None = None, dep: Deployment = DEP, **kw: Any) -> dict[str, Any]:
    request = P.build_request(chat(body, **kw), dep)
    out: dict[str, Any] = orjson.loads(request.content)
    return out


def dep(**changes: Any) -> Deployment:
    return dataclasses.replace(DEP, **changes)


# ---- request: URL and headers


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/v1/messages"),
        ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/messages"),
        ("https://gw.example/anthropic/v1/", "https://gw.example/anthropic/v1/messages"),
    ],
)
def test_url_with_and_without_v1(base, url):
    request = P.build_request(chat(), dep(api_base=base))
    assert request.method == "POST"
    assert str(request.url) == url


def test_headers_key_version_and_content_type():
    request = P.build_request(chat(), DEP)
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "anthropic-beta" not in request.headers
    assert "authorization" not in request.headers


def test_client_version_and_beta_pass_through_then_extra_headers():
    headers = {
        "anthropic-version": "2024-01-01",
        "anthropic-beta": "prompt-caching-2024-07-31",
        "x-other": "no",
    }
    d = dep(extra_headers={"anthropic-beta": "output-128k-2025-02-19", "x-team": "a"})
    request = P.build_request(chat(headers=headers), d)
    assert request.headers["anthropic-version"] == "2024-01-01"
    assert request.headers["anthropic-beta"] == "output-128k-2025-02-19"
    assert request.headers["x-team"] == "a"
    assert "x-other" not in request.headers


def test_no_key_means_no_key_header():
    request = P.build_request(chat(), dep(key=None))
    assert "x-api-key" not in request.headers


def test_embeddings_not_served():
    with pytest.raises(NotImplementedByProvider):
        P.build_request(ChatRequest(model="claude", body={"input": "x"}, kind="embeddings"), DEP)


def test_wildcard_model_filled_from_request():
    d = dep(group="anthropic/*", model="*")
    req = ChatRequest(model="anthropic/claude-3-5-haiku-latest", body={"messages": HELLO})
    body = orjson.loads(P.build_request(req, d).content)
    assert body["model"] == "claude-3-5-haiku-latest"
    assert body["max_tokens"] == 8192


# ---- request: messages


def test_plain_request_shape():
    body = sent()
    assert body == {
        "model": "claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "max_tokens": 64000,
    }


def test_system_and_developer_joined_and_same_roles_merged():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a"},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "b", "name": "alice"},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    body = sent({"messages": messages})
    assert body["system"] == "Be brief.\n\nUse French."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "c"},
        {"type": "text", "text": "d"},
    ]


def test_assistant_first_gets_a_user_turn():
    body = sent(
        {
            "messages": [
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": "Hello"},
            ]
        }
    )
    assert body["messages"][0] == {
        "role": "user",
        "content": [{"type": "text", "text": "(continue)"}],
    }
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_system_only_becomes_system_and_a_user_turn():
    body = sent({"messages": [{"role": "system", "content": "Write a haiku."}]})
    assert body["system"] == "Write a haiku."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "(continue)"}]}
    ]


def test_empty_content_dropped_and_prefill_trimmed():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": ""},
        {
            "role": "user",
            "content": [{"type": "text", "text": "  "}, {"type": "text", "text": "b"}],
        },
        {"role": "assistant", "content": "The answer is "},
    ]
    body = sent({"messages": messages})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]},
    ]


def test_empty_messages_is_a_400():
    with pytest.raises(BadRequest) as err:
        sent({"messages": []})
    assert err.value.status == 400


def test_images_data_url_and_http_url():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
        },
    ]
    blocks = sent({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


def test_unsupported_image_type_and_audio_are_400():
    bmp = [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]
    with pytest.raises(BadRequest, match="image/bmp"):
        sent({"messages": [{"role": "user", "content": bmp}]})
    audio = [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]
    with pytest.raises(BadRequest, match="input_audio"):
        sent({"messages": [{"role": "user", "content": audio}]})


def test_cache_control_passes_through():
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Long doc", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "user", "content": "q"},
    ]
    body = sent({"messages": messages})
    assert body["system"] == [
        {"type": "text", "text": "Long doc", "cache_control": {"type": "ephemeral"}}
    ]


TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "functions.get_weather:1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {
        "role": "tool",
        "tool_call_id": "functions.get_weather:1",
        "content": [{"type": "text", "text": "21C"}],
    },
    {"role": "user", "content": "Thanks, which is warmer?"},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_calls_and_results():
    body = sent({"messages": TOOL_CONVERSATION, "tools": [WEATHER_TOOL]})
    user, assistant, results = body["messages"]
    assert user["role"] == "user"
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {
                "type": "tool_use",
                "id": "functions_get_weather_1",
                "name": "get_weather",
                "input": {"city": "Rome"},
            },
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "functions_get_weather_1", "content": "21C"},
            {"type": "text", "text": "Thanks, which is warmer?"},
        ],
    }
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert "tool_choice" not in body


def test_tool_history_without_tools_becomes_text():
    body = sent({"messages": TOOL_CONVERSATION})
    assert "tools" not in body
    flat = orjson.dumps(body["messages"]).decode()
    assert "tool_use" not in flat and "tool_result" not in flat
    assert '[called tool get_weather with {\\"city\\":\\"Paris\\"}]' in flat


def test_invalid_tool_arguments_is_our_400():
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ],
        },
    ]
    with pytest.raises(BadRequest) as err:
        sent({"messages": messages, "tools": [WEATHER_TOOL]})
    assert err.value.status == 400
    assert err.value.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_tool_choice(choice, parallel, expected):
    extra: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert sent(extra).get("tool_choice") == expected


def test_tool_without_parameters_gets_an_object_schema():
    tool = {"type": "function", "function": {"name": "now"}}
    assert sent({"tools": [tool]})["tools"] == [
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    ]


# ---- request: parameters


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-20250514", 32000),
        ("claude-opus-4-1-20250805", 32000),
        ("claude-sonnet-4-20250514", 64000),
        ("claude-3-7-sonnet-20250219", 64000),
        ("claude-3-5-haiku-20241022", 8192),
        ("claude-3-haiku-20240307", 4096),
        ("some-new-model", 4096),
    ],
)
def test_default_max_tokens(model, expected):
    assert sent(dep=dep(model=model))["max_tokens"] == expected


def test_max_completion_tokens_wins():
    assert sent({"max_tokens": 100})["max_tokens"] == 100
    assert sent({"max_tokens": 100, "max_completion_tokens": 50})["max_tokens"] == 50
    with pytest.raises(BadRequest):
        sent({"max_tokens": "lots"})


def test_sampling_stop_and_user():
    body = sent({"temperature": 1.7, "stop": "END", "user": "u-42", "top_k": 5})
    assert body["temperature"] == 1.0
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["top_k"] == 5
    body = sent({"top_p": 0.9, "stop": ["a", " ", "b"]})
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["a", "b"]
    assert "top_p" not in sent({"temperature": 0.2, "top_p": 0.9})  # not both


def test_hints_dropped_silently():
    hints = {
        "seed": 1,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.5,
        "logit_bias": {"50256": -100},
        "store": True,
        "n": 1,
        "service_tier": "auto",
        "metadata": {"a": "b"},
        "stream_options": {"include_usage": True},
        "response_format": {"type": "text"},
        "logprobs": False,
    }
    body = sent(hints)
    assert set(body) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize("param", [{"n": 2}, {"logprobs": True}, {"top_logprobs": 3}])
def test_shape_changing_params_400_or_dropped(param):
    with pytest.raises(BadRequest) as err:
        sent(param)
    name = next(iter(param))
    assert err.value.status == 400 and err.value.param == name and name in err.value.message
    assert set(sent(param, drop_params=True)) == {"model", "messages", "max_tokens"}


def test_stream_flag():
    assert sent(stream=True)["stream"] is True
    assert "stream" not in sent()


def test_reasoning_effort_becomes_thinking():
    body = sent({"reasoning_effort": "medium", "temperature": 0.3})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 64000
    assert "temperature" not in body
    body = sent({"reasoning_effort": "high", "max_tokens": 1000})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] == 17384
    assert "thinking" not in sent(
        {"reasoning_effort": "low"}, dep=dep(model="claude-3-5-haiku-20241022")
    )
    with pytest.raises(BadRequest):
        sent({"reasoning_effort": "extreme"})


def test_thinking_skipped_with_forced_tool_or_unsigned_tool_loop():
    forced = {"tools": [WEATHER_TOOL], "tool_choice": "required", "reasoning_effort": "low"}
    assert "thinking" not in sent(forced)
    loop = {"messages": TOOL_CONVERSATION[:4], "tools": [WEATHER_TOOL], "reasoning_effort": "low"}
    assert "thinking" not in sent(loop)
    signed = [
        dict(
            TOOL_CONVERSATION[1],
            thinking_blocks=[{"type": "thinking", "thinking": "hmm", "signature": "sig"}],
        )
    ]
    loop["messages"] = [TOOL_CONVERSATION[0], *signed, *TOOL_CONVERSATION[2:4]]
    body = sent(loop)
    assert body["thinking"]["budget_tokens"] == 1024
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "hmm",
        "signature": "sig",
    }


def test_response_format_json_schema_is_a_forced_tool():
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    body = sent({"response_format": fmt})
    assert body["tool_choice"] == {"type": "tool", "name": "json_output"}
    assert body["tools"][0]["name"] == "json_output"
    assert body["tools"][0]["input_schema"] == schema
    body = sent({"response_format": {"type": "json_object"}, "tools": [WEATHER_TOOL]})
    assert [t["name"] for t in body["tools"]] == ["get_weather", "json_output"]
    assert body["tool_choice"] == {"type": "any"}


# ---- response


def anthropic_message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
        }
    )


def parse(body: bytes, req: ChatRequest | None = None) -> dict[str, Any]:
    response = P.parse_response(req or chat(), DEP, body)
    ChatCompletion.model_validate_json(response.body)  # the openai SDK accepts it
    out: dict[str, Any] = orjson.loads(response.body)
    return out


def test_parse_text_answer():
    raw = anthropic_message([{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}])
    response = P.parse_response(chat(), DEP, raw)
    body = orjson.loads(response.body)
    assert body["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert body["object"] == "chat.completion"
    assert body["created"] == 0
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello!"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    assert response.preview == "Hello!"
    assert response.model == "claude-sonnet-4-20250514"
    assert response.usage is not None and response.usage.total_tokens == 18


def test_parse_tool_use_and_thinking():
    raw = anthropic_message(
        [
            {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQB"},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        stop="tool_use",
    )
    choice = parse(raw)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "Need the weather."
    assert message["thinking_blocks"][0]["signature"] == "EqQB"
    assert message["tool_calls"] == [
        {
            "id": "toolu_01A",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("tool_use", "stop"),
    ],  # tool_use without a call
)
def test_finish_reasons(stop, finish):
    raw = anthropic_message([{"type": "text", "text": "x"}], stop=stop)
    assert parse(raw)["choices"][0]["finish_reason"] == finish


def test_usage_with_prompt_cache():
    raw = anthropic_message(
        [{"type": "text", "text": "x"}], cache_read_input_tokens=100, cache_creation_input_tokens=50
    )
    response = P.parse_response(chat(), DEP, raw)
    usage = orjson.loads(response.body)["usage"]
    assert usage["prompt_tokens"] == 162
    assert usage["completion_tokens"] == 6
    assert usage["total_tokens"] == 168
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100}
    assert response.usage is not None
    assert (response.usage.cached_tokens, response.usage.cache_write_tokens) == (100, 50)


def test_json_tool_answer_is_the_content():
    raw = anthropic_message(
        [{"type": "tool_use", "id": "toolu_9", "name": "json_output", "input": {"x": 1}}],
        stop="tool_use",
    )
    choice = parse(raw)["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": '{"x":1}'}
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"type": "message"}'])
def test_bad_body_is_a_retryable_upstream_error(raw):
    with pytest.raises(UpstreamError) as err:
        P.parse_response(chat(), DEP, raw)
    assert err.value.status == 502 and err.value.retryable


# ---- streaming


def sse(kind: str, data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(kind, orjson.dumps({"type": kind, **data}).decode())


def start(**usage: int) -> SSEEvent:
    return sse(
        "message_start",
        {
            "message": {
                "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-20250514",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1, **usage},
            }
        },
    )


def block_start(index: int, block: dict[str, Any]) -> SSEEvent:
    return sse("content_block_start", {"index": index, "content_block": block})


def delta(index: int, d: dict[str, Any]) -> SSEEvent:
    return sse("content_block_delta", {"index": index, "delta": d})


def end(stop: str, output: int = 15) -> list[SSEEvent]:
    return [
        sse(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output},
            },
        ),
        sse("message_stop", {}),
    ]


def run(events: list[SSEEvent], req: ChatRequest | None = None) -> tuple[list[Chunk], Any]:
    decoder = P.open_stream(req or chat(stream=True), DEP)
    chunks: list[Chunk] = []
    for event in events:
        assert not decoder.done
        chunks.extend(decoder.feed(event))
    for chunk in chunks:
        assert chunk.data is not None
        ChatCompletionChunk.model_validate_json(chunk.data)
    return chunks, decoder


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        assert chunk.data is not None
        doc = orjson.loads(chunk.data)
        out.extend(
            choice["delta"] | {"_finish": choice["finish_reason"]} for choice in doc["choices"]
        )
    return out


def test_stream_text():
    events = [
        start(),
        block_start(0, {"type": "text", "text": ""}),
        sse("ping", {}),
        delta(0, {"type": "text_delta", "text": "Hello"}),
        delta(0, {"type": "text_delta", "text": "!"}),
        sse("content_block_stop", {"index": 0}),
        *end("end_turn"),
    ]
    chunks, decoder = run(events)
    assert decoder.done
    assert deltas(chunks) == [
        {"role": "assistant", "content": "", "_finish": None},
        {"content": "Hello", "_finish": None},
        {"content": "!", "_finish": None},
        {"_finish": "stop"},
    ]
    assert [c.text for c in chunks[:3]] == ["", "Hello", "!"]
    docs = [orjson.loads(c.data or b"") for c in chunks]
    assert {d["id"] for d in docs} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {d["object"] for d in docs} == {"chat.completion.chunk"}
    assert {d["model"] for d in docs} == {"claude-sonnet-4-20250514"}
    last = chunks[-1]
    assert last.usage_only and docs[-1]["choices"] == []
    assert docs[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    assert last.usage is not None and last.usage.completion_tokens == 15


def test_stream_tool_calls_indexed_from_zero():
    events = [
        start(cache_read_input_tokens=10),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Checking."}),
        sse("content_block_stop", {"index": 0}),
        block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": ""}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
        delta(1, {"type": "input_json_delta", "partial_json": 'ris"}'}),
        sse("content_block_stop", {"index": 1}),
        block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
        sse("content_block_stop", {"index": 2}),
        *end("tool_use", output=40),
    ]
    chunks, _ = run(events)
    got = deltas(chunks)
    assert got[2] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "toolu_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        "_finish": None,
    }
    assert got[3] == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}],
        "_finish": None,
    }
    assert got[4]["tool_calls"][0]["function"]["arguments"] == 'ris"}'
    assert got[5]["tool_calls"][0]["index"] == 1 and got[5]["tool_calls"][0]["id"] == "toolu_b"
    assert got[6]["tool_calls"] == [{"index": 1, "function": {"arguments": "{}"}}]
    assert got[7] == {"_finish": "tool_calls"}
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (35, 10, 40)


def test_stream_thinking_is_reasoning_content():
    events = [
        start(),
        block_start(0, {"type": "thinking", "thinking": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Let me think."}),
        delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
        sse("content_block_stop", {"index": 0}),
        block_start(1, {"type": "text", "text": ""}),
        delta(1, {"type": "text_delta", "text": "42"}),
        *end("max_tokens"),
    ]
    got = deltas(run(events)[0])
    assert got[1] == {"reasoning_content": "Let me think.", "_finish": None}
    assert got[2] == {"content": "42", "_finish": None}
    assert got[3] == {"_finish": "length"}


def test_stream_json_tool_streams_as_content():
    req = chat({"response_format": {"type": "json_object"}}, stream=True)
    events = [
        start(),
        block_start(0, {"type": "tool_use", "id": "toolu_j", "name": "json_output", "input": {}}),
        delta(0, {"type": "input_json_delta", "partial_json": '{"x":'}),
        delta(0, {"type": "input_json_delta", "partial_json": " 1}"}),
        *end("tool_use"),
    ]
    got = deltas(run(events, req)[0])
    assert got[1:] == [
        {"content": '{"x":', "_finish": None},
        {"content": " 1}", "_finish": None},
        {"_finish": "stop"},
    ]


def test_stream_error_event_overloaded_is_retryable():
    decoder = P.open_stream(chat(stream=True), DEP)
    decoder.feed(start())
    error = sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamError) as err:
        decoder.feed(error)
    assert err.value.status == 529 and err.value.retryable
    assert err.value.provider == "anthropic" and err.value.key_id == "anthropic-1"
    assert not decoder.done


def test_stream_error_event_invalid_request_is_not_retryable():
    decoder = P.open_stream(chat(stream=True), DEP)
    error = sse("error", {"error": {"type": "invalid_request_error", "message": "bad"}})
    with pytest.raises(UpstreamError) as err:
        decoder.feed(error)
    assert err.value.status == 400 and not err.value.retryable


def test_stream_unknown_events_ignored_and_bad_json_raises():
    decoder = P.open_stream(chat(stream=True), DEP)
    assert decoder.feed(sse("ping", {})) == []
    assert decoder.feed(sse("some_future_event", {"x": 1})) == []
    with pytest.raises(UpstreamError) as err:
        decoder.feed(SSEEvent("message_start", "{not json"))
    assert err.value.status == 502 and err.value.retryable


def test_stream_role_chunk_even_without_message_start():
    chunks, decoder = run([delta(0, {"type": "text_delta", "text": "Hi"}), sse("message_stop", {})])
    got = deltas(chunks)
    assert got == [
        {"role": "assistant", "content": "", "_finish": None},
        {"content": "Hi", "_finish": None},
        {"_finish": "stop"},
    ]
    assert decoder.done and chunks[-1].usage_only


# ---- errors


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }
    )


def classify(status: int, body: bytes, headers: dict[str, str] | None = None) -> UpstreamError:
    err = P.classify_error(DEP, status, headers or {}, body)
    assert err.provider == "anthropic" and err.key_id == "anthropic-1"
    assert KEY not in err.message
    return err


def test_rate_limit_with_retry_after():
    err = classify(
        429,
        error_body("rate_limit_error", "Number of requests has exceeded"),
        {"retry-after": "7", "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:07Z"},
    )
    assert err.status == 429 and err.retryable and err.counts_against and err.rate_limited
    assert err.retry_after == 7.0
    err = classify(429, error_body("rate_limit_error", "slow down"), {"Retry-After-Ms": "1500"})
    assert err.retry_after == 1.5
    assert classify(429, error_body("rate_limit_error", "x")).retry_after is None


def test_overloaded_and_server_errors_retryable():
    err = classify(529, error_body("overloaded_error", "Overloaded"))
    assert err.status == 529 and err.retryable and err.code == "overloaded"
    for status in (500, 502, 503, 504):
        err = classify(status, b"<html>bad gateway</html>")
        assert err.retryable and err.counts_against and err.status == status


@pytest.mark.parametrize(
    ("status", "kind"), [(401, "authentication_error"), (403, "permission_error")]
)
def test_key_rejected(status, kind):
    err = classify(status, error_body(kind, "invalid x-api-key"))
    assert err.key_rejected and err.retryable and err.counts_against
    assert err.message == "invalid x-api-key"


def test_spent_credit_rejects_the_key():
    err = classify(
        400,
        error_body(
            "invalid_request_error", "Your credit balance is too low to access the Anthropic API."
        ),
    )
    assert err.key_rejected and err.retryable


def test_invalid_request_goes_to_the_client():
    err = classify(400, error_body("invalid_request_error", "messages.0.content: Field required"))
    assert err.status == 400 and not err.retryable and not err.counts_against
    assert not err.context_window
    assert err.message == "messages.0.content: Field required"
    assert err.body()["error"]["type"] == "invalid_request_error"


def test_context_window():
    err = classify(
        400,
        error_body("invalid_request_error", "prompt is too long: 212345 tokens > 200000 maximum"),
    )
    assert err.context_window and not err.retryable
    assert err.code == "context_length_exceeded"


@pytest.mark.parametrize(("status", "kind"), [(404, "not_found_error"), (413, "request_too_large")])
def test_not_found_and_too_large_not_retryable(status, kind):
    err = classify(status, error_body(kind, "nope"))
    assert err.status == status and not err.retryable


def test_key_is_scrubbed_from_messages():
    err = classify(401, error_body("authentication_error", f"bad key {KEY}"))
    assert err.message == "bad key …9f2a"


def test_empty_error_body_still_has_a_message():
    assert classify(503, b"").message == "Anthropic answered HTTP 503"


def test_the_client_body_is_never_changed():
    body = {
        "messages": [
            {"role": "system", "content": "s"},
            *TOOL_CONVERSATION,
            {"role": "assistant", "content": "prefill  "},
        ],
        "tools": [WEATHER_TOOL],
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
        "temperature": 0.5,
    }
    before = copy.deepcopy(body)
    P.build_request(chat(body), DEP)
    body.pop("tools")
    P.build_request(chat(body), DEP)  # flattens tool history in its own copy
    assert body == {k: v for k, v in before.items() if k != "tools"}


WIRE_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-20250514",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 472, "output_tokens": 2},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Okay"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "usage": {"output_tokens": 89},
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
RAW_STREAM = b"".join(
    b"event: " + name.encode() + b"\r\ndata: " + orjson.dumps(data) + b"\r\n\r\n"
    for name, data in WIRE_EVENTS
)


def test_raw_wire_stream_through_the_sse_decoder():
    events = SSEDecoder().feed(RAW_STREAM)
    chunks, decoder = run(events)
    assert decoder.done
    got = deltas(chunks)
    assert got[1] == {"content": "Okay", "_finish": None}
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in got[2:5])
    assert orjson.loads(arguments) == {"location": "San Francisco, CA"}
    assert got[-1] == {"_finish": "tool_calls"}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 561
