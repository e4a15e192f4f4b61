"""The official `openai` SDK's `client.responses` on the proxy's Responses front door
(`/v1/responses`), against the fake upstreams over real sockets, through three backends:

- `gpt`: an `openai/` deployment whose upstream serves `/v1/responses`: passed through;
- `gpt-chat`: an `openai/` deployment whose upstream answers 404 there (Chat only): translated
  to Chat Completions, and remembered as Chat-only;
- `claude`: an Anthropic deployment: translated to Messages.

Plain, streamed (`client.responses.stream`: the final response, the event types, increasing
`sequence_number`s), function tools (a function_call, then a function_call_output turn), a
custom tool like Codex's apply_patch (a custom_tool_call, then its output), and
`previous_response_id` refused with a 400 naming the field; errors in OpenAI's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.responses_wire import encrypt
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream, rate_limit, reply, tool_loop

KEY_OAI = "sk-oai-upstream-resp-1111"
KEY_CHAT = "sk-oai-upstream-chat-2222"
KEY_ANT = "sk-ant-upstream-resp-3333"
GPT_MODEL = "gpt-5"
"""The pass-through deployment's model: one that reasons, so every reasoning field is kept."""
CHAT_MODEL = "gpt-4o"
CLAUDE_MODEL = "claude-sonnet-4-20250514"
BACKENDS = ["gpt", "gpt-chat", "claude"]
UPSTREAM_PATH = {"gpt": "/v1/responses", "gpt-chat": "/v1/chat/completions",
                 "claude": "/v1/messages"}  # fmt: skip
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files (freeform)"}
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_weather_01"}
PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+hello "world"\n*** End Patch\n'


@pytest.fixture
def chat_only() -> Iterator[FakeUpstream]:
    """A second fake OpenAI upstream that does not serve `/v1/responses` (404)."""
    up = FakeUpstream().start()
    up.responses_api = False
    try:
        yield up
    finally:
        up.stop()


@pytest.fixture
def proxy(fake: FakeUpstream, chat_only: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    deps = [
        openai_deployment("gpt", fake, KEY_OAI, id="gpt-a", model=f"openai/{GPT_MODEL}"),
        openai_deployment(
            "gpt-chat", chat_only, KEY_CHAT, id="chat-a", model=f"openai/{CHAT_MODEL}"
        ),  # fmt: skip
        anthropic_deployment("claude", fake, KEY_ANT, id="claude-a", model=CLAUDE_MODEL),
    ]
    settings = {"num_retries": 0, "cooldown_time": 1}
    return start_proxy({"model_list": deps, "router_settings": settings}, master_key=MASTER_KEY)


@pytest.fixture
def client(proxy: Proxy) -> openai.OpenAI:
    return proxy.openai()  # closed when the proxy stops


def upstream_of(backend: str, fake: FakeUpstream, chat_only: FakeUpstream) -> FakeUpstream:
    return chat_only if backend == "gpt-chat" else fake


def last_body(up: FakeUpstream, backend: str) -> dict[str, Any]:
    """The body of the last request the backend's upstream received on its path."""
    calls = up.calls(path=UPSTREAM_PATH[backend])
    assert calls, f"nothing on {UPSTREAM_PATH[backend]}: {[s.path for s in up.requests]}"
    return dict(calls[-1].body)


def replay(items: list[Any]) -> list[dict[str, Any]]:
    """Output items of a response as input items of the next turn (what Codex sends)."""
    return [item.model_dump(exclude_none=True) for item in items]


# ---- plain ----


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_create(client, fake, chat_only, backend) -> None:
    raw = client.responses.with_raw_response.create(
        model=backend, instructions="Be terse.", input="Hello there", max_output_tokens=200
    )
    response = raw.parse()
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == DEFAULT_CONTENT
    (item,) = response.output
    assert item.type == "message" and item.role == "assistant"
    assert response.usage.input_tokens == 4  # the fake counts words: instructions + input
    assert response.usage.output_tokens == 6
    assert response.usage.total_tokens == 10
    assert raw.headers["x-llmproxy-cache"] == "off"
    up = upstream_of(backend, fake, chat_only)
    body = last_body(up, backend)
    if backend == "gpt":
        assert body == {"model": GPT_MODEL, "instructions": "Be terse.", "input": "Hello there",
                        "max_output_tokens": 200}  # fmt: skip
    elif backend == "gpt-chat":
        assert body["model"] == CHAT_MODEL and body["max_tokens"] == 200
        assert [m["role"] for m in body["messages"]] in (["system", "user"], ["developer", "user"])
    else:
        assert body["model"] == CLAUDE_MODEL and body["max_tokens"] == 200
        assert "Be terse." in json.dumps(body["system"])
        assert body["messages"][-1]["role"] == "user"


def test_passthrough_keeps_every_field_and_encrypted_reasoning(client, fake) -> None:
    fake.script(reply("Four.", reasoning="Two plus two."))
    params: dict[str, Any] = {
        "model": "gpt",
        "input": [{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "input_text", "text": "2+2?"}]}],
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1234",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "tools": [WEATHER, APPLY_PATCH],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }  # fmt: skip
    response = client.responses.create(**params)
    assert fake.calls(path="/v1/responses")[-1].body == {**params, "model": GPT_MODEL}
    reasoning, message = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content == encrypt("Two plus two.")
    assert message.type == "message"
    assert response.output_text == "Four."


