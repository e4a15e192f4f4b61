"""The Responses front door, translated path: Codex's requests into OpenAI chat bodies, and
OpenAI answers, streams and errors back into what the openai SDK and Codex read."""

from __future__ import annotations

import importlib
from typing import Any

import orjson
import pytest

from proxy.endpoints.openai_responses import ResponsesStream, ToolRef, parse, render, render_error
from proxy.errors import AllTargetsFailed, BadRequest, ContextWindowExceeded, ProxyError
from tests.unit.endpoints.wire import (
    chunk,
    completion,
    events,
    openai_client,
    run,
    tool_delta,
)

GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF'
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"


def codex_body() -> dict[str, Any]:
    """What Codex CLI 0.171 sends for gpt-5.5 (agents.md §1.4), two tool round trips in."""
    return {
        "model": "gpt-5.5",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "<permissions>sandbox</permissions>"}]},
            {"type": "message", "role": "developer", "content": "Use apply_patch to edit."},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "Add a.txt"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [],
             "encrypted_content": "gAAAA..."},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Looking first."}]},
            {"type": "function_call", "call_id": "call_1", "name": "exec_command",
             "arguments": '{"cmd": "ls"}'},
            {"type": "function_call", "call_id": "call_2", "name": "spawn_agent",
             "namespace": "multi_agent_v1", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "README.md"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "agent 7"}]},
            {"type": "custom_tool_call", "call_id": "call_3", "name": "apply_patch",
             "input": PATCH},
            {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done."},
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run a command.",
             "strict": False,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                            "required": ["cmd"]}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents.",
             "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn.",
                        "parameters": {"type": "object", "properties": {}}}]},
            {"type": "custom", "name": "apply_patch", "description": "Edit files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}},
            {"type": "web_search", "external_web_access": False},
            {"type": "tool_search", "execution": "client"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a-session",
        "client_metadata": {"x-codex-turn": "1"},
        "reasoning": {"effort": "medium", "summary": "auto"},
        "text": {"verbosity": "low"},
        "service_tier": "auto",
    }  # fmt: skip


def parsed(body: dict[str, Any]) -> Any:
    return parse(orjson.dumps(body), {})


def chat_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "input": "hi"}
    body.update(changes)
    return parsed(body)[0].body


# --- parse -------------------------------------------------------------------------------


def test_codex_request_translates_to_one_openai_chat_body():
    req, ctl, info = parsed(codex_body())
    patch_args = orjson.dumps({"input": PATCH}).decode()
    assert req.body == {
        "model": "gpt-5.5",
        "messages": [
            {"role": "system", "content": "You are Codex.\n\n<permissions>sandbox</permissions>"
                                          "\n\nUse apply_patch to edit."},
            {"role": "user", "content": "Add a.txt"},
            {"role": "assistant", "content": "Looking first.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "exec_command", "arguments": '{"cmd": "ls"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "README.md"},
            {"role": "tool", "tool_call_id": "call_2", "content": "agent 7"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_3", "type": "function",
                 "function": {"name": "apply_patch", "arguments": patch_args}}]},
            {"role": "tool", "tool_call_id": "call_3", "content": "Done."},
        ],
        "tools": [
            {"type": "function", "function": {
                "name": "exec_command", "description": "Run a command.",
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                               "required": ["cmd"]}}},
            {"type": "function", "function": {
                "name": "multi_agent_v1__spawn_agent", "description": "Spawn.",
                "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {
                "name": "apply_patch", "description": "Edit files.",
                "parameters": {"type": "object", "properties": {"input": {
                    "type": "string",
                    "description": "The tool's raw input, following this lark grammar:\n"
                                   + GRAMMAR}},
                    "required": ["input"], "additionalProperties": False}}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    assert (req.model, req.stream, req.include_usage) == ("gpt-5.5", True, True)
    assert ctl.no_cache is False
    assert info.session_id == "019a-session"
    assert info.tools == {
        "exec_command": ToolRef("function", "exec_command"),
        "multi_agent_v1__spawn_agent": ToolRef("function", "spawn_agent", "multi_agent_v1"),
        "apply_patch": ToolRef("custom", "apply_patch"),
    }


def test_the_raw_body_is_kept_and_passes_through_with_only_the_model_replaced():
    body = codex_body()
    raw = orjson.dumps(body)
    assert parse(raw, {})[2].raw == raw
    raw = orjson.dumps({**body, "cache": {"ttl": 60}})
    _, ctl, info = parse(raw, {})
    assert (info.raw, ctl.ttl) == (b"", 60.0)  # a proxy-only field: never sent as it is
    assert orjson.loads(info.passthrough("gpt-5.5-2026")) == {**body, "model": "gpt-5.5-2026"}


def test_a_string_input_and_no_tools():
    req, _, info = parsed({"model": "m", "input": "hello", "max_output_tokens": 50,
                           "temperature": 1.5, "top_p": 0.5, "user": "u1"})  # fmt: skip
    assert req.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 50,
        "temperature": 1.5,
        "top_p": 0.5,
        "user": "u1",
    }
    assert (req.stream, info.session_id) == (False, None)


