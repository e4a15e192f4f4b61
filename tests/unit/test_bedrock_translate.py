"""The Bedrock adapter's pure translation: Converse bodies, answers, the event stream (framed by
botocore, fed in arbitrary pieces), errors, the signed URL, and the `[aws]` extra's message."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.config.loader import build_config
from proxy.config.types import Deployment
from proxy.errors import BadRequest, ConfigError, NotImplementedByProvider, UpstreamError
from proxy.providers.bedrock.provider import BedrockProvider
from proxy.schema import ChatRequest, Chunk
from tests.fakes.bedrock import message_bytes

P = BedrockProvider()
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
HELLO = [{"role": "user", "content": "Hello"}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def deployment(model: str = CLAUDE, **params: Any) -> Deployment:
    litellm = {
        "model": f"bedrock/{model}",
        "aws_access_key_id": "AKIAUNIT",
        "aws_secret_access_key": "unit-secret",
        "aws_region_name": "eu-west-1",
        **params,
    }
    cfg = build_config({"model_list": [{"model_name": "m", "litellm_params": litellm}]})
    return cfg.deployments[0]


def sent(body: dict[str, Any], dep: Deployment | None = None) -> dict[str, Any]:
    req = ChatRequest(model="m", body={"model": "m", "messages": HELLO, **body})
    return dict(orjson.loads(P.build_request(req, dep or deployment()).content))


def test_system_images_stops_and_cache_points() -> None:
    messages = [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": PNG}}],
         "cache_control": {"type": "ephemeral"}},
    ]  # fmt: skip
    body = sent({"messages": messages, "stop": "END", "top_p": 0.5, "max_tokens": 50})
    assert body["system"] == [{"text": "Rules."}]
    assert body["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
        {"cachePoint": {"type": "default"}},
    ]
    assert body["inferenceConfig"] == {"maxTokens": 50, "topP": 0.5, "stopSequences": ["END"]}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("required", {"any": {}}), ("auto", {"auto": {}}),
     ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}})],
)  # fmt: skip
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = sent({"tools": tools, "tool_choice": choice})
    assert body["toolConfig"]["toolChoice"] == expected
    assert body["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}
    ]


def test_max_tokens_only_when_asked_for_models_other_than_claude() -> None:
    assert "inferenceConfig" not in sent({}, deployment("meta.llama3-70b-instruct-v1:0"))
    assert sent({})["inferenceConfig"]["maxTokens"] > 0  # Claude needs one


def test_thinking_goes_in_additional_fields_for_claude_only() -> None:
    body = sent({"reasoning_effort": "low", "max_tokens": 100})
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    }
    nova = sent({"reasoning_effort": "low"}, deployment("amazon.nova-pro-v1:0"))
    assert "additionalModelRequestFields" not in nova


def test_refusals() -> None:
    with pytest.raises(BadRequest):
        sent({"n": 2})
    with pytest.raises(BadRequest, match="base64"):
        link = [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
        sent({"messages": [{"role": "user", "content": link}]})
    with pytest.raises(NotImplementedByProvider):
        P.build_request(
            ChatRequest(model="m", body={"input": "x"}, kind="embeddings"), deployment()
        )


def test_url_keeps_colons_and_escapes_slashes_and_is_signed() -> None:
    arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-x"
    req = ChatRequest(model="m", body={"model": "m", "messages": HELLO}, stream=True)
    built = P.build_request(req, deployment("converse/" + arn))
    assert built.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/arn:aws:bedrock:eu-west-1:"
        "123456789012:inference-profile%2Feu.anthropic.claude-x/converse-stream"
    )
    assert built.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAUNIT/")
    assert "/eu-west-1/bedrock/aws4_request" in built.headers["authorization"]
    assert built.headers["accept"] == "application/vnd.amazon.eventstream"


def answer(content: list[dict[str, Any]], stop: str = "end_turn") -> ChatCompletion:
    doc = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
           "usage": {"inputTokens": 7, "outputTokens": 3, "cacheReadInputTokens": 5}}  # fmt: skip
    req = ChatRequest(model="m", body={}, request_id="r1")
    parsed = P.parse_response(req, deployment(), orjson.dumps(doc))
    assert (parsed.usage.prompt_tokens, parsed.usage.cached_tokens) == (12, 5)
    return ChatCompletion.model_validate_json(parsed.body)


def test_answers() -> None:
    use = {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}
    called = answer([{"text": "Let me look."}, use], "tool_use")
    assert called.choices[0].finish_reason == "tool_calls"
    (call,) = called.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == ("t1", "f", '{"a":1}')
    assert answer([{"text": "no"}], "guardrail_intervened").choices[0].finish_reason == (
        "content_filter"
    )
    json_tool = {"toolUse": {"toolUseId": "t2", "name": "json_output", "input": {"ok": True}}}
    as_json = answer([json_tool], "tool_use").choices[0]
    assert (as_json.message.content, as_json.finish_reason) == ('{"ok":true}', "stop")
    with pytest.raises(UpstreamError) as caught:
        P.parse_response(ChatRequest(model="m", body={}), deployment(), b'{"output": 1}')
    assert caught.value.status == 502 and caught.value.retryable


def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return message_bytes(headers, payload)


STREAM = b"".join([
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi "}}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "there"}}),
    event("contentBlockStart", {"contentBlockIndex": 1,
                                "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a"'}}}),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ":1}"}}}),
    event("messageStop", {"stopReason": "tool_use"}),
    event("metadata", {"usage": {"inputTokens": 4, "outputTokens": 2}}),
])  # fmt: skip


def decode(pieces: list[bytes]) -> tuple[list[Chunk], bool]:
    decoder = P.open_stream(ChatRequest(model="m", body={}, stream=True), deployment())
    chunks = [chunk for piece in pieces for chunk in decoder.feed_bytes(piece)]
    return chunks, decoder.done


@pytest.mark.parametrize("size", [len(STREAM), 7, 1])
def test_the_event_stream_decodes_the_same_in_any_pieces(size: int) -> None:
    chunks, done = decode([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    assert done
    parsed = [ChatCompletionChunk.model_validate_json(c.data or b"") for c in chunks]
    assert "".join(c.text for c in chunks) == "Hi there"
    calls = [d for p in parsed if p.choices for d in p.choices[0].delta.tool_calls or []]
    assert "".join(d.function.arguments or "" for d in calls if d.function) == '{"a":1}'
    assert parsed[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage_only and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 6


def test_stream_exceptions_and_damage() -> None:
    throttled = message_bytes({":exception-type": "throttlingException",
                               ":content-type": "application/json",
                               ":message-type": "exception"}, {"message": "Slow down"})  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        decode([event("messageStart", {"role": "assistant"}), throttled])
    assert (caught.value.status, caught.value.retryable) == (429, True)
    damaged = bytearray(event("messageStart", {"role": "assistant"}))
    damaged[-1] ^= 0xFF  # the message CRC no longer matches
    with pytest.raises(UpstreamError, match="damaged"):
        decode([bytes(damaged)])


@pytest.mark.parametrize(
    ("status", "kind", "message", "retryable", "rejected", "context"),
    [(429, "ThrottlingException", "Too many requests", True, False, False),
     (403, "InvalidSignatureException", "signature mismatch", True, True, False),
     (400, "ValidationException", "Input is too long for requested model.", False, False, True),
     (400, "ValidationException", "extraneous key [x]", False, False, False),
     (503, "ServiceUnavailableException", "busy", True, False, False)],
)  # fmt: skip
def test_errors(status, kind, message, retryable, rejected, context) -> None:
    headers = {"X-Amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/"}
    err = P.classify_error(deployment(), status, headers, orjson.dumps({"message": message}))
    assert (err.status, err.code, err.retryable) == (status, kind, retryable)
    assert (err.key_rejected, err.context_window) == (rejected, context)
    assert message in err.message


def test_a_bedrock_config_without_botocore_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'llmproxy-tui\[aws\]'"):
        deployment()


def test_deployments_without_region_or_credentials_are_disabled(monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_REGION_NAME"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    params = {"model_name": "m", "litellm_params": {"model": f"bedrock/{CLAUDE}"}}
    (dep,) = build_config({"model_list": [params]}).deployments
    assert dep.disabled_reason is not None and "region missing" in dep.disabled_reason
    params["litellm_params"]["aws_region_name"] = "us-east-1"
    (dep,) = build_config({"model_list": [params]}).deployments
    assert dep.disabled_reason is not None and "credentials missing" in dep.disabled_reason


def test_runtime_endpoint_and_region_pick_the_base() -> None:
    assert deployment().api_base == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    vpce = "https://vpce-0a1b.bedrock-runtime.eu-west-1.vpce.amazonaws.com"
    assert deployment(aws_bedrock_runtime_endpoint=vpce).api_base == vpce
    assert deployment(
        api_base="http://127.0.0.1:9", aws_bedrock_runtime_endpoint=vpce
    ).api_base == ("http://127.0.0.1:9")
