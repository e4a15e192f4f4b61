"""AWS Bedrock end to end: the openai SDK -> proxy -> a fake bedrock-runtime that checks every
request's SigV4 signature as AWS does and streams AWS's binary event stream.

Covers Converse and ConverseStream (plain, streamed, tool calls and a tool round trip),
long-term and temporary keys from litellm_params and from the standard AWS chain, a wrong
secret refused with AWS's 403, throttling failing over, a stream cut or failing at once, and a
prompt too long as a clear 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.bedrock import FakeBedrock, Key
from tests.fakes.upstream import (
    DEFAULT_CONTENT,
    context_too_long,
    error,
    rate_limit,
    reply,
    stream_cut,
    stream_error_first,
)

REGION = "us-west-2"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
AKID, SECRET = "AKIAFAKE0000EXAMPLE1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY0001"
TEMP_ID, TEMP_SECRET = "ASIAFAKE0000EXAMPLE2", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbFAKEKEY0002"
TOKEN = "IQoJb3JpZ2luX2VjEFAKE//////////session-token-0002"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALL = {"name": "get_weather", "arguments": {"city": "Lima"}}


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@pytest.fixture
def bedrock() -> Iterator[FakeBedrock]:
    keys = {AKID: Key(SECRET), TEMP_ID: Key(TEMP_SECRET, TOKEN)}
    fake = FakeBedrock(region=REGION, keys=keys, models=(MODEL,)).start()
    try:
        yield fake
    finally:
        fake.stop()


def entry(bedrock: FakeBedrock, dep_id: str, **params: Any) -> dict[str, Any]:
    litellm = {"model": f"bedrock/converse/{MODEL}", "api_base": bedrock.url,
               "aws_access_key_id": AKID, "aws_secret_access_key": SECRET,
               "aws_region_name": REGION, **params}  # fmt: skip
    return {"model_name": "claude", "litellm_params": litellm, "model_info": {"id": dep_id}}


def serve(start_proxy, *entries: dict[str, Any], **settings: Any):
    config: dict[str, Any] = {"model_list": list(entries)}
    if settings:
        config["router_settings"] = settings
    return start_proxy(config, master_key=MASTER_KEY)


def test_converse_answer_through_a_checked_signature(start_proxy, bedrock) -> None:
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, max_tokens=300, temperature=0.2
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 6)
    assert raw.headers["x-llmproxy-provider"] == "bedrock"
    (seen,) = bedrock.requests
    assert seen.path == f"/model/{MODEL}/converse"
    assert seen.key == AKID  # the signature checked out for this key
    assert seen.body == {
        "messages": [{"role": "user", "content": [{"text": "Hello there"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2},
    }


def test_converse_stream_is_decoded_from_the_event_stream(start_proxy, bedrock) -> None:
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    chunks = list(
        proxy.openai().chat.completions.create(
            model="claude", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_CONTENT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert bedrock.requests[-1].path == f"/model/{MODEL}/converse-stream"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_reaches_the_sdk(start_proxy, bedrock, stream) -> None:
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    bedrock.script(reply(tool_calls=[CALL]))
    asked = {"model": "claude", "messages": HELLO, "tools": TOOLS}
    if stream:
        calls: dict[int, dict[str, str]] = {}
        for chunk in proxy.openai().chat.completions.create(**asked, stream=True):
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
        name, arguments = calls[0]["name"], calls[0]["arguments"]
    else:
        answer = proxy.openai().chat.completions.create(**asked)
        assert answer.choices[0].finish_reason == "tool_calls"
        (call,) = answer.choices[0].message.tool_calls
        name, arguments = call.function.name, call.function.arguments
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "Lima"})
    spec = bedrock.requests[-1].body["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather"
    assert spec["inputSchema"]["json"]["properties"] == {"city": {"type": "string"}}


def test_tool_result_round_trip_is_valid_converse(start_proxy, bedrock) -> None:
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    call = {"id": "tooluse_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}  # fmt: skip
    result = {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C, cloudy"}
    messages = [*HELLO, {"role": "assistant", "content": None, "tool_calls": [call]}, result]
    answer = proxy.openai().chat.completions.create(model="claude", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    turns = bedrock.requests[-1].body["messages"]
    assert turns[1]["content"] == [
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Lima"}}}
    ]
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C, cloudy"}]}}
    ]


def test_temporary_credentials_carry_their_session_token(start_proxy, bedrock) -> None:
    creds = {"aws_access_key_id": TEMP_ID, "aws_secret_access_key": TEMP_SECRET,
             "aws_session_token": TOKEN}  # fmt: skip
    proxy = serve(start_proxy, entry(bedrock, "br-1", **creds))
    answer = proxy.openai().chat.completions.create(model="claude", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert bedrock.requests[-1].key == TEMP_ID
    assert bedrock.requests[-1].headers["x-amz-security-token"] == TOKEN


def test_credentials_from_the_standard_aws_chain(
    start_proxy, bedrock, monkeypatch, tmp_path
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": TEMP_ID, "AWS_SECRET_ACCESS_KEY": TEMP_SECRET,
                        "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": REGION,
                        "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    params = {"model": f"bedrock/{MODEL}", "api_base": bedrock.url}
    proxy = serve(start_proxy, {"model_name": "claude", "litellm_params": params})
    answer = proxy.openai().chat.completions.create(model="claude", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert bedrock.requests[-1].key == TEMP_ID


def test_a_wrong_secret_is_refused_with_awss_403(start_proxy, bedrock) -> None:
    proxy = serve(start_proxy, entry(bedrock, "br-1", aws_secret_access_key="not/the/secret"))
    with proxy.client() as client:
        answer = client.post("/v1/chat/completions", json={"model": "claude", "messages": HELLO})
    assert answer.status_code == 502
    assert "br-1: 403 key rejected" in answer.json()["error"]["message"]
    assert bedrock.refusals == ["InvalidSignatureException"]
    assert bedrock.requests == []


def test_throttled_deployment_fails_over_to_the_next(start_proxy, bedrock) -> None:
    bedrock.script(rate_limit(), key=AKID)
    temp = {"aws_access_key_id": TEMP_ID, "aws_secret_access_key": TEMP_SECRET,
            "aws_session_token": TOKEN, "order": 2}  # fmt: skip
    proxy = serve(start_proxy, entry(bedrock, "br-1", order=1), entry(bedrock, "br-2", **temp))
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert raw.headers["x-llmproxy-deployment"] == "br-2"
    assert [s.key for s in bedrock.requests] == [AKID, TEMP_ID]


def test_exception_event_first_is_a_429_when_nothing_else_serves(start_proxy, bedrock) -> None:
    bedrock.script(stream_error_first("Too many tokens, please wait before trying again."))
    proxy = serve(start_proxy, entry(bedrock, "br-1"), num_retries=0)
    with pytest.raises(openai.RateLimitError):
        for _ in proxy.openai().chat.completions.create(
            model="claude", messages=HELLO, stream=True
        ):
            pass


def test_a_cut_stream_ends_with_an_error_event(start_proxy, bedrock) -> None:
    bedrock.script(stream_cut(after=2))
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    with proxy.client() as client:
        answer = client.post(
            "/v1/chat/completions", json={"model": "claude", "messages": HELLO, "stream": True}
        )
    events = sse_events(answer.text)
    assert events[-1] == "[DONE]"
    assert set(json.loads(events[-2])) == {"error"}
    assert any(json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2])


def test_a_prompt_too_long_is_a_clear_400(start_proxy, bedrock) -> None:
    bedrock.script(context_too_long())
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().chat.completions.create(model="claude", messages=HELLO)
    assert "Input is too long for requested model" in caught.value.message
    assert len(bedrock.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_500_moves_on_to_the_next_deployment(start_proxy, bedrock, stream) -> None:
    bedrock.script(error(500, "We encountered an internal error. Please try again."), key=AKID)
    temp = {"aws_access_key_id": TEMP_ID, "aws_secret_access_key": TEMP_SECRET,
            "aws_session_token": TOKEN, "order": 2}  # fmt: skip
    proxy = serve(start_proxy, entry(bedrock, "br-1", order=1), entry(bedrock, "br-2", **temp))
    raw = proxy.openai().chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, stream=stream
    )
    assert raw.headers["x-llmproxy-deployment"] == "br-2"
    assert [s.key for s in bedrock.requests] == [AKID, TEMP_ID]
    assert "InternalServerException" in str(proxy.deployment("br-1")["last_error"])


def test_a_messages_client_streams_a_tool_call_from_bedrock(start_proxy, bedrock) -> None:
    bedrock.script(reply(tool_calls=[CALL]))
    proxy = serve(start_proxy, entry(bedrock, "br-1"))
    tool = {"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}
    client = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
    messages = [{"role": "user", "content": "Weather in Lima?"}]
    with (
        client,
        client.messages.stream(
            model="claude", max_tokens=200, tools=[tool], messages=messages
        ) as stream,
    ):
        message = stream.get_final_message()
    (use,) = [block for block in message.content if block.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Lima"})
    assert message.stop_reason == "tool_use"
    assert bedrock.requests[-1].path == f"/model/{MODEL}/converse-stream"
