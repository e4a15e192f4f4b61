"""One conformance suite over every provider adapter: the same cases, the same expectations.

Answers (plain, stream, usage, a bad body) run over openai, anthropic, gemini, vertex_ai and
mock; upstream failures (429, 500, timeout) over openai, anthropic and gemini.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import anthropic_deployment, openai_deployment
from tests.fakes.gemini import FakeGemini, service_account
from tests.fakes.upstream import error, hang, rate_limit

KEY_A = "sk-conformance-aaaa"
KEY_B = "sk-conformance-bbbb"
HELLO = [{"role": "user", "content": "Hello there"}]
MOCK_TEXT = "Hello! This is the mock."
ALL = ["openai", "anthropic", "gemini", "vertex_ai", "mock"]
UPSTREAMS = ["openai", "anthropic", "gemini"]  # vertex_ai fails as gemini/ does (its own
# failures, the token's, are in test_vertex.py)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    """The fake upstream, Gemini's paths included (it serves OpenAI's and Anthropic's too)."""
    up = FakeGemini().start()
    try:
        yield up
    finally:
        up.stop()


def deployment(provider: str, fake: Any, key: str, dep_id: str, **params: Any) -> dict[str, Any]:
    if provider == "openai":
        return openai_deployment("m", fake, key, id=dep_id, **params)
    if provider == "anthropic":
        return anthropic_deployment("m", fake, key, id=dep_id, **params)
    if provider == "vertex_ai":  # requests with the account's tokens are scripted as `key`
        account = service_account(fake, f"{dep_id}@p.iam.gserviceaccount.com", alias=key)
        model = {"model": "vertex_ai/gemini-2.5-flash", "api_base": fake.base,
                 "vertex_credentials": account, "vertex_project": "p"}  # fmt: skip
        return {"model_name": "m", "litellm_params": {**model, **params},
                "model_info": {"id": dep_id}}  # fmt: skip
    if provider == "gemini":
        model = {"model": "gemini/gemini-2.5-flash", "api_base": fake.base, "api_key": key}
        return {
            "model_name": "m",
            "litellm_params": {**model, **params},
            "model_info": {"id": dep_id},
        }
    return {
        "model_name": "m",
        "litellm_params": {"model": "mock/echo", "mock_response": MOCK_TEXT, **params},
        "model_info": {"id": dep_id},
    }


def start(start_proxy: Any, fake: Any, provider: str, count: int = 1, **params: Any) -> Any:
    deps = [
        deployment(provider, fake, key, dep_id, order=i + 1, **params)
        for i, (key, dep_id) in enumerate([(KEY_A, "first"), (KEY_B, "second")][:count])
    ]
    settings = {"num_retries": 2, "cooldown_time": 1, "allowed_fails": 3}
    return start_proxy({"model_list": deps, "router_settings": settings})


def post(proxy: Any, **extra: Any) -> httpx.Response:
    with proxy.client() as c:
        return c.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, **extra})


def events(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [orjson.loads(line) for line in lines[:-1]]


@pytest.mark.parametrize("provider", ALL)
def test_plain(fake, start_proxy, provider) -> None:
    proxy = start(start_proxy, fake, provider)
    response = post(proxy)
    assert response.status_code == 200
    doc = response.json()
    assert doc["object"] == "chat.completion" and doc["id"]
    assert abs(doc["created"] - time.time()) < 60
    choice = doc["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] and choice["finish_reason"] == "stop"
    assert response.headers["x-llmproxy-deployment"] == "first"
    assert response.headers["x-llmproxy-provider"] == provider


@pytest.mark.parametrize("provider", ALL)
def test_stream(fake, start_proxy, provider) -> None:
    proxy = start(start_proxy, fake, provider)
    whole = post(proxy).json()["choices"][0]["message"]["content"]
    response = post(proxy, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = events(response)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(abs(c["created"] - time.time()) < 60 for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c or c["usage"] is None for c in chunks)  # not asked for


@pytest.mark.parametrize("provider", ALL)
def test_usage(fake, start_proxy, provider) -> None:
    proxy = start(start_proxy, fake, provider)
    usage = post(proxy).json()["usage"]
    assert usage["prompt_tokens"] == 2  # "Hello there": the fake and the mock count words
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    chunks = events(post(proxy, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1]["choices"] == []
    streamed = chunks[-1]["usage"]
    assert {k: streamed[k] for k in usage if k in streamed} == {
        k: usage[k] for k in usage if k in streamed
    }


BAD_BODIES = [
    {"messages": "hi"},
    {"messages": []},
    {"temperature": "hot"},
    {"stream": "yes"},
    {"messages": [{"role": "wizard", "content": "hi"}]},
]


@pytest.mark.parametrize("provider", ALL)
def test_bad_body_is_our_400(fake, start_proxy, provider) -> None:
    proxy = start(start_proxy, fake, provider)
    for body in BAD_BODIES:
        response = post(proxy, **body)
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    with proxy.client() as c:
        raw = c.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert raw.status_code == 400
    assert fake.requests == []


@pytest.mark.parametrize("provider", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_429_moves_on_then_429_when_all_limited(fake, start_proxy, provider, stream) -> None:
    proxy = start(start_proxy, fake, provider, count=2)
    fake.script(rate_limit(20), key=KEY_A)
    response = post(proxy, stream=stream)
    assert response.status_code == 200
    assert response.headers["x-llmproxy-deployment"] == "second"
    assert proxy.deployment("first")["health"] == "cooling_down"
    fake.script(rate_limit(20), key=KEY_B)
    response = post(proxy, stream=stream)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("provider", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_500_moves_on_then_502_when_all_fail(fake, start_proxy, provider, stream) -> None:
    proxy = start(start_proxy, fake, provider, count=2)
    fake.script(error(500), key=KEY_A)
    response = post(proxy, stream=stream)
    assert response.status_code == 200
    assert response.headers["x-llmproxy-deployment"] == "second"
    assert proxy.deployment("first")["fails_this_minute"] == 1
    fake.set_default(error(500))
    response = post(proxy, stream=stream)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "first" in message and "second" in message
    assert KEY_A not in response.text and KEY_B not in response.text


@pytest.mark.parametrize("provider", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_timeout_moves_on_then_504(fake, start_proxy, provider, stream) -> None:
    proxy = start(start_proxy, fake, provider, count=2, timeout=0.5)
    fake.script(hang(), key=KEY_A)
    response = post(proxy, stream=stream)
    assert response.status_code == 200
    assert response.headers["x-llmproxy-deployment"] == "second"
    fake.set_default(hang())
    started = time.monotonic()
    response = post(proxy, stream=stream)
    assert time.monotonic() - started < 3.0
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
