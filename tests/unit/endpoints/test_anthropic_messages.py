"""The Messages front door, translated path: Claude Code's requests into OpenAI chat bodies, and
OpenAI answers, streams and errors back into what the anthropic SDK and Claude Code read."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import orjson
import pytest

from proxy.endpoints.anthropic_messages import (
    MessagesStream,
    count_tokens,
    estimate_tokens,
    parse,
    render,
    render_error,
)
from proxy.errors import (
    AllTargetsFailed,
    Attempt,
    AuthError,
    BadRequest,
    ProxyError,
    UnknownModel,
    UpstreamError,
    UpstreamTimeout,
)
from tests.unit.endpoints.wire import (
    anthropic_client,
    chunk,
    completion,
    events,
    run,
    tool_delta,
)

EPHEMERAL = {"type": "ephemeral"}
PNG = "iVBORw0KGgoAAAANSUhEUg=="
USER_ID = orjson.dumps(
    {"device_id": "dev-1", "account_uuid": "acct-1", "session_id": "3f1c-session"}
).decode()


def claude_code_body() -> dict[str, Any]:
    """What Claude Code 2.1.x sends (agents.md §1.3), one tool round trip in."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332; cch=ab12;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Be concise.", "cache_control": EPHEMERAL},
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "Read a.py", "cache_control": EPHEMERAL},
            ]},
            {"role": "system", "content": "Environment: linux."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read it.", "signature": "sig=="},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_01", "name": "Read",
                 "input": {"file_path": "a.py"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "cache_control": EPHEMERAL,
                 "content": [
                     {"type": "text", "text": "print(1)"},
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": PNG}},
                 ]},
                {"type": "text", "text": "Now explain it."},
            ]},
        ],
        "tools": [
            {"name": "Read", "description": "Read a file.", "cache_control": EPHEMERAL,
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                              "required": ["file_path"]}},
            {"name": "DeferredToolPlaceholder", "description": "Later.", "defer_loading": True,
             "input_schema": {"type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": USER_ID},
    }  # fmt: skip


def parsed(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return parse(orjson.dumps(body), headers or {})


def chat_body(**changes: Any) -> dict[str, Any]:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    body.update(changes)
    return parsed(body)[0].body


# --- parse -------------------------------------------------------------------------------


def test_claude_code_request_translates_to_one_openai_chat_body():
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"}
    req, ctl, info = parsed(claude_code_body(), headers)
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert req.body == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system",
             "content": "You are Claude Code.\n\nBe concise.\n\nEnvironment: linux."},
            {"role": "user", "content": "<system-reminder>ctx</system-reminder>\n\nRead a.py"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [
                {"id": "toolu_01", "type": "function",
                 "function": {"name": "Read", "arguments": '{"file_path":"a.py"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": "print(1)"},
            {"role": "user", "content": [
                {"type": "text", "text": "Attachment to tool result toolu_01:"},
                image,
                {"type": "text", "text": "Now explain it."},
            ]},
        ],
        "max_tokens": 32000,
        "tools": [
            {"type": "function", "function": {
                "name": "Read", "description": "Read a file.",
                "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}},
                               "required": ["file_path"]}}},
            {"type": "function", "function": {
                "name": "DeferredToolPlaceholder", "description": "Later.",
                "parameters": {"type": "object", "properties": {}}}},
        ],
        "reasoning_effort": "high",
        "user": "acct-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    assert (req.model, req.kind, req.stream, req.include_usage) == (
        "claude-sonnet-4-5", "chat", True, True)  # fmt: skip
    assert req.headers == headers
    assert (ctl.no_cache, ctl.ttl) == (False, None)
    assert (info.model, info.stream, info.session_id) == ("claude-sonnet-4-5", True, "3f1c-session")


def test_the_raw_body_is_kept_and_passes_through_with_only_the_model_replaced():
    body = claude_code_body()
    raw = orjson.dumps(body)
    assert parse(raw, {})[2].raw == raw
    raw = orjson.dumps({**body, "cache": {"no-cache": True}})
    _, ctl, info = parse(raw, {})
    assert info.raw == b""  # it holds a proxy-only field: never sent upstream as it is
    assert ctl.no_cache is True
    assert orjson.loads(info.passthrough("claude-sonnet-4-5-20250929")) == {
        **body, "model": "claude-sonnet-4-5-20250929"}  # fmt: skip


def test_parse_does_not_change_what_the_client_sent():
    body = claude_code_body()
    _, _, info = parsed(body)
    assert info.bulk.keys() == {"tools"}  # left as the bytes that came, converted from them
    assert orjson.loads(orjson.dumps(info.body)) == claude_code_body()


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16000}, None, "high"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, None, "high"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "disabled"}, {"effort": "low"}, None),
        (None, {"effort": "low"}, None),
    ],
)
def test_thinking_becomes_reasoning_effort(thinking, output_config, effort):
    changes: dict[str, Any] = {"thinking": thinking} if thinking else {}
    if output_config:
        changes["output_config"] = output_config
    assert chat_body(**changes).get("reasoning_effort") == effort


