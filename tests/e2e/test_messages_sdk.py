"""The official `anthropic` Python SDK on the proxy's Messages front door (`/v1/messages`,
`/v1/messages/count_tokens`), against the strict fake upstreams over real sockets.

- An Anthropic group: pass-through. The fake receives the client's body with only `model`
  replaced, `anthropic-version` / `anthropic-beta` forwarded; the stream comes back event for
  event; thinking blocks and their signatures survive both ways.
- An OpenAI group: translated. Plain, streamed through the SDK's accumulator (text and a
  tool_use with parsed input), a tool round trip, count_tokens.
- Both key headers authenticate; every error is Anthropic's shape and maps to the SDK's
  exception class (401, 404, 400, 429, 529).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.upstream import FakeUpstream, error, overloaded, rate_limit, reply

KEY_A = "sk-ant-upstream-aaaa-1111"
KEY_B = "sk-ant-upstream-bbbb-2222"
KEY_C = "sk-oai-upstream-cccc-3333"
KEY_D = "sk-oai-upstream-dddd-4444"
CLAUDE_MODEL = "claude-sonnet-4-20250514"
GPT_MODEL = "gpt-4o"
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "toolu_weather_01"}
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
GROUPS = ["claude", "gpt"]


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    """An Anthropic group and an OpenAI group, two deployments (keys) each; one retry, so a
    failure moves to the group's other deployment."""
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="claude-a", model=CLAUDE_MODEL),
        anthropic_deployment("claude", fake, KEY_B, id="claude-b", model=CLAUDE_MODEL),
        openai_deployment("gpt", fake, KEY_C, id="gpt-c", model=f"openai/{GPT_MODEL}"),
        openai_deployment("gpt", fake, KEY_D, id="gpt-d", model=f"openai/{GPT_MODEL}"),
        openai_deployment("o4", fake, KEY_C, id="o4-c", model="openai/o4-mini"),
    ]
    settings = {"num_retries": 1, "cooldown_time": 1}
    return start_proxy({"model_list": deps, "router_settings": settings}, master_key=MASTER_KEY)