def test_a_chat_only_upstream_is_remembered(client, chat_only) -> None:
    for _ in range(3):
        assert client.responses.create(model="gpt-chat", input="Hi").output_text == DEFAULT_CONTENT
    paths = [s.path for s in chat_only.requests]
    assert paths == ["/v1/responses"] + ["/v1/chat/completions"] * 3


# ---- streaming ----


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_final_response_and_events(client, fake, chat_only, backend) -> None:
    kinds: list[str] = []
    numbers: list[int] = []
    deltas: list[str] = []
    with client.responses.stream(model=backend, input="Hello there") as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.content_part.added",
                 "response.output_text.delta", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):  # fmt: skip
        assert kind in kinds, (kind, kinds)
    assert all(b > a for a, b in zip(numbers, numbers[1:], strict=False)), numbers
    assert "".join(deltas) == DEFAULT_CONTENT
    assert final.status == "completed"
    assert final.output_text == DEFAULT_CONTENT
    assert final.usage is not None and final.usage.output_tokens == 6
    assert last_body(upstream_of(backend, fake, chat_only), backend)["stream"] is True


# ---- function tools ----


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_function_tool_round_trip(client, fake, chat_only, backend, stream) -> None:
    up = upstream_of(backend, fake, chat_only)
    up.script(reply(tool_calls=[CALL]), reply("It is sunny in Paris."))
    turn: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.responses.stream(model=backend, input=turn, tools=[WEATHER]) as s:
            kinds = [event.type for event in s]
            first = s.get_final_response()
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
    else:
        first = client.responses.create(model=backend, input=turn, tools=[WEATHER])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id
    assert call.status == "completed"
    turn += [
        *replay(first.output),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
    ]
    final = client.responses.create(model=backend, input=turn, tools=[WEATHER])
    assert final.output_text == "It is sunny in Paris."
    body = last_body(up, backend)
    text = json.dumps(body)
    assert call.call_id in text and "sunny, 24 C" in text
    if backend == "gpt":
        assert body["input"] == turn  # pass-through: the items as the client sent them
    elif backend == "gpt-chat":
        assert body["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id,
                                        "content": "sunny, 24 C"}  # fmt: skip
    else:
        result = body["messages"][-1]["content"][-1]
        assert result["type"] == "tool_result" and result["tool_use_id"] == call.call_id


# ---- a custom (freeform) tool, like Codex's apply_patch ----


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_custom_tool_round_trip(client, fake, chat_only, backend, stream) -> None:
    up = upstream_of(backend, fake, chat_only)
    up.set_default(tool_loop({"apply_patch": PATCH}, final="Patched: {result}"))
    tools = [WEATHER, APPLY_PATCH]
    turn: list[dict[str, Any]] = [{"role": "user", "content": "Create hello.txt"}]
    if stream:
        with client.responses.stream(model=backend, input=turn, tools=tools) as s:
            kinds = [event.type for event in s]
            first = s.get_final_response()
        assert "response.custom_tool_call_input.done" in kinds
    else:
        first = client.responses.create(model=backend, input=turn, tools=tools)
    (call,) = [item for item in first.output if item.type == "custom_tool_call"]
    assert call.name == "apply_patch"
    assert call.input == PATCH
    assert call.call_id
    if backend != "gpt":  # translated: the upstream saw a function with one string argument
        sent = last_body(up, backend)["tools"]
        names = [t.get("name") or t.get("function", {}).get("name") for t in sent]
        assert "apply_patch" in names
    turn += [*replay(first.output), {"type": "custom_tool_call_output", "call_id": call.call_id,
                                     "output": "Done! Added hello.txt"}]  # fmt: skip
    final = client.responses.create(model=backend, input=turn, tools=tools)
    assert final.output_text == "Patched: Done! Added hello.txt"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_running_out_of_tokens_is_an_incomplete_response(client, fake, chat_only, backend, stream):
    upstream_of(backend, fake, chat_only).script(reply("cut short", finish_reason="length"))
    if stream:
        with client.responses.stream(model=backend, input="Hi", max_output_tokens=16) as s:
            events = list(s)  # (the SDK's get_final_response() wants response.completed)
        assert events[-1].type == "response.incomplete"
        response = events[-1].response
    else:
        response = client.responses.create(model=backend, input="Hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "cut short"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hosted_tools_and_replayed_reasoning_never_break_a_translated_upstream(
    client, fake, chat_only, backend
) -> None:
    up = upstream_of(backend, fake, chat_only)
    turn = [
        {"role": "user", "content": "Search the web for news."},
        {"type": "reasoning", "id": "rs_prev_1", "summary": [],
         "encrypted_content": "opaque-from-another-provider"},
        {"type": "message", "role": "assistant", "id": "msg_prev_1", "status": "completed",
         "content": [{"type": "output_text", "text": "On it.", "annotations": []}]},
        {"role": "user", "content": "Go on."},
    ]  # fmt: skip
    tools = [{"type": "web_search"}, WEATHER]
    if backend == "gpt":  # the real API serves hosted tools; the fake checks only reasoning
        turn = [item for item in turn if item.get("type") != "reasoning"]
    response = client.responses.create(
        model=backend, input=turn, tools=tools, include=["reasoning.encrypted_content"],
        store=False, prompt_cache_key="sess-1", text={"verbosity": "low"},
        extra_body={"client_metadata": {"x": "y"}},
    )  # fmt: skip
    assert response.output_text == DEFAULT_CONTENT
    body = last_body(up, backend)
    text = json.dumps(body)
    if backend == "gpt":
        assert body["tools"] == tools
    else:
        assert "web_search" not in text
        assert "opaque-from-another-provider" not in text
        assert "get_weather" in text
        for field in ("include", "store", "prompt_cache_key", "client_metadata", "verbosity"):
            assert field not in body, field