TOOL = {"name": "Bash", "input_schema": {"type": "object", "properties": {}}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "Bash"},
         {"tool_choice": {"type": "function", "function": {"name": "Bash"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True},
         {"tool_choice": "auto", "parallel_tool_calls": False}),
    ],
)  # fmt: skip
def test_tool_choice(choice, expected):
    body = chat_body(tools=[TOOL], tool_choice=choice)
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_tool_choice_without_client_tools_is_left_out():
    body = chat_body(tools=[{"type": "web_search_20250305", "name": "web_search"}],
                     tool_choice={"type": "any"})  # fmt: skip
    assert "tools" not in body and "tool_choice" not in body


def test_sampling_and_stop_sequences():
    body = chat_body(temperature=0.5, top_p=0.9, top_k=40, stop_sequences=list("abcdef"))
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.5, 0.9, list("abcd"))
    assert "top_k" not in body


def test_output_config_json_schema_becomes_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = chat_body(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}  # fmt: skip


def test_images_and_documents():
    content = [
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "title": "spec.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "data": "plain"}},
        {"type": "document", "source": {"type": "content",
                                        "content": [{"type": "text", "text": "inner"}]}},
    ]  # fmt: skip
    body = chat_body(messages=[{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "file", "file": {"filename": "spec.pdf",
                                  "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "text", "text": "Notes\n\nplain"},
        {"type": "text", "text": "inner"},
    ]  # fmt: skip


def test_tool_results_string_error_and_tool_reference():
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}},
            {"type": "tool_use", "id": "t2", "name": "ToolSearch", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
            {"type": "tool_result", "tool_use_id": "t2",
             "content": [{"type": "tool_reference", "tool_name": "Grep"}]}]},
    ]  # fmt: skip
    body = chat_body(messages=messages)
    assert body["messages"][1]["content"] is None
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "t2", "content": "(tool Grep is now available)"},
    ]


def test_an_assistant_turn_with_only_thinking_is_dropped():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xx"}]},
        {"role": "user", "content": "b"},
    ]
    assert [m["role"] for m in chat_body(messages=messages)["messages"]] == ["user", "user"]