@pytest.fixture
def sdk(proxy: Proxy) -> Iterator[Callable[..., anthropic.Anthropic]]:
    """Returns `make(**kw) -> anthropic.Anthropic` at the proxy (the master key as x-api-key
    unless `auth_token` or `api_key` is given); every client is closed afterwards."""
    made: list[anthropic.Anthropic] = []

    def make(**kw: Any) -> anthropic.Anthropic:
        if "auth_token" not in kw:
            kw.setdefault("api_key", MASTER_KEY)
        client = anthropic.Anthropic(base_url=proxy.url, max_retries=0, timeout=30, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(sdk: Callable[..., anthropic.Anthropic]) -> anthropic.Anthropic:
    return sdk()


def upstream_body(fake: FakeUpstream, path: str = MESSAGES) -> dict[str, Any]:
    """The body of the last request the fake received on `path`."""
    calls = fake.calls(path=path)
    assert calls, f"the fake received nothing on {path}: {[s.path for s in fake.requests]}"
    return dict(calls[-1].body)


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, parsed data) for every event of a Messages SSE body."""
    out: list[tuple[str, dict[str, Any]]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if data:
            out.append((name, json.loads(data)))
    return out


def plain(block: Any) -> dict[str, Any]:
    """A content block of an SDK answer as the dict to send back in the next turn."""
    return dict(block.model_dump(exclude_none=True))


# ---- (a) an Anthropic group: pass-through ----


def test_passthrough_body_is_the_clients_with_only_model_replaced(client, fake) -> None:
    params: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 321,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What is the weather?"},
        ],
        "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "user-123"},
    }
    extra = {"temperature": 0.25, "top_k": 7}  # no longer named parameters of this SDK
    beta = "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    answer = client.messages.create(
        **params, extra_body=extra, extra_headers={"anthropic-beta": beta}
    )
    assert answer.content[0].text == "Hello! This is the fake upstream."
    seen = fake.calls(path=MESSAGES)[-1]
    assert seen.body == {**params, **extra, "model": CLAUDE_MODEL}
    assert seen.headers["anthropic-beta"] == beta
    assert seen.headers["anthropic-version"] == client.default_headers["anthropic-version"]
    assert seen.key in (KEY_A, KEY_B)


def test_beta_route_with_query_string_passes_betas(client, fake) -> None:
    """What Claude Code calls: `POST /v1/messages?beta=true` with `anthropic-beta`."""
    betas = ["context-management-2025-06-27", "fine-grained-tool-streaming-2025-05-14"]
    answer = client.beta.messages.create(model="claude", max_tokens=50, messages=HELLO, betas=betas)
    assert answer.content[0].type == "text"
    seen = fake.calls(path=MESSAGES)[-1]
    assert seen.headers["anthropic-beta"] == ",".join(betas)
    assert seen.body == {"model": CLAUDE_MODEL, "max_tokens": 50, "messages": HELLO}


def test_passthrough_stream_is_relayed_event_for_event(proxy, fake) -> None:
    """The proxy's SSE equals what the upstream sends for the same body (only the id, which
    the fake numbers per request, differs), the `ping` included."""
    fake.set_default(reply("One two three.", reasoning="Think about it."))
    body = {"model": "claude", "max_tokens": 2048, "messages": HELLO, "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024}}  # fmt: skip
    with proxy.client() as c:
        via_proxy = c.post(MESSAGES, json=body)
    direct_headers = {"x-api-key": KEY_A, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=fake.url, timeout=30) as c:
        direct = c.post(MESSAGES, json={**body, "model": CLAUDE_MODEL}, headers=direct_headers)
    assert direct.status_code == 200, direct.text
    assert via_proxy.status_code == 200, via_proxy.text
    assert via_proxy.headers["content-type"].startswith("text/event-stream")

    def normalized(text: str) -> list[tuple[str, dict[str, Any]]]:
        events = sse_events(text)
        for name, data in events:
            if name == "message_start":
                data["message"]["id"] = "msg_X"
        return events

    got, want = normalized(via_proxy.text), normalized(direct.text)
    assert [name for name, _ in got].count("ping") == 1
    assert got == want


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks_and_signatures_survive(client, fake, stream) -> None:
    fake.script(reply("The answer is 4.", reasoning="Two plus two is four."))
    params: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "What is 2+2?"}],
    }
    if stream:
        with client.messages.stream(**params) as s:
            answer = s.get_final_message()
    else:
        answer = client.messages.create(**params)
    thinking, text = answer.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Two plus two is four."
    assert thinking.signature == "fakesig=="
    assert text.text == "The answer is 4."
    # The next turn sends the signed block back; it reaches the upstream untouched.
    turn = [
        *params["messages"],
        {"role": "assistant", "content": [plain(b) for b in answer.content]},
        {"role": "user", "content": "And 3+3?"},
    ]
    client.messages.create(**{**params, "messages": turn})
    sent = upstream_body(fake)["messages"][1]["content"][0]
    assert sent == {"type": "thinking", "thinking": "Two plus two is four.",
                    "signature": "fakesig=="}  # fmt: skip


def test_passthrough_usage_and_headers(client, fake) -> None:
    usage = {"input_tokens": 40, "output_tokens": 9, "cache_read_input_tokens": 30,
             "cache_creation_input_tokens": 5}  # fmt: skip
    fake.script(reply("cached", usage=usage))
    raw = client.messages.with_raw_response.create(model="claude", max_tokens=10, messages=HELLO)
    answer = raw.parse()
    assert answer.usage.input_tokens == 40
    assert answer.usage.output_tokens == 9
    assert answer.usage.cache_read_input_tokens == 30
    assert answer.usage.cache_creation_input_tokens == 5
    assert raw.headers["x-llmproxy-provider"] == "anthropic"
    assert raw.headers["x-llmproxy-deployment"] in ("claude-a", "claude-b")


def test_upstream_400_comes_back_as_the_upstreams_error(client, fake) -> None:
    fake.script(error(400, "messages.0.content: something is off", type="invalid_request_error"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "something is off" in caught.value.body["error"]["message"]
    assert len(fake.calls(path=MESSAGES)) == 1  # a 400 is not retried


# ---- (b) an OpenAI group: translated ----


def test_translated_plain_create(client, fake) -> None:
    answer = client.messages.create(
        model="gpt", max_tokens=100, system="Be terse.", messages=HELLO,
        extra_body={"temperature": 0.5},
    )  # fmt: skip
    assert answer.type == "message" and answer.role == "assistant"
    assert answer.id.startswith("msg_")
    assert answer.model == "gpt"
    assert [b.type for b in answer.content] == ["text"]
    assert answer.content[0].text == "Hello! This is the fake upstream."
    assert answer.stop_reason == "end_turn"
    assert answer.usage.input_tokens == 4  # the fake counts words: "Be terse." + "Hello there"
    assert answer.usage.output_tokens == 6
    body = upstream_body(fake, CHAT)
    assert body["model"] == GPT_MODEL
    assert body["max_tokens"] == 100 and body["temperature"] == 0.5
    assert body["messages"][0]["role"] == "system"
    assert "Be terse." in json.dumps(body["messages"][0])
    assert body["messages"][-1]["role"] == "user"
    assert fake.calls(path=MESSAGES) == []


def test_translated_stream_with_the_sdk_accumulator(client, fake) -> None:
    fake.script(reply("Let me check.", tool_calls=[CALL]))
    kinds: list[str] = []
    json_pieces: list[str] = []
    with client.messages.stream(
        model="gpt", max_tokens=200, messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
    ) as stream:  # fmt: skip
        for event in stream:
            kinds.append(event.type)
            if event.type == "input_json":
                json_pieces.append(event.partial_json)
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    for kind in ("content_block_start", "content_block_delta", "content_block_stop",
                 "message_delta", "text", "input_json"):  # fmt: skip
        assert kind in kinds, (kind, kinds)
    text, tool = final.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool.type == "tool_use"
    assert tool.name == "get_weather"
    assert tool.id == "toolu_weather_01"
    assert tool.input == {"city": "Paris"}
    assert json.loads("".join(json_pieces)) == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 1  # the upstream's count ("Weather?"), from message_delta
    assert final.usage.output_tokens > 0
    body = upstream_body(fake, CHAT)
    assert body["stream"] is True
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", ["o4", "gpt"])
def test_translated_reasoning_content_becomes_a_thinking_block(client, fake, group, stream):
    """`thinking` becomes `reasoning_effort` for a reasoning model (dropped for gpt-4o, which
    refuses it); the upstream's `reasoning_content` comes back as a thinking block."""
    fake.script(reply("The answer is 4.", reasoning="Two plus two is four."))
    params: dict[str, Any] = {
        "model": group,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "What is 2+2?"}],
    }
    if stream:
        with client.messages.stream(**params) as s:
            answer = s.get_final_message()
    else:
        answer = client.messages.create(**params)
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].thinking == "Two plus two is four."
    assert answer.content[1].text == "The answer is 4."
    sent = upstream_body(fake, CHAT)
    assert sent.get("reasoning_effort") == ("low" if group == "o4" else None)
    # Sent back next turn (its signature is empty: not Anthropic's), it must not break the call.
    turn = [
        *params["messages"],
        {"role": "assistant", "content": [plain(b) for b in answer.content]},
        {"role": "user", "content": "And 3+3?"},
    ]
    again = client.messages.create(**{**params, "messages": turn})
    assert again.content[-1].type == "text"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", GROUPS)
