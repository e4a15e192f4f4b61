"""The Gemini adapter's pure translation: requests, answers, streams and errors.

Every translated body is also put to the fake Gemini's checks (`gemini_checks.problem_of`,
what the real API refuses), so a body these tests accept is one Gemini accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.config.types import Deployment
from proxy.errors import BadRequest, NotImplementedByProvider, UpstreamError
from proxy.providers.gemini.contents import join_tool_id, split_tool_id
from proxy.providers.gemini.errors import retry_delay
from proxy.providers.gemini.provider import GeminiProvider
from proxy.schema import ChatRequest, SSEEvent
from proxy.secret import Secret
from tests.fakes.gemini_checks import problem_of

KEY = "AIzaSyFAKE-secret-value-9f2a"
DEP = Deployment(
    id="gemini-1",
    group="flash",
    provider="gemini",
    wire="gemini",
    model="gemini-2.5-flash",
    api_base="https://generativelanguage.googleapis.com",
    key=Secret(KEY),
    key_env="GEMINI_API_KEY",
)
P = GeminiProvider()
HELLO = [{"role": "user", "content": "Hello"}]
SIG = "c2lnbmF0dXJlKy8/Pz4+"  # standard base64 with '+' and '/'


def chat(body: dict[str, Any] | None = None, **kw: Any) -> ChatRequest:
    return ChatRequest(
        model="flash", body={"model": "flash", "messages": HELLO, **(body or {})}, **kw
    )


def dep(**changes: Any) -> Deployment:
    return dataclasses.replace(DEP, **changes)


def sent(body: dict[str, Any] | None = None, d: Deployment = DEP, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(P.build_request(chat(body, **kw), d).content)
    assert problem_of(out, d.model) is None, problem_of(out, d.model)
    return out


def answer(doc: dict[str, Any]) -> dict[str, Any]:
    body = P.parse_response(chat(created=1700000000), DEP, orjson.dumps(doc)).body
    ChatCompletion.model_validate_json(body)  # the openai SDK can read it
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed


# ---- request: URL, headers, body


def test_url_key_header_and_versioned_base() -> None:
    request = P.build_request(chat(stream=True), DEP)
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == KEY and "authorization" not in request.headers
    custom = dep(api_base="https://proxy.example/v1beta/", model="models/gemini-2.5-pro")
    assert P.build_request(chat(), custom).url == (
        "https://proxy.example/v1beta/models/gemini-2.5-pro:generateContent"
    )
    extra = dep(extra_headers={"x-goog-api-key": "override", "x-team": "a"})
    assert P.build_request(chat(), extra).headers["x-goog-api-key"] == "override"
    assert P.probe_request(DEP).url.endswith("/v1beta/models?pageSize=1")


def test_conversation_merges_turns_and_names_function_responses() -> None:
    call_id = join_tool_id("call_1", SIG)
    messages = [
        {"role": "system", "content": "Rule one."},
        {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },  # fmt: skip
        {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "user", "content": "Thanks"},
    ]
    body = sent({"messages": messages})
    assert body["systemInstruction"] == {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]}
    user, model, answers = body["contents"]
    assert model["role"] == "model"
    assert model["parts"][0] == {
        "functionCall": {"name": "weather", "args": {"city": "Paris"}},
        "thoughtSignature": SIG,
    }
    assert "thoughtSignature" not in model["parts"][1]
    assert answers["role"] == "user"
    assert answers["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"sky": "sunny"}}},
        {"functionResponse": {"name": "weather", "response": {"output": "rain"}}},
        {"text": "Thanks"},
    ]


def test_only_a_system_message_becomes_the_user_turn() -> None:
    body = sent({"messages": [{"role": "system", "content": "Say hi"}]})
    assert "systemInstruction" not in body
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]


def test_images_audio_and_files() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?x=1"}},
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0"}},
    ]
    parts = sent({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}
    assert parts[2] == {
        "fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?x=1"}
    }
    assert parts[3] == {"inlineData": {"mimeType": "audio/mp3", "data": "UklGR"}}
    assert parts[4] == {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0"}}
    with pytest.raises(BadRequest) as caught:
        sent({"messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]})
    assert caught.value.param == "messages[0].content[0]"


def test_generation_config_and_dropped_hints() -> None:
    body = sent(
        {
            "temperature": 1.5,
            "top_p": 0.9,
            "top_k": 40,
            "seed": 7,
            "max_completion_tokens": 100,
            "stop": ["a", "b", "c", "d", "e", "f"],
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"1": 2},
            "user": "u1",
            "store": True,
            "n": 1,
            "parallel_tool_calls": True,
        }
    )
    assert body["generationConfig"] == {
        "temperature": 1.5, "topP": 0.9, "topK": 40, "seed": 7, "maxOutputTokens": 100,
        "stopSequences": ["a", "b", "c", "d", "e"],
    }  # fmt: skip
    assert sent({"max_tokens": 999_999}, dep(max_output_tokens=65536))["generationConfig"] == {
        "maxOutputTokens": 65536
    }


def test_shape_changing_parameters_refused_unless_dropped() -> None:
    with pytest.raises(BadRequest) as caught:
        sent({"n": 2})
    assert caught.value.param == "n" and caught.value.code == "unsupported_parameter"
    assert "generationConfig" not in sent({"n": 2, "logprobs": True}, drop_params=True)
    with pytest.raises(BadRequest):
        sent({"max_tokens": 0})


def test_response_format_as_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    config = sent({"response_format": fmt})["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    config = sent({"response_format": {"type": "json_object"}})["generationConfig"]
    assert config == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-pro", "none", None),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
        (
            "gemini-3-flash-preview",
            "minimal",
            {"thinkingLevel": "minimal", "includeThoughts": True},
        ),
        ("gemini-3-pro-preview", "none", {"thinkingLevel": "low"}),
    ],
)
def test_reasoning_effort_as_thinking_config(model, effort, expected) -> None:
    body = sent({"reasoning_effort": effort}, dep(model=model))
    assert body.get("generationConfig", {}).get("thinkingConfig") == expected


def test_a_thinking_budget_is_added_to_max_tokens() -> None:
    config = sent({"reasoning_effort": "low", "max_tokens": 100})["generationConfig"]
    assert config["maxOutputTokens"] == 1124
    limited = sent({"reasoning_effort": "high", "max_tokens": 100}, dep(max_output_tokens=8192))
    assert limited["generationConfig"]["maxOutputTokens"] == 8192


def test_tools_and_tool_choice() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "$schema": "x"}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    empty = {"type": "function", "function": {"name": "g", "description": "no args",
             "parameters": {"type": "object", "properties": {}}}}  # fmt: skip
    body = sent(
        {"tools": [tool, empty], "tool_choice": {"type": "function", "function": {"name": "f"}}}
    )
    declarations = body["tools"][0]["functionDeclarations"]
    assert declarations[0]["parametersJsonSchema"] == tool["function"]["parameters"]
    assert declarations[1] == {"name": "g", "description": "no args"}
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    assert sent({"tools": [tool], "tool_choice": "none"})["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}
    }
    with pytest.raises(BadRequest):
        sent({"tools": [{"type": "web_search"}]})


def test_embeddings_request_and_completions_refused() -> None:
    req = ChatRequest(
        model="e", body={"model": "e", "input": ["a", "b"], "dimensions": 256}, kind="embeddings"
    )
    request = P.build_request(req, dep(model="gemini-embedding-001"))
    assert request.url.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert orjson.loads(request.content)["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "outputDimensionality": 256,
        "content": {"parts": [{"text": "b"}]},
    }
    with pytest.raises(BadRequest):
        P.build_request(ChatRequest(model="e", body={"input": [[1, 2]]}, kind="embeddings"), DEP)
    with pytest.raises(NotImplementedByProvider):
        P.build_request(ChatRequest(model="e", body={"prompt": "x"}, kind="completions"), DEP)


def test_tool_ids_carry_signatures_in_anthropic_safe_characters() -> None:
    joined = join_tool_id("call_7", SIG)
    assert joined.replace("_", "").replace("-", "").isalnum()
    assert split_tool_id(joined) == ("call_7", SIG)
    assert split_tool_id("toolu_01abc") == ("toolu_01abc", None)
    assert join_tool_id("call_7", None) == "call_7"


# ---- answers


def candidate(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                          "thoughtsTokenCount": 6, "cachedContentTokenCount": 8,
                          "totalTokenCount": 20},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp123",
    }  # fmt: skip


def test_answer_with_thoughts_calls_and_usage() -> None:
    doc = candidate(
        [
            {"text": "Thinking...", "thought": True},
            {"text": "Let me check."},
            {
                "functionCall": {"name": "weather", "args": {"city": "Oslo"}},
                "thoughtSignature": SIG,
            },
        ]
    )
    out = answer(doc)
    assert out["id"] == "chatcmpl-resp123" and out["created"] == 1700000000
    assert out["model"] == "gemini-2.5-flash-001"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me check." and message["reasoning_content"] == "Thinking..."
    call = message["tool_calls"][0]
    assert split_tool_id(call["id"]) == ("call_resp123_0", SIG)
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert out["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 6},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("MALFORMED_FUNCTION_CALL", "stop"), ("STOP", "stop")],
)  # fmt: skip
def test_finish_reasons(finish, expected) -> None:
    assert answer(candidate([{"text": "x"}], finish))["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_is_an_empty_content_filter_answer() -> None:
    doc = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    out = answer(doc)
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""


def test_body_that_is_not_an_answer_is_a_retryable_502() -> None:
    for body in (b"not json", b"[]", b'{"foo": 1}'):
        with pytest.raises(UpstreamError) as caught:
            P.parse_response(chat(), DEP, body)
        assert caught.value.status == 502 and caught.value.retryable


# ---- streams


def feed_all(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decoder = P.open_stream(chat(stream=True, created=5), DEP)
    out: list[dict[str, Any]] = []
    for doc in events:
        for chunk in decoder.feed(SSEEvent(None, orjson.dumps(doc).decode())):
            assert chunk.data is not None
            ChatCompletionChunk.model_validate_json(chunk.data)
            out.append(orjson.loads(chunk.data))
    assert decoder.done
    return out


def test_stream_text_thoughts_calls_finish_and_usage() -> None:
    thought = {"parts": [{"text": "hm", "thought": True}], "role": "model"}
    first = {"candidates": [{"content": thought}], "responseId": "r9", "modelVersion": "m"}
    second = {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}
    third = candidate([{"functionCall": {"name": "a", "args": {}}},
                       {"functionCall": {"name": "b", "args": {"x": 1}}}])  # fmt: skip
    chunks = feed_all([first, second, third])
    assert {c["id"] for c in chunks} == {"chatcmpl-r9"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "hm"} and deltas[2] == {"content": "Hi"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "a"), (1, "b")]
    assert len({c["id"] for c in calls}) == 2
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10


def test_stream_error_event_is_classified() -> None:
    decoder = P.open_stream(chat(stream=True), DEP)
    event = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(SSEEvent(None, orjson.dumps(event).decode()))
    assert caught.value.status == 429 and caught.value.retryable
    with pytest.raises(UpstreamError) as bad:
        P.open_stream(chat(stream=True), DEP).feed(SSEEvent(None, "{oops"))
    assert bad.value.status == 502


# ---- errors


def google_error(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return orjson.dumps({"error": error}, option=orjson.OPT_INDENT_2)


def test_429_reads_retry_info_unless_a_header_says_otherwise() -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    body = google_error(429, "RESOURCE_EXHAUSTED", "quota", retry)
    err = P.classify_error(DEP, 429, {}, body)
    assert err.retryable and err.rate_limited and err.retry_after == 37.0
    assert err.code == "RESOURCE_EXHAUSTED"
    assert P.classify_error(DEP, 429, {"Retry-After": "5"}, body).retry_after == 5.0
    as_list = b"[" + body + b"]"  # a stream request's error comes as a JSON array
    assert P.classify_error(DEP, 429, {}, as_list).retry_after == 37.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.5s", 0.5), ("12s", 12.0), ("1.250s", 1.25), ("soon", None), ("-3s", None), ("", None)],
)
def test_retry_delay_durations(text, expected) -> None:
    detail = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": text}
    assert retry_delay({"details": [detail]}) == expected


def test_bad_key_context_and_client_errors() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    bad_key = P.classify_error(
        DEP, 400, {}, google_error(400, "INVALID_ARGUMENT", "API key not valid.", info)
    )
    assert bad_key.key_rejected and bad_key.retryable
    msg = "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
    context = P.classify_error(DEP, 400, {}, google_error(400, "INVALID_ARGUMENT", msg))
    assert context.context_window and not context.retryable
    assert context.code == "context_length_exceeded"
    client = P.classify_error(DEP, 400, {}, google_error(400, "INVALID_ARGUMENT", "bad " + KEY))
    assert not client.retryable and not client.counts_against and KEY not in client.message
    server = P.classify_error(DEP, 503, {}, google_error(503, "UNAVAILABLE", "overloaded"))
    assert server.retryable and server.counts_against
    assert P.classify_error(DEP, 500, {}, b"<html>oops</html>").message == "<html>oops</html>"