def test_legacy_user_id_carries_the_session():
    legacy = "user_ab12_account_11111111-2222_session_33333333-4444"
    req, _, info = parsed({"model": "m", "max_tokens": 5, "metadata": {"user_id": legacy},
                           "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert info.session_id == "33333333-4444"
    assert req.body["user"] == legacy


def test_a_non_stream_request_does_not_ask_for_usage_chunks():
    req, _, info = parsed({"model": "m", "max_tokens": 5,
                           "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert (req.stream, req.include_usage, info.session_id) == (False, False, None)
    assert "stream" not in req.body and "stream_options" not in req.body


def _set(path: str, value: Any) -> dict[str, Any]:
    body = claude_code_body()
    target: Any = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key) if key.isdigit() else key]
    last = keys[-1]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        ("model", _DELETE, "model"),
        ("model", "", "model"),
        ("max_tokens", _DELETE, "max_tokens"),
        ("max_tokens", 0, "max_tokens"),
        ("messages", [], "messages"),
        ("messages.0.role", "tool", "messages[0].role"),
        ("messages.0.content", 7, "messages[0].content"),
        ("messages.0.content.0", "text", "messages[0].content[0]"),
        ("messages.2.content.2.id", _DELETE, "messages[2].content[2].id"),
        ("messages.2.content.2.input", "[]", "messages[2].content[2].input"),
        ("messages.3.content.0.tool_use_id", _DELETE, "messages[3].content[0]"),
        ("messages.3.content.0.content.1.source",
         {"type": "file", "file_id": "f"}, "messages[3].content[0].content[1].source"),
        ("messages.0.content.0.type", "video", "messages[0].content[0]"),
        ("system", [{"type": "image"}], "system[0]"),
        ("tools", {}, "tools"),
        ("tools.0.name", _DELETE, "tools[0].name"),
        ("tools.0.input_schema", "x", "tools[0].input_schema"),
        ("thinking", {"type": "on"}, "thinking.type"),
        ("thinking", {"type": "enabled"}, "thinking.budget_tokens"),
        ("temperature", 1.5, "temperature"),
        ("top_k", -1, "top_k"),
        ("stop_sequences", "END", "stop_sequences"),
        ("stream", "yes", "stream"),
        ("metadata", "u", "metadata"),
        ("metadata.user_id", 5, "metadata.user_id"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(path, value, param):
    with pytest.raises(BadRequest) as caught:
        parsed(_set(path, value))
    assert caught.value.status == 400
    assert caught.value.param == param
    assert render_error(caught.value)[0] == 400


@pytest.mark.parametrize("raw", [b"", b"{nope", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    with pytest.raises(BadRequest):
        parse(raw, {})


def test_tool_choice_errors_name_the_field():
    for choice, param in (({"type": "tool"}, "tool_choice.name"), ("auto", "tool_choice")):
        with pytest.raises(BadRequest) as caught:
            chat_body(tools=[TOOL], tool_choice=choice)
        assert caught.value.param == param


# --- render ------------------------------------------------------------------------------


def test_a_text_answer_renders_as_a_message_the_sdk_reads():
    anthropic = importlib.import_module("anthropic")
    out = orjson.loads(render(completion({"content": "Hello!"}), "claude-sonnet-4-5"))
    assert out == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 30,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100},
    }  # fmt: skip
    message = anthropic.types.Message.model_validate(out)
    assert message.usage.cache_read_input_tokens == 100


def test_tool_calls_thinking_and_bad_arguments_render_as_blocks():
    anthropic = importlib.import_module("anthropic")
    message = {
        "content": None,
        "reasoning_content": "Let me look.",
        "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "Read", "arguments": '{"file_path": "a.py"}'}},
            {"id": "call:2", "type": "function",
             "function": {"name": "Bash", "arguments": '{"command": "ls'}},
        ],
    }  # fmt: skip
    out = orjson.loads(render(completion(message, "tool_calls"), "m"))
    assert out["content"] == [
        {"type": "thinking", "thinking": "Let me look.", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "a.py"}},
        {"type": "tool_use", "id": "call_2", "name": "Bash", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"
    anthropic.types.Message.model_validate(out)


@pytest.mark.parametrize(
    ("finish", "tool", "reason"),
    [
        ("stop", False, "end_turn"),
        (None, False, "end_turn"),
        ("length", False, "max_tokens"),
        ("length", True, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("stop", True, "tool_use"),
        ("tool_calls", False, "end_turn"),
        ("content_filter", False, "refusal"),
    ],
)
def test_stop_reasons(finish, tool, reason):
    message: dict[str, Any] = {"content": "x"}
    if tool:
        message["tool_calls"] = [{"id": "c", "type": "function",
                                  "function": {"name": "f", "arguments": "{}"}}]  # fmt: skip
    assert orjson.loads(render(completion(message, finish), "m"))["stop_reason"] == reason


def test_usage_from_an_anthropic_upstream_keeps_cache_reads_and_writes_apart():
    usage = {"prompt_tokens": 1000, "completion_tokens": 5, "total_tokens": 1005,
             "prompt_tokens_details": {"cached_tokens": 600},
             "cache_read_input_tokens": 600, "cache_creation_input_tokens": 300}  # fmt: skip
    out = orjson.loads(render(completion({"content": "x"}, usage=usage), "m"))
    assert out["usage"] == {
        "input_tokens": 100,
        "output_tokens": 5,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
    }


def test_signed_thinking_blocks_are_kept():
    blocks = [{"type": "thinking", "thinking": "hm", "signature": "EqQB"}]
    message = {"content": "ok", "reasoning_content": "hm", "thinking_blocks": blocks}
    assert orjson.loads(render(completion(message), "m"))["content"][0] == blocks[0]


def test_an_answer_that_is_not_a_completion_is_a_502():
    with pytest.raises(ProxyError) as caught:
        render(b'{"object": "list"}', "m")
    assert caught.value.status == 502


def test_the_sdk_client_reads_a_rendered_answer():
    body = render(completion({"content": "Hi there"}), "claude-sonnet-4-5")
    client = anthropic_client(body)
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                      messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert message.content[0].text == "Hi there"
    assert message.usage.input_tokens == 20


# --- stream ------------------------------------------------------------------------------

TEXT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({}, "stop"),
    chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
]


def test_a_text_stream_renders_every_event_in_order():
    out = run(MessagesStream("claude-sonnet-4-5"), TEXT_STREAM)
    seen = events(out)
    assert [name for name, _ in seen] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    assert all(data["type"] == name for name, data in seen)
    start = seen[0][1]["message"]
    assert (start["id"], start["model"], start["content"]) == (
        "msg_abc123",
        "claude-sonnet-4-5",
        [],
    )
    assert start["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert seen[1][1] == {"type": "content_block_start", "index": 0,
                          "content_block": {"type": "text", "text": ""}}  # fmt: skip
    assert [d["delta"] for _, d in seen[2:4]] == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    assert seen[5][1] == {"type": "message_delta",
                          "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "usage": {"input_tokens": 10, "output_tokens": 2,
                                    "cache_creation_input_tokens": 0,
                                    "cache_read_input_tokens": 0}}  # fmt: skip


def tool_stream() -> list[bytes]:
    return [
        chunk({"role": "assistant", "reasoning_content": "Think"}),
        chunk({"reasoning_content": "ing."}),
        chunk({"content": "Let me read."}),
        chunk(tool_delta(0, id="call_1", name="Read", args="")),
        chunk(tool_delta(0, args='{"file_')),
        chunk(tool_delta(0, args='path": "a.py"}')),
        chunk(tool_delta(1, id="call_2", name="Bash", args='{"command": "ls"}')),
        chunk({}, "tool_calls"),
        chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
    ]


def test_thinking_text_and_tool_calls_stream_as_blocks():
    seen = events(run(MessagesStream("m"), tool_stream()))
    blocks = [(d["index"], d["content_block"]) for n, d in seen if n == "content_block_start"]
    assert blocks == [
        (0, {"type": "thinking", "thinking": "", "signature": ""}),
        (1, {"type": "text", "text": ""}),
        (2, {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}),
        (3, {"type": "tool_use", "id": "call_2", "name": "Bash", "input": {}}),
    ]
    deltas = [(d["index"], d["delta"]) for n, d in seen if n == "content_block_delta"]
    assert deltas == [
        (0, {"type": "thinking_delta", "thinking": "Think"}),
        (0, {"type": "thinking_delta", "thinking": "ing."}),
        (1, {"type": "text_delta", "text": "Let me read."}),
        (2, {"type": "input_json_delta", "partial_json": '{"file_'}),
        (2, {"type": "input_json_delta", "partial_json": 'path": "a.py"}'}),
        (3, {"type": "input_json_delta", "partial_json": '{"command": "ls"}'}),
    ]
    stops = [d["index"] for n, d in seen if n == "content_block_stop"]
    assert stops == [0, 1, 2, 3]
    assert seen[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert seen[-1][0] == "message_stop"


def test_the_sdk_accumulates_a_rendered_stream_into_the_same_message():
    body = run(MessagesStream("m"), tool_stream())
    client = anthropic_client(body, sse=True)
    hello = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model="m", max_tokens=10, messages=hello) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use",
                                                          "tool_use"]  # fmt: skip
    assert message.content[0].thinking == "Thinking."
    assert message.content[2].input == {"file_path": "a.py"}
    assert message.content[3].input == {"command": "ls"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 20)


def test_the_usage_chunk_closes_the_stream_and_finish_adds_nothing():
    renderer = MessagesStream("m")
    out = b"".join(renderer.feed(piece) for piece in TEXT_STREAM)
    assert events(out)[-1][0] == "message_stop"
    assert renderer.closed
    assert renderer.finish() == b"" and renderer.feed(TEXT_STREAM[1]) == b""


def test_finish_closes_a_stream_the_upstream_left_open():
    renderer = MessagesStream("m")
    out = renderer.feed(chunk({"content": "partial"})) + renderer.finish()
    names = [name for name, _ in events(out)]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events(out)[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_an_empty_stream_still_starts_and_stops():
    names = [name for name, _ in events(MessagesStream("m").finish())]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_a_tool_call_whose_name_comes_late_waits_for_it():
    renderer = MessagesStream("m")
    out = renderer.feed(chunk(tool_delta(0, id="call_9", args='{"a"')))
    out += renderer.feed(chunk(tool_delta(0, name="Edit", args=": 1}")))
    out += renderer.finish()
    seen = events(out)
    start = next(d for n, d in seen if n == "content_block_start")
    assert start["content_block"]["name"] == "Edit"
    partial = [d["delta"]["partial_json"] for n, d in seen if n == "content_block_delta"]
    assert "".join(partial) == '{"a": 1}'


def test_an_error_mid_stream_is_an_anthropic_error_event():
    renderer = MessagesStream("m")
    out = renderer.feed(TEXT_STREAM[1])
    err = UpstreamError("overloaded", provider="openai", key_id="o-1", status=529,
                        retryable=True)  # fmt: skip
    out += renderer.error(err)
    name, data = events(out)[-1]
    assert (name, data) == ("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "overloaded"}})  # fmt: skip
    assert renderer.closed and renderer.finish() == b""


def test_the_pipeline_sse_is_translated_error_document_included():
    renderer = MessagesStream("m")
    piece = b"data: " + TEXT_STREAM[1] + b"\n\n"
    error = {"error": {"message": "All deployments failed", "type": "rate_limit_error",
                       "param": None, "code": "rate_limit_exceeded"}}  # fmt: skip
    out = renderer.feed_sse(piece[:10]) + renderer.feed_sse(piece[10:])
    out += renderer.feed_sse(b"data: " + orjson.dumps(error) + b"\n\ndata: [DONE]\n\n")
    seen = events(out)
    assert [name for name, _ in seen][-1] == "error"
    assert seen[-1][1]["error"]["type"] == "rate_limit_error"


def test_the_pipeline_sse_done_finishes_the_stream():
    renderer = MessagesStream("m")
    raw = b"".join(b"data: " + piece + b"\n\n" for piece in TEXT_STREAM[:4]) + b"data: [DONE]\n\n"
    assert [name for name, _ in events(renderer.feed_sse(raw))][-1] == "message_stop"


def test_ping():
    assert events(MessagesStream("m").ping()) == [("ping", {"type": "ping"})]


def test_the_sdk_raises_on_a_streamed_error_event():
    anthropic = importlib.import_module("anthropic")
    renderer = MessagesStream("m")
    body = renderer.feed(TEXT_STREAM[1]) + renderer.error(AllTargetsFailed("g", []))
    client = anthropic_client(body, sse=True)
    hello = [{"role": "user", "content": "x"}]
    with pytest.raises(anthropic.APIStatusError) as caught:  # noqa: SIM117
        with client.messages.stream(model="m", max_tokens=5, messages=hello) as stream:
            stream.get_final_message()
    assert "overloaded_error" in str(caught.value.body)


# --- errors ------------------------------------------------------------------------------

_ATTEMPT = Attempt("openai-1", "g", 500, "server error", 12.0)


@pytest.mark.parametrize(
    ("err", "status", "kind"),
    [
        (BadRequest("bad", param="x"), 400, "invalid_request_error"),
        (BadRequest("too big", status=413), 413, "request_too_large"),
        (BadRequest("unprocessable", status=422), 400, "invalid_request_error"),
        (AuthError(), 401, "authentication_error"),
        (UpstreamError("no", provider="p", key_id="k", status=403, retryable=False), 403,
         "permission_error"),
        (UnknownModel("gpt-9"), 404, "not_found_error"),
        (AllTargetsFailed("g", [], rate_limited=True, retry_after=3), 429, "rate_limit_error"),
        (ProxyError("boom"), 500, "api_error"),
        (AllTargetsFailed("g", [_ATTEMPT]), 502, "api_error"),
        (AllTargetsFailed("g", []), 529, "overloaded_error"),
        (AllTargetsFailed("g", [Attempt("a-1", "g", 529, "overloaded", 3.0)]), 529,
         "overloaded_error"),
        (ProxyError("draining", status=503, code="shutting_down"), 529, "overloaded_error"),
        (UpstreamTimeout("slow", provider="p", key_id="k"), 504, "timeout_error"),
    ],
)  # fmt: skip
def test_errors_render_in_anthropic_shape_and_status(err, status, kind):
    got_status, body = render_error(err)
    assert got_status == status
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": err.message}}


@pytest.mark.parametrize(
    ("err", "exception"),
    [
        (BadRequest("bad"), "BadRequestError"),
        (AuthError(), "AuthenticationError"),
        (UnknownModel("x"), "NotFoundError"),
        (AllTargetsFailed("g", [], rate_limited=True), "RateLimitError"),
        (AllTargetsFailed("g", []), "OverloadedError"),
    ],
)
def test_the_sdk_raises_its_own_error_class(err, exception):
    anthropic = importlib.import_module("anthropic")
    status, body = render_error(err)
    client = anthropic_client(body, status=status)
    with pytest.raises(getattr(anthropic, exception)) as caught:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert caught.value.message.endswith(err.message) or err.message in str(caught.value)


# --- count_tokens ------------------------------------------------------------------------


def test_count_tokens_counts_only_what_the_client_sent():
    body = {
        "model": "claude-sonnet-4-5",
        "system": "a" * 400,
        "messages": [
            {"role": "user", "content": "b" * 400},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "c" * 4000, "signature": "s"},
                {"type": "tool_use", "id": "t", "name": "Read", "input": {"p": "x"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [
                    {"type": "text", "text": "d" * 400},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "A" * 100_000}}]}]},
        ],
        "tools": [{"name": "Read", "description": "e" * 100, "input_schema": {"type": "object"}}],
    }  # fmt: skip
    tool_use = len("Read") + len(b'{"p":"x"}')
    tools = len("Read") + 100 + len(b'{"type":"object"}')
    expected = (400 + 400 + tool_use + 400 + tools) // 4 + 1600
    model, answer = count_tokens(orjson.dumps(body))
    assert model == "claude-sonnet-4-5"
    assert orjson.loads(answer) == {"input_tokens": expected}
    assert estimate_tokens(copy.deepcopy(body)) == expected


def test_count_tokens_of_the_claude_code_request_is_not_inflated():
    body = claude_code_body()
    without_image = orjson.dumps(body).replace(PNG.encode(), b"")
    # at most the whole JSON's characters / 4, plus the one image: nothing the proxy adds
    assert 1600 < estimate_tokens(body) < len(without_image) // 4 + 1600


@pytest.mark.parametrize(
    ("raw", "param"),
    [(b"{}", "model"), (b'{"model": "m"}', "messages"), (b"nope", None)],
)
def test_count_tokens_bad_input_is_a_400(raw, param):
    with pytest.raises(BadRequest) as caught:
        count_tokens(raw)
    assert caught.value.param == param


def test_the_front_door_can_pass_the_scrubbed_message():
    err = UpstreamError("bad key sk-secret", provider="p", key_id="k", status=401,
                        retryable=False)  # fmt: skip
    status, body = render_error(err, "bad key sk-…cret")
    assert status == 401
    assert orjson.loads(body)["error"] == {"type": "authentication_error",
                                           "message": "bad key sk-…cret"}  # fmt: skip
    streamed = events(MessagesStream("m").error(err, "bad key sk-…cret"))
    assert streamed[-1][1]["error"]["message"] == "bad key sk-…cret"