def test_running_out_of_tokens_is_stop_reason_max_tokens(client, fake, group, stream) -> None:
    fake.script(reply("cut short", finish_reason="length"))
    params = {"model": group, "max_tokens": 2, "messages": HELLO}
    if stream:
        with client.messages.stream(**params) as s:
            answer = s.get_final_message()
    else:
        answer = client.messages.create(**params)
    assert answer.stop_reason == "max_tokens"
    assert answer.content[0].text == "cut short"


def test_translated_takes_what_claude_code_sends(client, fake) -> None:
    """System entries inside `messages`, a JSON `metadata.user_id`, adaptive thinking with
    output_config, `cache_control` and `defer_loading`; betas never reach OpenAI."""
    user_id = json.dumps({"device_id": "dev-1", "account_uuid": "acct-1", "session_id": "s-1"})
    answer = client.messages.create(
        model="gpt",
        max_tokens=256,
        system=[{"type": "text", "text": "You are Claude Code.",
                 "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Reminder: be brief."},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What now?"},
        ],
        tools=[{**WEATHER, "defer_loading": True}],
        thinking={"type": "adaptive"},
        output_config={"effort": "medium"},
        metadata={"user_id": user_id},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
    )  # fmt: skip
    assert answer.content[0].text == "Hello! This is the fake upstream."
    seen = fake.calls(path=CHAT)[-1]
    assert "anthropic-beta" not in seen.headers
    text = json.dumps(seen.body)
    assert "Reminder: be brief." in text and "You are Claude Code." in text
    assert "cache_control" not in text and "defer_loading" not in text
    assert "context_management" not in text
    assert seen.body["user"] == "acct-1"


PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_translated_images_documents_and_tool_result_blocks(client, fake) -> None:
    """What OpenAI takes: images as image_url, a PDF as a file part, a text document as text,
    and a tool_result's image moved out of the tool message (which takes text only)."""
    shot = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            shot,
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "title": "spec.pdf", "source": {
                "type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": "plain doc text"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "screenshot taken"}, shot]},
            {"type": "text", "text": "What do you see?"}]},
    ]  # fmt: skip
    answer = client.messages.create(model="gpt", max_tokens=50, messages=messages, tools=[WEATHER])
    assert answer.content[0].text == "Hello! This is the fake upstream."
    sent = upstream_body(fake, CHAT)["messages"]
    parts = sent[0]["content"]
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}} in parts
    assert {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}} in parts
    (pdf,) = [p for p in parts if p["type"] == "file"]
    assert pdf["file"]["file_data"] == "data:application/pdf;base64,JVBERi0xLjQK"
    assert {"type": "text", "text": "plain doc text"} in parts
    (tool,) = [m for m in sent if m["role"] == "tool"]
    assert tool["tool_call_id"] == "toolu_1"
    tool_parts = tool["content"] if isinstance(tool["content"], list) else []
    assert all(p["type"] == "text" for p in tool_parts)
    assert "screenshot taken" in json.dumps(tool["content"])
    after = sent[sent.index(tool) + 1 :]
    assert any(PNG in json.dumps(m) for m in after)  # the image still reaches the model
    assert "What do you see?" in json.dumps(after)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", GROUPS)
def test_tool_round_trip(client, fake, group, stream) -> None:
    fake.script(reply(tool_calls=[CALL]), reply("It is sunny in Paris."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    params = {"model": group, "max_tokens": 300, "tools": [WEATHER]}
    if stream:
        with client.messages.stream(**params, messages=messages) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**params, messages=messages)
    assert first.stop_reason == "tool_use"
    (tool,) = [b for b in first.content if b.type == "tool_use"]
    assert (tool.name, tool.input) == ("get_weather", {"city": "Paris"})
    messages += [
        {"role": "assistant", "content": [plain(b) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                      "content": [{"type": "text", "text": "sunny, 24 C"}]}]},
    ]  # fmt: skip
    final = client.messages.create(**params, messages=messages)
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "It is sunny in Paris."
    if group == "claude":
        sent = upstream_body(fake)["messages"]
        assert sent == messages  # pass-through: the history as the client sent it
    else:
        sent = upstream_body(fake, CHAT)["messages"]
        call = sent[1]["tool_calls"][0]
        assert sent[1]["role"] == "assistant" and call["id"] == tool.id
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert sent[2]["role"] == "tool" and sent[2]["tool_call_id"] == tool.id
        assert "sunny, 24 C" in json.dumps(sent[2]["content"])


def test_count_tokens_on_an_openai_group_is_estimated_locally(client, fake) -> None:
    short = client.messages.count_tokens(model="gpt", messages=HELLO)
    longer = client.messages.count_tokens(
        model="gpt", system="You are a careful assistant. " * 20, messages=HELLO, tools=[WEATHER]
    )
    assert short.input_tokens >= 1
    assert longer.input_tokens > short.input_tokens + 100
    assert fake.requests == []  # an estimate: no upstream call


def test_count_tokens_on_an_anthropic_group_is_forwarded(client, fake) -> None:
    words = "one two three four five six seven eight nine ten eleven twelve"
    counted = client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": words}]
    )
    seen = fake.calls(path="/v1/messages/count_tokens")
    assert len(seen) == 1
    assert seen[0].body == {"model": CLAUDE_MODEL,
                            "messages": [{"role": "user", "content": words}]}  # fmt: skip
    assert counted.input_tokens == 12  # the fake's count (words), not the proxy's estimate