def test_images_and_files_in_user_messages():
    content = [
        {"type": "input_text", "text": "Look:"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JV"},
    ]
    body = chat_body(input=[{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JV",
                                  "filename": "a.pdf"}},
    ]  # fmt: skip


def test_an_older_codex_output_object_is_read():
    items = [
        {"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c",
         "output": {"content": "exit 1", "success": False}},
    ]  # fmt: skip
    assert chat_body(input=items)["messages"][1]["content"] == "exit 1"


def test_an_image_in_a_tool_output_goes_to_a_user_message():
    items = [
        {"type": "function_call", "call_id": "c", "name": "view", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": [
            {"type": "input_image", "image_url": "https://x.test/s.png"}]},
    ]  # fmt: skip
    messages = chat_body(input=items)["messages"]
    assert messages[1] == {
        "role": "tool",
        "tool_call_id": "c",
        "content": "(the output is in the attachment below)",
    }
    assert messages[2]["role"] == "user"
    assert messages[2]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x.test/s.png"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "json_schema", "name": "out", "strict": True,
                     "schema": {"type": "object"}}},
         {"type": "json_schema",
          "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}}),
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        ({"format": {"type": "text"}, "verbosity": "high"}, None),
    ],
)  # fmt: skip
def test_text_format_becomes_response_format(text, expected):
    assert chat_body(text=text).get("response_format") == expected


@pytest.mark.parametrize(
    ("effort", "expected"),
    [("minimal", "minimal"), ("high", "high"), ("xhigh", "high"), ("none", None), (None, None)],
)
def test_reasoning_effort(effort, expected):
    assert chat_body(reasoning={"effort": effort, "summary": "auto"}).get(
        "reasoning_effort") == expected  # fmt: skip


FUNCTION = {"type": "function", "name": "f", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
        ({"type": "custom", "name": "apply_patch"},
         {"type": "function", "function": {"name": "apply_patch"}}),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
        ({"type": "web_search_preview"}, "auto"),
    ],
)  # fmt: skip
def test_tool_choice(choice, expected):
    assert chat_body(tools=[FUNCTION], tool_choice=choice)["tool_choice"] == expected


