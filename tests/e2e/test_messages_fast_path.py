"""A Messages request that can only pass through (an Anthropic group, no fallbacks, no cache)
is not translated to the neutral form first; anything else is, as before."""

from __future__ import annotations

import orjson

from tests.conftest import anthropic_deployment, openai_deployment

MASTER = "sk-master-fast-path-0001"
KEY_A = "sk-ant-test-fast-path-0001"
KEY_O = "sk-openai-test-fast-path-01"


def post(proxy, raw: bytes):
    with proxy.client() as c:
        return c.post(
            "/v1/messages",
            content=raw,
            headers={"x-api-key": MASTER, "content-type": "application/json"},
        )


def config(fake, **extra):
    deps = [
        anthropic_deployment("claude", fake, KEY_A, model="anthropic/claude-sonnet-4-5"),
        openai_deployment("gpt", fake, KEY_O, model="openai/gpt-5"),
    ]
    return {"model_list": deps, **extra}


def test_an_anthropic_only_group_gets_the_body_as_sent(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER)
    body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    answer = post(proxy, orjson.dumps(body))
    assert answer.status_code == 200 and answer.json()["type"] == "message"
    (seen,) = fake.calls(key=KEY_A)
    assert seen.body == {**body, "model": "claude-sonnet-4-5"}
    assert proxy.runtime.pipeline.router.native_only("claude", "anthropic_messages")
    assert not proxy.runtime.pipeline.router.native_only("gpt", "anthropic_messages")


def test_a_nested_model_before_the_real_one_does_not_skip_the_translation(
    fake, start_proxy
) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER)
    # A tool call's input names "claude" before the top-level "model": "gpt" (which needs the
    # translation to OpenAI): the request must still reach OpenAI as a full chat body.
    raw = (
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": '
        b'[{"type": "tool_use", "id": "toolu_1", "name": "pick", "input": {"model": "claude"}}]},'
        b' {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", '
        b'"content": "ok"}]}], "model": "gpt", "max_tokens": 64, "tools": [{"name": "pick", '
        b'"input_schema": {"type": "object"}}]}'
    )
    answer = post(proxy, raw)
    assert answer.status_code == 200, answer.text
    (seen,) = fake.calls(key=KEY_O)
    assert seen.path == "/v1/chat/completions"
    assert [m["role"] for m in seen.body["messages"]] == ["user", "assistant", "tool"]


def test_with_a_fallback_or_a_cache_the_body_is_translated(fake, start_proxy) -> None:
    proxy = start_proxy(
        config(fake, router_settings={"fallbacks": [{"claude": ["gpt"]}]}), master_key=MASTER
    )
    assert not proxy.runtime.pipeline.router.native_only("claude", "anthropic_messages")


def test_a_lean_pass_through_stream_still_counts_its_usage_text_and_first_token(
    fake, start_proxy
) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER)
    body = {"model": "claude", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    answer = post(proxy, orjson.dumps(body))
    assert answer.status_code == 200
    assert "event: message_stop" in answer.text and "data: [DONE]" not in answer.text
    for _ in range(200):
        recent = proxy.state()["recent"]
        if recent:
            break
    (row,) = recent
    assert row["front_door"] == "messages" and row["status"] == 200
    assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
    assert row["preview"] and row["ttft_ms"] is not None
    assert row["tokens_estimated"] is False
