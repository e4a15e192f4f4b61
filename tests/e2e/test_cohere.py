"""Cohere end to end through its OpenAI Compatibility API: the openai SDK -> proxy -> a fake
Compatibility API that refuses `stream_options` as Cohere does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.cohere import FakeCohere
from tests.fakes.upstream import DEFAULT_CONTENT, reply

KEY = "co-key-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
def cohere() -> Iterator[FakeCohere]:
    fake = FakeCohere().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def proxy(start_proxy, cohere):
    params = {"model": "cohere/command-a-03-2025", "api_base": cohere.cohere_base, "api_key": KEY}
    return start_proxy({"model_list": [{"model_name": "command", "litellm_params": params}]},
                       master_key=MASTER_KEY)  # fmt: skip


def test_plain_answer(proxy, cohere) -> None:
    answer = proxy.openai().chat.completions.create(model="command", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    (seen,) = cohere.requests
    assert (seen.path, seen.key, seen.body["model"]) == (
        "/v1/chat/completions", KEY, "command-a-03-2025"
    )  # fmt: skip


def test_streamed_tool_call_without_stream_options(proxy, cohere) -> None:
    cohere.script(reply(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}]))
    stream = proxy.openai().chat.completions.create(
        model="command", messages=HELLO, tools=TOOLS, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    arguments = "".join(
        d.function.arguments or ""
        for c in stream if c.choices
        for d in c.choices[0].delta.tool_calls or [] if d.function
    )  # fmt: skip
    assert json.loads(arguments) == {"q": "x"}
    assert "stream_options" not in cohere.requests[-1].body  # Cohere refuses it


def test_embeddings(start_proxy, cohere) -> None:
    params = {"model": "cohere/embed-v4.0", "api_base": cohere.cohere_base, "api_key": KEY}
    proxy = start_proxy({"model_list": [{"model_name": "embed", "litellm_params": params}]})
    result = proxy.openai().embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2
    assert cohere.requests[-1].path == "/v1/embeddings"
