"""The fake upstream's OpenAI Responses API (`POST /v1/responses`), parsed by the official
openai SDK (`client.responses.create`, plain and stream) pointed at the fake directly; plus the
fake's support for agent runs: tool loops in all three wire formats, count_tokens, HEAD probes
and the Messages shapes current Claude Code sends.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.exchange import Exchange
from tests.fakes.recorded import FIXTURES, sse_events
from tests.fakes.responses_wire import decrypt, encrypt
from tests.fakes.turns import decide, offered_tools, tool_result
from tests.fakes.upstream import (
    DEFAULT_CONTENT,
    FakeUpstream,
    Reply,
    context_too_long,
    error,
    rate_limit,
    reply,
    stream_cut,
    stream_error_first,
    tool_loop,
)

KEY = "sk-test-responses-1"
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files (freeform)"},
    {"type": "namespace", "name": "agents", "description": "Sub-agents",
     "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
]  # fmt: skip
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
A_HEADERS = {"x-api-key": "ak-1", "anthropic-version": "2023-06-01"}


@pytest.fixture
def up():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def client(up: FakeUpstream):
    with openai.OpenAI(base_url=up.openai_base, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def raw(up: FakeUpstream, body: Any, key: str = KEY) -> httpx.Response:
    with httpx.Client(base_url=up.openai_base) as http:
        return http.post("/responses", json=body, headers={"authorization": f"Bearer {key}"})


def events_of(up: FakeUpstream, **body: Any) -> list[tuple[str | None, Any]]:
    response = raw(up, {"model": "gpt-5", "input": "hi", "stream": True, **body})
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


# -- plain -------------------------------------------------------------------------------


def test_plain_response_parsed_by_the_sdk(up, client):
    answer = client.responses.create(model="gpt-5", input="hi there", instructions="Be brief.")
    assert answer.object == "response" and answer.status == "completed"
    assert answer.id.startswith("resp_") and answer.model == "gpt-5"
    assert answer.output_text == DEFAULT_CONTENT
    [message] = answer.output
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert answer.instructions == "Be brief." and answer.store is True
    usage = answer.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (4, 6, 10)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    [seen] = up.calls(key=KEY, path="/v1/responses")
    assert seen.body["input"] == "hi there"
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_message_items_input_and_echoed_parameters(client):
    items = [
        {"type": "message", "role": "developer", "content": "Answer in one word."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a b"}]},
    ]
    answer = client.responses.create(
        model="gpt-5", input=items, max_output_tokens=50, temperature=0.5, store=False,
        reasoning={"effort": "low"}, text={"verbosity": "low"}, prompt_cache_key="k1",
        metadata={"run": "1"},
    )  # fmt: skip
    assert answer.usage.input_tokens == 6
    assert answer.max_output_tokens == 50 and answer.temperature == 0.5
    assert answer.store is False and answer.reasoning.effort == "low"
    assert answer.text.verbosity == "low" and answer.prompt_cache_key == "k1"
    assert answer.metadata == {"run": "1"}


def test_function_custom_and_namespaced_calls(up, client):
    calls = [CALL, {"name": "apply_patch", "input": PATCH}, {"name": "spawn", "arguments": {}}]
    up.script(reply(tool_calls=calls))
    answer = client.responses.create(model="gpt-5", input="go", tools=TOOLS)
    function, custom, nested = answer.output
    assert function.type == "function_call" and function.name == "get_weather"
    assert json.loads(function.arguments) == CALL["arguments"]
    assert function.call_id.startswith("call_") and function.id.startswith("fc_")
    assert custom.type == "custom_tool_call" and custom.input == PATCH
    assert custom.call_id.startswith("call_") and custom.name == "apply_patch"
    assert nested.type == "function_call" and nested.namespace == "agents"
    assert answer.output_text == ""


def test_tool_calls_only_when_the_request_offers_tools(up, client):
    up.script(reply("plain", tool_calls=[CALL]))
    answer = client.responses.create(model="gpt-5", input="go")
    assert [o.type for o in answer.output] == ["message"] and answer.output_text == "plain"


def test_reasoning_item_carries_encrypted_content_only_when_included(up, client):
    up.script(reply("x", reasoning="think it over"), reply("x", reasoning="think it over"))
    asked = client.responses.create(
        model="gpt-5", input="hi", include=["reasoning.encrypted_content"], store=False
    )
    plain = client.responses.create(model="gpt-5", input="hi")
    reasoning = asked.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "think it over"
    assert decrypt(reasoning.encrypted_content) == "think it over"
    assert plain.output[0].encrypted_content is None
    assert asked.usage.output_tokens_details.reasoning_tokens == 3
    assert asked.usage.output_tokens == 1 + 3


def test_replayed_items_are_checked(up, client):
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
            "arguments": "{}"}  # fmt: skip
    output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    good = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": encrypt("t")}
    forged = good | {"encrypted_content": "bm90IG91cnM="}
    answer = client.responses.create(
        model="gpt-5", input=[good, call, output], tools=TOOLS[:1], store=False
    )
    assert answer.status == "completed"
    with pytest.raises(openai.BadRequestError) as orphan:
        client.responses.create(model="gpt-5", input=[output])
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="gpt-5", input=[forged, call, output])
    assert "No tool call found" in orphan.value.message and orphan.value.param == "input"
    assert bad.value.code == "invalid_encrypted_content"
    assert len(up.calls(path="/v1/responses")) == 3


def test_previous_response_id_resolves_only_stored_responses(client):
    stored = client.responses.create(model="gpt-5", input="one")
    unstored = client.responses.create(model="gpt-5", input="two", store=False)
    follow = client.responses.create(model="gpt-5", input="three", previous_response_id=stored.id)
    assert follow.previous_response_id == stored.id
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="gpt-5", input="four", previous_response_id=unstored.id)
    assert missing.value.code == "previous_response_not_found"
    assert missing.value.param == "previous_response_id"


def test_incomplete_when_the_output_limit_is_hit(up, client):
    up.script(reply("cut short", finish_reason="length"), reply("cut", finish_reason="length"))
    answer = client.responses.create(model="gpt-5", input="hi", max_output_tokens=2)
    assert answer.status == "incomplete"
    assert answer.incomplete_details.reason == "max_output_tokens"
    events = [e.type for e in client.responses.create(model="gpt-5", input="hi", stream=True)]
    assert events[-1] == "response.incomplete"


# -- stream ------------------------------------------------------------------------------


def test_text_stream_parsed_by_the_sdk(client):
    stream = client.responses.create(model="gpt-5", input="hi there", stream=True)
    events = list(stream)
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * 6,
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress" and events[0].response.usage is None
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == DEFAULT_CONTENT == events[-2].item.content[0].text
    done = events[-1].response
    assert done.status == "completed" and done.usage.total_tokens == 2 + 6
    assert done.output_text == DEFAULT_CONTENT and done.id == events[0].response.id


def test_stream_helper_accumulates_tools_and_reasoning(up, client):
    calls = [CALL, {"name": "apply_patch", "input": PATCH}]
    up.script(reply(tool_calls=calls, reasoning="plan the edit"))
    with client.responses.stream(
        model="gpt-5", input="go", tools=TOOLS, include=["reasoning.encrypted_content"]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert [o.type for o in final.output] == ["reasoning", "function_call", "custom_tool_call"]
    assert json.loads(final.output[1].arguments) == CALL["arguments"]
    assert final.output[2].input == PATCH
    assert decrypt(final.output[0].encrypted_content) == "plan the edit"
    for kind in (
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ):
        assert kind in kinds, kind


def test_stream_wire_every_event_named_by_its_type(up):
    up.script(reply("a b", tool_calls=[CALL]))
    events = events_of(up, tools=TOOLS[:1])
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert "[DONE]" not in [data for _, data in events]
    deltas = [d for _, d in events if d["type"] == "response.function_call_arguments.delta"]
    [done] = [d for _, d in events if d["type"] == "response.function_call_arguments.done"]
    assert "".join(d["delta"] for d in deltas) == done["arguments"] and done["name"] == CALL["name"]
    assert all(isinstance(d.get("obfuscation"), str) for d in deltas)
    plain = events_of(up, stream_options={"include_obfuscation": False})
    assert not any("obfuscation" in d for _, d in plain)


def test_stream_cut_raises_mid_iteration(up, client):
    up.script(stream_cut(after=2))
    stream = client.responses.create(model="gpt-5", input="hi", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in stream:
            seen.append(event.type)
    assert seen.count("response.output_text.delta") == 2 and "response.completed" not in seen


def test_stream_error_event_parsed_by_the_sdk(up, client):
    up.script(stream_error_first("The server had an error", "server_error"))
    [event] = list(client.responses.create(model="gpt-5", input="hi", stream=True))
    assert event.type == "error" and event.code == "server_error"
    assert event.message == "The server had an error" and event.sequence_number == 0


# -- errors ------------------------------------------------------------------------------


def test_errors_in_openai_shape(up, client):
    up.script(
        rate_limit(2, reset_headers=True), error(500, "boom", code="server_fault"),
        context_too_long(),
    )  # fmt: skip
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="gpt-5", input="hi")
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.create(model="gpt-5", input="hi")
    with pytest.raises(openai.BadRequestError) as too_long:
        client.responses.create(model="gpt-5", input="hi")
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.code == "rate_limit_exceeded"
    assert failed.value.body == {"message": "boom", "type": "server_error", "param": None,
                                 "code": "server_fault"}  # fmt: skip
    assert too_long.value.code == "context_length_exceeded" and too_long.value.param == "input"


def test_rejected_key_and_bad_bodies_consume_no_step(up, client):
    up.rejected_keys.add("sk-bad")
    up.script(reply("the scripted one"))
    with (
        openai.OpenAI(base_url=up.openai_base, api_key="sk-bad", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        bad.responses.create(model="gpt-5", input="hi")
    no_model, no_input = raw(up, {"input": "hi"}), raw(up, {"model": "gpt-5"})
    bad_input = raw(up, {"model": "gpt-5", "input": {"role": "user"}})
    bad_tool = raw(up, {"model": "gpt-5", "input": "hi", "tools": [{"type": "function"}]})
    assert denied.value.code == "invalid_api_key"
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    assert no_input.json()["error"]["code"] == "missing_required_parameter"
    assert bad_input.json()["error"]["code"] == "invalid_type"
    assert bad_tool.json()["error"]["param"] == "tools[0].name"
    assert client.responses.create(model="gpt-5", input="hi").output_text == "the scripted one"


def test_chat_only_switch_answers_404_for_responses(up, client):
    up.responses_api = False
    up.script(reply("kept for chat"))
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="gpt-5", input="hi")
    assert missing.value.body["message"] == "Invalid URL (POST /v1/responses)"
    chat = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "kept for chat"
    up.reset()
    assert up.responses_api is True


# -- agent support: tool loops in every wire format, count_tokens, HEAD --------------------

LOOP = tool_loop({"Bash": {"command": "ls"}, "exec_command": {"cmd": "ls"},
                  "apply_patch": PATCH}, "done: {result}", other="a title")  # fmt: skip


def exchange(path: str, **body: Any) -> Exchange:
    return Exchange(path, body, KEY, 1)


def test_tool_loop_decides_by_what_each_request_carries():
    chat_tools = [{"type": "function", "function": {"name": "Bash", "parameters": {}}}]
    a_tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    cases = [
        (exchange("/v1/chat/completions", messages=[{"role": "user", "content": "t"}]),
         Reply(content="a title")),
        (exchange("/v1/chat/completions", tools=chat_tools,
                  messages=[{"role": "user", "content": "go"}]),
         Reply(tool_calls=({"name": "Bash", "arguments": {"command": "ls"}},))),
        (exchange("/v1/chat/completions", tools=chat_tools, messages=[
            {"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "a.txt\n b.txt"}]),
         Reply(content="done: a.txt b.txt")),
        (exchange("/v1/messages", tools=a_tools, messages=[
            {"role": "user", "content": "go"}, {"role": "system", "content": "reminder"}]),
         Reply(tool_calls=({"name": "Bash", "arguments": {"command": "ls"}},))),
        (exchange("/v1/messages", tools=a_tools, messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash",
                                               "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": [{"type": "text", "text": "ok"}]},
                                         {"type": "text", "text": "<reminder>"}]}]),
         Reply(content="done: ok")),
        (exchange("/v1/responses", tools=TOOLS[1:2], input="go"),
         Reply(tool_calls=({"name": "apply_patch", "input": PATCH},))),
        (exchange("/v1/responses", tools=TOOLS[1:2], input=[
            {"type": "message", "role": "user", "content": "go"},
            {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": PATCH},
            {"type": "custom_tool_call_output", "call_id": "c", "output": "Success."}]),
         Reply(content="done: Success.")),
    ]  # fmt: skip
    translated = [{"name": "apply_patch",
                   "input_schema": {"properties": {"patch": {"type": "string"}}}}]  # fmt: skip
    cases.append(
        (exchange("/v1/messages", tools=translated, messages=[{"role": "user", "content": "go"}]),
         Reply(tool_calls=({"name": "apply_patch", "input": PATCH,
                            "arguments": {"patch": PATCH}},)))
    )  # fmt: skip
    for request, expected in cases:
        assert decide(LOOP, request) == expected, request
    assert offered_tools(exchange("/v1/responses", tools=TOOLS)) == {
        "get_weather": "function", "apply_patch": "custom", "spawn": "namespace:agents"
    }  # fmt: skip
    assert tool_result(exchange("/v1/responses", input="hi")) is None


def test_tool_loop_serves_a_whole_responses_round_trip(up, client):
    up.set_default(tool_loop({"get_weather": {"city": "Oslo"}}, "It is {result}.", other="T"))
    title = client.responses.create(model="gpt-5", input="name this chat")
    first = client.responses.create(model="gpt-5", input="weather?", tools=TOOLS[:1])
    [call] = first.output
    history = [
        {"type": "message", "role": "user", "content": "weather?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "snowing"},
    ]
    second = client.responses.create(model="gpt-5", input=history, tools=TOOLS[:1])
    assert title.output_text == "T" and json.loads(call.arguments) == {"city": "Oslo"}
    assert second.output_text == "It is snowing."


def test_count_tokens_head_probe_and_current_claude_code_shapes(up):
    body = {
        "model": "claude-group", "max_tokens": 32000, "stream": False,
        "thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "one two"},
                     {"role": "system", "content": "three"}],
        "tools": [{"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True}],
    }  # fmt: skip
    counted = {k: body[k] for k in ("model", "messages", "system", "tools")}
    with httpx.Client(base_url=up.url, headers=A_HEADERS) as http:
        message = http.post("/v1/messages", params={"beta": "true"}, json=body)
        count = http.post("/v1/messages/count_tokens", params={"beta": "true"}, json=counted)
        bad_count = http.post("/v1/messages/count_tokens", json={"model": "m"})
        probe = http.head("/api/hello")
    assert message.status_code == 200, message.text
    assert count.json() == {"input_tokens": 2 + 2 + 1}
    assert bad_count.status_code == 400 and "messages: Field required" in bad_count.text
    assert probe.status_code == 200
    assert [s.query for s in up.calls(path="/v1/messages")] == ["beta=true"]
    assert len(up.requests) == 4


# -- the recorded agent requests (tests/fixtures/agents/) are accepted as sent ---------------

AGENT_FIXTURES = sorted((FIXTURES / "agents").glob("*.json"))


@pytest.mark.parametrize("path", AGENT_FIXTURES, ids=lambda p: p.stem)
def test_recorded_agent_requests_are_accepted_by_the_fake(up, path):
    recorded = json.loads(path.read_text())["requests"]
    assert recorded
    with httpx.Client(base_url=up.url) as http:
        for request in recorded:
            headers = {k: v.replace("<key>", KEY) for k, v in request["headers"].items()
                       if k != "accept-encoding"}  # fmt: skip
            answer = http.request(
                request["method"], request["path"], params=request["query"] or None,
                json=request["body"], headers=headers,
            )  # fmt: skip
            assert answer.status_code == 200, (request["path"], answer.text)
