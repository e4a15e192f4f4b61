"""The Vertex AI adapter's pure translation: URLs, the bearer, Claude's body, errors by shape."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider
from proxy.providers.vertex import ANTHROPIC_VERSION, VertexProvider
from proxy.schema import ChatRequest
from proxy.secret import Secret

TOKEN = "ya29.secret-access-token"
DEP = Deployment(
    id="vx",
    group="g",
    provider="vertex_ai",
    wire="vertex_ai",
    model="gemini-2.5-pro",
    api_base="https://europe-west4-aiplatform.googleapis.com",
    key=Secret(TOKEN),
    key_env=None,
    provider_params={"vertex_project": "proj", "vertex_location": "europe-west4"},
)
CLAUDE = dataclasses.replace(DEP, model="claude-sonnet-4-5@20250929")
P = VertexProvider()


def chat(**kw: Any) -> ChatRequest:
    body = {"model": "g", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10}
    return ChatRequest(model="g", body=body, **kw)


def test_gemini_url_and_bearer() -> None:
    request = P.build_request(chat(stream=True), DEP)
    assert request.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4"
        "/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in request.headers
    assert orjson.loads(request.content)["generationConfig"] == {"maxOutputTokens": 10}


def test_claude_body_has_vertex_version_and_no_model() -> None:
    request = P.build_request(chat(headers={"anthropic-beta": "x-2025"}), CLAUDE)
    assert request.url.endswith(
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    )
    body = orjson.loads(request.content)
    assert "model" not in body and body["anthropic_version"] == ANTHROPIC_VERSION
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert request.headers["anthropic-beta"] == "x-2025"
    stream = P.build_request(chat(stream=True), CLAUDE)
    assert stream.url.endswith(":streamRawPredict") and orjson.loads(stream.content)["stream"]


def test_claude_answer_and_errors_by_their_shape() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 3, "output_tokens": 1}}  # fmt: skip
    out = orjson.loads(P.parse_response(chat(), CLAUDE, orjson.dumps(message)).body)
    assert out["choices"][0]["message"]["content"] == "Hello"
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    err = P.classify_error(CLAUDE, 529, {}, orjson.dumps(overloaded))
    assert err.retryable and err.code == "overloaded"
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
    quota = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                       "details": [retry]}}  # fmt: skip
    err = P.classify_error(CLAUDE, 429, {}, orjson.dumps(quota))
    assert err.rate_limited and err.retry_after == 12.0
    assert TOKEN not in P.classify_error(DEP, 400, {}, b"bad " + TOKEN.encode()).message


def test_global_location_and_probe() -> None:
    glob = dataclasses.replace(
        DEP,
        api_base="https://aiplatform.googleapis.com",
        provider_params={"vertex_project": "proj", "vertex_location": "global"},
    )
    probe = P.probe_request(glob)
    assert probe.url == (
        "https://aiplatform.googleapis.com/v1/projects/proj/locations/global"
        "/publishers/google/models/gemini-2.5-pro:countTokens"
    )
    assert P.probe_request(CLAUDE).url.endswith("/models/count-tokens:rawPredict")
    with pytest.raises(NotImplementedByProvider):  # Claude has no embeddings
        P.build_request(ChatRequest(model="g", body={"input": "x"}, kind="embeddings"), CLAUDE)