@pytest.mark.parametrize("backend", BACKENDS)
def test_namespace_tools_are_flattened_and_come_back_in_their_namespace(
    client, fake, chat_only, backend
) -> None:
    tools = [{"type": "namespace", "name": "agents", "description": "Sub-agents",
              "tools": [{"type": "function", "name": "spawn",
                         "parameters": {"type": "object",
                                        "properties": {"task": {"type": "string"}}}}]}]  # fmt: skip
    name = "spawn" if backend == "gpt" else "agents__spawn"
    up = upstream_of(backend, fake, chat_only)
    up.script(reply(tool_calls=[{"name": name, "arguments": {"task": "lint"}}]))
    response = client.responses.create(model=backend, input="Lint it", tools=tools)
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "spawn"
    assert call.model_dump().get("namespace") == "agents"
    assert json.loads(call.arguments) == {"task": "lint"}


# ---- stateful fields and errors ----


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_previous_response_id_is_a_400_naming_the_field(client, fake, chat_only, backend, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        if stream:
            with client.responses.stream(
                model=backend, input="and then?", previous_response_id="resp_never_seen_123"
            ) as s:
                s.get_final_response()
        else:
            client.responses.create(
                model=backend, input="and then?", previous_response_id="resp_never_seen_123"
            )
    assert caught.value.status_code == 400
    assert caught.value.param == "previous_response_id"
    assert "previous_response_id" in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"
    assert fake.requests == [] and chat_only.requests == []


@pytest.mark.parametrize("backend", ["gpt", "claude"])  # the fake Chat API takes orphans
def test_an_orphan_tool_output_is_a_4xx_never_a_5xx(client, fake, chat_only, backend) -> None:
    """A function_call_output whose call is not in the input: the upstream refuses it; the
    client gets that refusal as a 4xx in OpenAI's shape."""
    turn = [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call_output", "call_id": "call_nowhere", "output": "sunny"},
    ]
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=backend, input=turn, tools=[WEATHER])
    assert 400 <= caught.value.status_code < 500, caught.value.body
    assert caught.value.body["message"] and caught.value.body["type"]


def test_unknown_model_is_404_model_not_found(client, fake) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-group", input="Hi")
    assert caught.value.code == "model_not_found"
    assert "no-such-group" in caught.value.message
    assert fake.requests == []


def test_wrong_key_is_401(proxy, fake) -> None:
    bad = openai.OpenAI(base_url=proxy.base, api_key="sk-wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as caught:
        bad.responses.create(model="gpt", input="Hi")
    assert caught.value.status_code == 401
    assert "sk-wrong" not in json.dumps(caught.value.body)
    assert fake.requests == []


def test_bad_input_type_is_400_naming_input(client, fake) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude", input=42)  # type: ignore[arg-type]
    assert caught.value.param == "input"
    assert fake.requests == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_rate_limited_upstream_is_429_with_retry_after(client, fake, chat_only, backend) -> None:
    upstream_of(backend, fake, chat_only).set_default(rate_limit(2))
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model=backend, input="Hi")
    assert caught.value.status_code == 429
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.body["type"]