def test_count_tokens_falls_back_to_an_estimate_when_anthropic_refuses(client, fake) -> None:
    fake.rejected_keys.update({KEY_A, KEY_B})
    counted = client.messages.count_tokens(model="claude", messages=HELLO)
    assert counted.input_tokens >= 1
    assert fake.calls(path="/v1/messages/count_tokens")  # it was asked first


def test_count_tokens_unknown_model_is_404(client, fake) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model="no-such-group", messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"


# ---- auth ----


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_x_api_key_and_bearer_both_authenticate(sdk, fake, how) -> None:
    client = sdk(**{how: MASTER_KEY})
    answer = client.messages.create(model="gpt", max_tokens=10, messages=HELLO)
    assert answer.content[0].text == "Hello! This is the fake upstream."


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_wrong_key_is_401_authentication_error(sdk, fake, how) -> None:
    client = sdk(**{how: "sk-not-the-master-key"})
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="gpt", max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert "sk-not-the-master-key" not in json.dumps(caught.value.body)
    assert fake.requests == []


@pytest.mark.parametrize("path", ["/messages?beta=true", "/v1/messages?beta=true&x=1"])
@pytest.mark.parametrize("header", ["x-api-key", "api-key", "authorization"])
def test_routes_without_v1_with_a_query_and_every_key_header(proxy, fake, path, header) -> None:
    key = f"Bearer {MASTER_KEY}" if header == "authorization" else MASTER_KEY
    body = {"model": "claude", "max_tokens": 10, "messages": HELLO}
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        response = c.post(path, json=body, headers={header: key, "anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Hello! This is the fake upstream."
    assert fake.calls(path=MESSAGES)[-1].key in (KEY_A, KEY_B)
    assert MASTER_KEY not in json.dumps(fake.calls(path=MESSAGES)[-1].headers)


def test_no_key_is_401_in_anthropics_shape(proxy, fake) -> None:
    body = {"model": "gpt", "max_tokens": 10, "messages": HELLO}
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        for path in (MESSAGES, "/v1/messages/count_tokens"):
            response = c.post(path, json=body)
            assert response.status_code == 401, path
            doc = response.json()
            assert doc["type"] == "error" and doc["error"]["type"] == "authentication_error"
            assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    assert fake.requests == []


# ---- errors: Anthropic's shape, the SDK's exception classes ----


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_not_found_error(client, fake, stream) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        if stream:
            with client.messages.stream(model="no-such-group", max_tokens=10, messages=HELLO) as s:
                s.get_final_message()
        else:
            client.messages.create(model="no-such-group", max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "no-such-group" in caught.value.body["error"]["message"]
    assert fake.requests == []


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10, "messages": "not a list"}, "messages"),
        ({"max_tokens": 10, "extra_body": {"temperature": 7}}, "temperature"),
        ({"max_tokens": 10, "tools": [{"input_schema": {}}]}, "tools"),
    ],
)
def test_bad_body_is_400_bad_request_error(client, fake, group, extra, field) -> None:
    params = {"model": group, "messages": HELLO, **extra}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**params)
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert field in caught.value.body["error"]["message"]
    assert fake.requests == []  # refused before any upstream call


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", GROUPS)
def test_every_key_rate_limited_is_429_rate_limit_error(client, fake, group, stream) -> None:
    fake.set_default(rate_limit(3))
    with pytest.raises(anthropic.RateLimitError) as caught:
        if stream:
            with client.messages.stream(model=group, max_tokens=10, messages=HELLO) as s:
                s.get_final_message()
        else:
            client.messages.create(model=group, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    keys = {KEY_A, KEY_B} if group == "claude" else {KEY_C, KEY_D}
    assert {s.key for s in fake.requests} == keys  # every deployment was tried
    message = caught.value.body["error"]["message"]
    assert all(key not in message for key in keys)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", GROUPS)
def test_every_deployment_overloaded_is_529_overloaded_error(client, fake, group, stream) -> None:
    fake.set_default(overloaded())
    with pytest.raises(anthropic.OverloadedError) as caught:
        if stream:
            with client.messages.stream(model=group, max_tokens=10, messages=HELLO) as s:
                s.get_final_message()
        else:
            client.messages.create(model=group, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 529
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "overloaded_error"
    keys = {KEY_A, KEY_B} if group == "claude" else {KEY_C, KEY_D}
    assert {s.key for s in fake.requests} == keys