def test_only_hosted_tools_leave_no_tools_and_no_tool_choice():
    body = chat_body(tools=[{"type": "web_search"}, {"type": "file_search"}],
                     tool_choice="required", parallel_tool_calls=False)  # fmt: skip
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"model": ""}, "model"),
        ({"input": []}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "telepathy"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
         "input[0].content[0]"),
        ({"input": [{"role": "developer", "content": [{"type": "input_image"}]}]},
         "input[0].content[0]"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
         "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
         "input[0].arguments"),
        ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "f", "input": 1}]},
         "input[0].input"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"instructions": ["x"]}, "instructions"),
        ({"tools": {}}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "custom"}]}]},
         "tools[0].tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": []}]},
         "tools[0].parameters"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"stream": "true"}, "stream"),
        ({"reasoning": "high"}, "reasoning"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(changes, param):
    body = {"model": "m", "input": "hi", **changes}
    with pytest.raises(BadRequest) as caught:
        parsed(body)
    assert (caught.value.status, caught.value.param) == (400, param)
    status, rendered = render_error(caught.value)
    assert status == 400
    assert orjson.loads(rendered)["error"]["param"] == param


@pytest.mark.parametrize("raw", [b"", b"{", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    with pytest.raises(BadRequest):
        parse(raw, {})


# --- render ------------------------------------------------------------------------------


def info_for(body: dict[str, Any] | None = None) -> Any:
    return parsed(body or codex_body())[2]


def test_a_text_answer_renders_as_a_response_the_sdk_reads():
    responses = importlib.import_module("openai.types.responses")
    out = orjson.loads(render(completion({"content": "Hello!"}), info_for()))
    assert {
        k: out[k]
        for k in ("id", "object", "created_at", "status", "model", "error", "incomplete_details")
    } == {
        "id": "resp_abc123",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": "gpt-5.5",
        "error": None,
        "incomplete_details": None,
    }
    assert out["output"] == [
        {
            "id": "msg_abc123",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert out["usage"] == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 150,
    }
    assert (out["tools"], out["tool_choice"], out["parallel_tool_calls"]) == (
        codex_body()["tools"],
        "auto",
        True,
    )
    assert out["prompt_cache_key"] == "019a-session" and out["store"] is False
    response = responses.Response.model_validate(out)
    assert response.output_text == "Hello!"  # fmt: skip


def test_tool_calls_render_as_function_and_custom_tool_calls():
    responses = importlib.import_module("openai.types.responses")
    calls = [
        {"id": "call_a", "type": "function",
         "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "apply_patch", "arguments": orjson.dumps({"input": PATCH}).decode()}},
        {"id": "call_c", "type": "function",
         "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}},
    ]  # fmt: skip
    out = orjson.loads(render(completion({"content": None, "tool_calls": calls}, "tool_calls"),
                              info_for()))  # fmt: skip
    assert out["output"] == [
        {"id": "fc_abc123_0", "type": "function_call", "status": "completed",
         "call_id": "call_a", "name": "exec_command", "arguments": '{"cmd":"ls"}'},
        {"id": "ctc_abc123_1", "type": "custom_tool_call", "status": "completed",
         "call_id": "call_b", "name": "apply_patch", "input": PATCH},
        {"id": "fc_abc123_2", "type": "function_call", "status": "completed",
         "call_id": "call_c", "name": "spawn_agent", "arguments": "{}",
         "namespace": "multi_agent_v1"},
    ]  # fmt: skip
    response = responses.Response.model_validate(out)
    assert response.output[1].type == "custom_tool_call"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"input": "raw"}', "raw"),
        ('{"patch": "raw"}', "raw"),
        ('"raw"', "raw"),
        ("*** Begin Patch", "*** Begin Patch"),
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 2}'),
    ],
)
def test_a_custom_tool_input_is_unwrapped(arguments, expected):
    call = {"id": "c", "type": "function", "function": {"name": "apply_patch",
                                                        "arguments": arguments}}  # fmt: skip
    out = orjson.loads(render(completion({"tool_calls": [call]}, "tool_calls"), info_for()))
    assert out["output"][0]["input"] == expected


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [("stop", "completed", None), ("length", "incomplete", "max_output_tokens"),
     ("content_filter", "incomplete", "content_filter"), ("tool_calls", "completed", None)],
)  # fmt: skip
def test_status_and_incomplete_details(finish, status, reason):
    out = orjson.loads(render(completion({"content": "x"}, finish), info_for()))
    assert out["status"] == status
    assert out["incomplete_details"] == ({"reason": reason} if reason else None)


def test_a_refusal_renders_as_a_refusal_part():
    out = orjson.loads(render(completion({"content": None, "refusal": "No."}), info_for()))
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_an_answer_that_is_not_a_completion_is_a_502():
    with pytest.raises(ProxyError) as caught:
        render(b"[]", info_for())
    assert caught.value.status == 502


def test_the_sdk_client_reads_a_rendered_answer():
    body = render(completion({"content": "Hi there"}), info_for({"model": "m", "input": "hi"}))
    response = openai_client(body).responses.create(model="m", input="hi")
    assert response.output_text == "Hi there"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 100


# --- stream ------------------------------------------------------------------------------

TEXT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({}, "stop"),
    chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
]


