"""OpenAI-compatible serving end to end: the openai SDK -> proxy -> fake upstream.

Covers tools (plain and streamed), embeddings and completions through the SDK, streaming that is
relayed as it arrives, failover before the first byte, the error event after it, every
OpenAI-compatible provider of the catalog (default base URL, `api_base`, `extra_headers`, prefix
stripping), wildcard groups and the local `mock` provider.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config.catalog import PROVIDERS
from proxy.config.loader import build_config
from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import drop, error, reply, stream_cut, stream_error_first

KEY_A = "sk-upstream-aaaa-0123456789-1111"
KEY_B = "sk-upstream-bbbb-9876543210-2222"
HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}


@pytest.fixture
def proxy(fake, start_proxy):
    return start_proxy(
        {
            "model_list": [
                openai_deployment("gpt-4", fake, KEY_A, id="gpt-4-a"),
                openai_deployment("gpt-4", fake, KEY_B, id="gpt-4-b"),
                openai_deployment("embed", fake, KEY_A, model="openai/text-embedding-3-small"),
            ]
        },
        master_key=MASTER_KEY,
    )


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


# ---- tools ----


def test_tool_calls_reach_the_sdk_intact(proxy, fake) -> None:
    fake.script(reply(tool_calls=[CALL]))
    answer = proxy.openai().chat.completions.create(model="gpt-4", messages=HELLO, tools=TOOLS)
    assert fake.requests[-1].body["tools"] == TOOLS
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == CALL["arguments"]
    assert call.id


def test_streamed_tool_calls_reach_the_sdk_intact(proxy, fake) -> None:
    fake.script(reply(tool_calls=[CALL]))
    stream = proxy.openai().chat.completions.create(
        model="gpt-4", messages=HELLO, tools=TOOLS, stream=True
    )
    name, arguments, ids, finish = "", "", set(), None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert delta.index == 0
            if delta.id:
                ids.add(delta.id)
            if delta.function and delta.function.name:
                name += delta.function.name
            if delta.function and delta.function.arguments:
                arguments += delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == CALL["arguments"]
    assert len(ids) == 1
    assert finish == "tool_calls"
    assert fake.requests[-1].body["tools"] == TOOLS


# ---- the other routes through the SDK ----


def test_embeddings_and_completions_through_the_sdk(proxy, fake) -> None:
    client = proxy.openai()
    emb = client.embeddings.create(model="embed", input=["first text", "second"])
    assert [d.index for d in emb.data] == [0, 1]
    assert len(emb.data[0].embedding) > 0
    assert emb.usage.prompt_tokens > 0
    comp = client.completions.create(model="gpt-4", prompt="Say hello", max_tokens=5)
    assert comp.choices[0].text
    assert fake.calls(path="/v1/completions")[-1].body["model"] == "gpt-4o"


def test_usage_is_the_upstreams_own(proxy, fake) -> None:
    usage = {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}
    fake.script(reply("hi", usage=usage))
    answer = proxy.openai().chat.completions.create(model="gpt-4", messages=HELLO)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (123, 45)
    fake.script(reply("hi", usage=usage))
    chunks = list(
        proxy.openai().chat.completions.create(
            model="gpt-4", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (123, 45)


# ---- streaming ----


def test_stream_chunks_are_relayed_as_they_arrive(proxy, fake) -> None:
    fake.script(reply("one two three four five", chunk_delay=0.2))
    started = time.monotonic()
    arrivals: list[float] = []
    text = ""
    with (
        proxy.client() as c,
        c.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4", "messages": HELLO, "stream": True},
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                doc = json.loads(line[6:])
                piece = (doc["choices"] or [{}])[0].get("delta", {}).get("content")
                if piece:
                    arrivals.append(time.monotonic() - started)
                    text += piece
    assert text == "one two three four five"
    assert len(arrivals) == 5
    # Not buffered: the first word reached us long before the last one was sent.
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals


@pytest.mark.parametrize(
    "failure", [drop(), error(503, "overloaded"), stream_error_first()], ids=str
)
def test_stream_failure_before_first_byte_tries_the_next_deployment(proxy, fake, failure) -> None:
    # Whichever deployment goes first fails; the other one serves the whole stream.
    fake.script(failure)
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="gpt-4", messages=HELLO, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello! This is the fake upstream."
    assert raw.headers["x-llmproxy-attempts"] == "2"
    first, second = fake.requests
    assert {first.key, second.key} == {KEY_A, KEY_B}


def test_stream_failure_after_bytes_ends_with_an_error_event(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("gpt-4", fake, KEY_A, id="solo")]})
    fake.script(stream_cut(after=2))
    body = {"model": "gpt-4", "messages": HELLO, "stream": True}
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])
    assert set(err) == {"error"}
    assert set(err["error"]) == {"message", "type", "param", "code"}
    assert any(json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2])
    # The SDK sees the same as an APIError, not a hang and not a silent truncation.
    fake.script(stream_cut(after=2))
    with pytest.raises(openai.APIError):
        for _ in proxy.openai(timeout=20).chat.completions.create(
            model="gpt-4", messages=HELLO, stream=True
        ):
            pass


# ---- providers ----

DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "groq": "https://api.groq.com/openai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "xai": "https://api.x.ai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "perplexity": "https://api.perplexity.ai",
    "ollama": "http://localhost:11434/v1",
    "hosted_vllm": "http://localhost:8000/v1",
    "lm_studio": "http://localhost:1234/v1",
}


def test_every_openai_compatible_provider_has_its_default_base() -> None:
    compatible = {name for name, spec in PROVIDERS.items() if spec.wire == "openai"}
    assert set(DEFAULT_BASES) <= compatible  # the rest: tests/unit/test_config_dropin.py
    for name in compatible:
        spec = PROVIDERS[name]
        assert spec.needs_base or spec.default_base.startswith(("https://", "http://")), name
    entries = [
        {"model_name": name, "litellm_params": {"model": f"{name}/some-model", "api_key": KEY_A}}
        for name in DEFAULT_BASES
    ]
    cfg = build_config({"model_list": entries}, path=Path("mem.yaml"))
    for dep in cfg.deployments:
        assert dep.api_base == DEFAULT_BASES[dep.provider], dep.provider
        assert dep.model == "some-model"
        assert dep.wire == "openai"
        assert dep.disabled_reason is None


def test_anthropic_default_base() -> None:
    entry = {"model_name": "c", "litellm_params": {"model": "claude-3-haiku", "api_key": KEY_A}}
    (dep,) = build_config({"model_list": [entry]}).deployments
    assert (dep.provider, dep.wire, dep.model) == ("anthropic", "anthropic", "claude-3-haiku")
    assert dep.api_base == "https://api.anthropic.com"


def test_ollama_api_base_gets_v1() -> None:
    entry = {
        "model_name": "local",
        "litellm_params": {"model": "ollama/llama3", "api_base": "http://box:11434/"},
    }
    (dep,) = build_config({"model_list": [entry]}).deployments
    assert dep.api_base == "http://box:11434/v1"
    assert dep.disabled_reason is None


def test_each_provider_with_api_base_and_extra_headers_reaches_the_fake(fake, start_proxy) -> None:
    entries = [
        openai_deployment(
            f"via-{name}",
            fake,
            f"sk-{name}-key-0123456789",
            model=f"{name}/vendor/model-x",
            extra_headers={"X-Custom-Header": f"hello-{name}", "OpenAI-Organization": "org-1"},
        )
        for name in DEFAULT_BASES
    ]
    proxy = start_proxy({"model_list": entries}, master_key=MASTER_KEY)
    client = proxy.openai()
    for name in DEFAULT_BASES:
        raw = client.chat.completions.with_raw_response.create(model=f"via-{name}", messages=HELLO)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-llmproxy-provider"] == name
        seen = fake.requests[-1]
        assert seen.path == "/v1/chat/completions"
        assert seen.body["model"] == "vendor/model-x", name
        assert seen.key == f"sk-{name}-key-0123456789"
        assert seen.headers["x-custom-header"] == f"hello-{name}"
        assert seen.headers["openai-organization"] == "org-1"
    stream = client.chat.completions.create(model="via-groq", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert fake.requests[-1].headers["x-custom-header"] == "hello-groq"


def test_wildcard_group_forwards_the_rest_of_the_name(fake, start_proxy) -> None:
    proxy = start_proxy(
        {
            "model_list": [
                openai_deployment("openrouter/*", fake, KEY_A, model="openrouter/*"),
                openai_deployment("*", fake, KEY_B, model="openai/*"),
            ]
        }
    )
    client = proxy.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="openrouter/anthropic/claude-3", messages=HELLO
    )
    assert raw.parse().choices[0].message.content
    assert fake.requests[-1].body["model"] == "anthropic/claude-3"
    assert fake.requests[-1].key == KEY_A
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert fake.requests[-1].key == KEY_B
    list(client.chat.completions.create(model="openrouter/x/y", messages=HELLO, stream=True))
    assert fake.requests[-1].body["model"] == "x/y"


# ---- mock ----


def test_mock_answers_its_response_and_streams_it_word_by_word(start_proxy) -> None:
    proxy = start_proxy(
        {
            "model_list": [
                {
                    "model_name": "test-mock",
                    "litellm_params": {
                        "model": "mock/test",
                        "mock_response": "Hello from a mock model!",
                    },
                }
            ]
        },
        master_key=MASTER_KEY,
    )
    client = proxy.openai()
    raw = client.chat.completions.with_raw_response.create(model="test-mock", messages=HELLO)
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from a mock model!"
    assert answer.usage.completion_tokens > 0
    assert raw.headers["x-llmproxy-provider"] == "mock"
    pieces = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="test-mock", messages=HELLO, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["Hello", " from", " a", " mock", " model!"]


def test_unreachable_upstream_is_a_clean_502(start_proxy) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    entry = {
        "model_name": "gpt-4",
        "litellm_params": {"model": "openai/gpt-4o", "api_base": dead, "api_key": KEY_A},
    }
    proxy = start_proxy({"model_list": [entry], "router_settings": {"num_retries": 0}})
    r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
    assert r.status_code == 502
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert KEY_A not in r.text and dead not in r.text


def test_mock_serves_completions_and_embeddings_in_their_shapes(start_proxy) -> None:
    entry = {"model_name": "m", "litellm_params": {"model": "mock/x", "mock_response": "a b c"}}
    client = start_proxy({"model_list": [entry]}).openai()
    comp = client.completions.create(model="m", prompt="one two three")
    assert comp.choices[0].text == "a b c"
    assert comp.usage is not None and comp.usage.prompt_tokens == 3
    pieces = [
        c.choices[0].text
        for c in client.completions.create(model="m", prompt="x", stream=True)
        if c.choices
    ]
    assert "".join(pieces) == "a b c"
    emb = client.embeddings.create(model="m", input=["x", "y z"])
    assert [d.index for d in emb.data] == [0, 1]
    assert emb.usage.prompt_tokens == 3


def test_client_leaving_mid_stream_frees_the_deployment(proxy, fake) -> None:
    fake.set_default(reply("one two three four five six seven eight", chunk_delay=0.3))
    body = {"model": "gpt-4", "messages": HELLO, "stream": True}
    with proxy.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        next(r.iter_lines())  # the first event arrived; now hang up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(d["in_flight"] == 0 for d in proxy.state()["deployments"]):
            break
        time.sleep(0.1)
    assert all(d["in_flight"] == 0 for d in proxy.state()["deployments"])
    recent = proxy.state()["recent"]
    assert recent and recent[-1]["status"] == 499