def test_a_text_stream_renders_every_event_in_order():
    seen = events(run(ResponsesStream(info_for()), TEXT_STREAM))
    assert [name for name, _ in seen] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]  # fmt: skip
    assert all(data["type"] == name for name, data in seen)
    assert [data["sequence_number"] for _, data in seen] == list(range(len(seen)))
    assert seen[0][1]["response"]["status"] == "in_progress"
    assert seen[2][1]["item"] == {
        "id": "msg_abc123_0",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert [d["delta"] for n, d in seen if n.endswith("output_text.delta")] == ["Hel", "lo"]
    assert seen[6][1]["text"] == "Hello"
    final = seen[-1][1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 12


def tool_stream() -> list[bytes]:
    patch = orjson.dumps({"input": PATCH}).decode()
    return [
        chunk({"role": "assistant", "reasoning_content": "hidden"}),
        chunk({"content": "On it."}),
        chunk(tool_delta(0, id="call_a", name="exec_command", args='{"cmd"')),
        chunk(tool_delta(0, args=':"ls"}')),
        chunk(tool_delta(1, id="call_b", name="apply_patch", args=patch[:20])),
        chunk(tool_delta(1, args=patch[20:])),
        chunk(tool_delta(2, id="call_c", name="multi_agent_v1__spawn_agent", args="{}")),
        chunk({}, "tool_calls"),
        chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
    ]


def test_function_and_custom_tool_calls_stream_as_their_items():
    seen = events(run(ResponsesStream(info_for()), tool_stream()))
    names = [name for name, _ in seen]
    assert names[8:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]  # fmt: skip
    added = [d["item"] for n, d in seen if n == "response.output_item.added"]
    assert [(i["type"], i.get("name"), i.get("namespace")) for i in added] == [
        ("message", None, None), ("function_call", "exec_command", None),
        ("custom_tool_call", "apply_patch", None),
        ("function_call", "spawn_agent", "multi_agent_v1")]  # fmt: skip
    args_done = next(d for n, d in seen if n == "response.function_call_arguments.done")
    assert args_done["arguments"] == '{"cmd":"ls"}'
    custom_done = next(d for n, d in seen if n == "response.custom_tool_call_input.done")
    assert custom_done["input"] == PATCH
    assert [d["output_index"] for n, d in seen if n == "response.output_item.done"] == [0, 1, 2, 3]
    final = seen[-1][1]["response"]
    assert [item["status"] for item in final["output"]] == ["completed"] * 4
    assert final["output"][2]["input"] == PATCH


def test_the_sdk_accumulates_a_rendered_stream_into_the_same_response():
    body = run(ResponsesStream(info_for()), tool_stream())
    client = openai_client(body, sse=True)
    with client.responses.stream(model="gpt-5.5", input="hi") as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [item.type for item in response.output] == [
        "message",
        "function_call",
        "custom_tool_call",
        "function_call",
    ]
    assert response.output_text == "On it."
    assert response.output[2].input == PATCH
    assert response.usage is not None and response.usage.total_tokens == 70


def test_the_sdk_reads_every_streamed_event_type():
    body = run(ResponsesStream(info_for()), TEXT_STREAM[:3] + tool_stream()[2:])
    stream = openai_client(body, sse=True).responses.create(model="m", input="hi", stream=True)
    kinds = {type(event).__name__ for event in stream}
    assert {"ResponseCreatedEvent", "ResponseTextDeltaEvent", "ResponseOutputItemDoneEvent",
            "ResponseFunctionCallArgumentsDeltaEvent", "ResponseCustomToolCallInputDoneEvent",
            "ResponseCompletedEvent"} <= kinds  # fmt: skip


def test_a_length_stop_ends_with_response_incomplete():
    pieces = [chunk({"content": "cut"}), chunk({}, "length"), chunk(None, usage={})]
    seen = events(run(ResponsesStream(info_for()), pieces))
    assert seen[-1][0] == "response.incomplete"
    assert seen[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_finish_closes_a_stream_the_upstream_left_open():
    renderer = ResponsesStream(info_for())
    out = renderer.feed(chunk({"content": "partial"})) + renderer.finish()
    names = [name for name, _ in events(out)]
    assert names[-2:] == ["response.output_item.done", "response.completed"]
    assert renderer.closed and renderer.finish() == b""


def test_an_error_mid_stream_is_response_failed():
    renderer = ResponsesStream(info_for())
    out = renderer.feed(TEXT_STREAM[1])
    out += renderer.error(ContextWindowExceeded("The prompt is too long."))
    name, data = events(out)[-1]
    assert name == "response.failed"
    assert data["response"]["status"] == "failed"
    assert data["response"]["error"] == {
        "code": "context_length_exceeded",
        "message": "The prompt is too long.",
    }
    assert renderer.closed and renderer.feed(TEXT_STREAM[2]) == b""


def test_a_failure_before_any_chunk_still_opens_the_response():
    seen = events(ResponsesStream(info_for()).error(AllTargetsFailed("g", [], rate_limited=True)))
    assert [name for name, _ in seen] == ["response.created", "response.in_progress",
                                          "response.failed"]  # fmt: skip
    assert seen[-1][1]["response"]["error"]["code"] == "rate_limit_exceeded"
    assert [d["sequence_number"] for _, d in seen] == [0, 1, 2]


def test_the_sdk_reads_response_failed():
    responses = importlib.import_module("openai.types.responses")
    renderer = ResponsesStream(info_for())
    body = renderer.feed(TEXT_STREAM[1]) + renderer.error(AllTargetsFailed("g", []))
    stream = openai_client(body, sse=True).responses.create(model="m", input="hi", stream=True)
    last = list(stream)[-1]
    assert isinstance(last, responses.ResponseFailedEvent)
    assert last.response.error is not None and last.response.error.code == "server_error"


def test_the_pipeline_sse_is_translated_error_document_included():
    renderer = ResponsesStream(info_for())
    piece = b"data: " + TEXT_STREAM[1] + b"\n\n"
    error = {"error": {"message": "upstream died", "type": "api_error", "param": None,
                       "code": "upstream_error"}}  # fmt: skip
    out = renderer.feed_sse(piece[:7]) + renderer.feed_sse(piece[7:])
    out += renderer.feed_sse(b"data: " + orjson.dumps(error) + b"\n\ndata: [DONE]\n\n")
    seen = events(out)
    assert seen[-1][0] == "response.failed"
    assert seen[-1][1]["response"]["error"] == {"code": "server_error", "message": "upstream died"}


def test_the_pipeline_sse_done_finishes_the_stream():
    raw = b"".join(b"data: " + piece + b"\n\n" for piece in TEXT_STREAM[:4]) + b"data: [DONE]\n\n"
    seen = events(ResponsesStream(info_for()).feed_sse(raw))
    assert seen[-1][0] == "response.completed"


# --- errors ------------------------------------------------------------------------------


def test_errors_render_in_openai_shape():
    err = AllTargetsFailed("g", [], rate_limited=True, retry_after=2)
    status, body = render_error(err)
    assert status == 429
    assert orjson.loads(body) == {
        "error": {
            "message": err.message,
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    openai = importlib.import_module("openai")
    client = openai_client(body, status=status)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="m", input="hi")


def test_the_front_door_can_pass_the_scrubbed_message():
    err = BadRequest("key sk-secret is wrong", param="x")
    status, body = render_error(err, "key sk-…cret is wrong")
    assert (status, orjson.loads(body)["error"]["message"]) == (400, "key sk-…cret is wrong")
    streamed = events(ResponsesStream(info_for()).error(err, "key sk-…cret is wrong"))
    assert streamed[-1][1]["response"]["error"] == {"code": "invalid_prompt",
                                                    "message": "key sk-…cret is wrong"}  # fmt: skip


def test_render_error_matches_the_chat_routes():
    from proxy.endpoints import openai_chat

    err = AllTargetsFailed("g", [])
    assert render_error(err) == openai_chat.render_error(err, err.message)


async def _translated(pieces: list[bytes], *, with_docs: bool) -> tuple[bytes, list[Any]]:
    """Runs TranslatedStream over a pipeline-like stream: each piece's chunks go to `docs`
    (as the pipeline's `_take` does) just before the piece's bytes are yielded."""
    from proxy.http.agent_routes import TranslatedStream

    docs: list[Any] = []

    async def pipeline() -> Any:
        for piece in pieces:
            if with_docs:
                docs.append(orjson.loads(piece))
            yield b"data: " + piece + b"\n\n"
        yield b"data: [DONE]\n\n"  # no chunks: rendered from its bytes

    stream = TranslatedStream(pipeline(), ResponsesStream(info_for()), docs)
    return b"".join([part async for part in stream]), docs


async def test_a_translated_stream_renders_the_chunks_handed_over_as_from_their_bytes():
    from_docs, left = await _translated(TEXT_STREAM, with_docs=True)
    from_bytes, _ = await _translated(TEXT_STREAM, with_docs=False)
    assert from_docs == from_bytes and left == []  # each piece's chunks used once
    kinds = [name for name, _ in events(from_docs)]
    assert kinds.count("response.output_text.delta") == 2 and kinds[-1] == "response.completed"
