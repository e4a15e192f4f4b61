"""Gemini `GenerateContentResponse` → OpenAI `chat.completion` (and the part, usage and
finish mappings the stream decoder shares), and `batchEmbedContents` → OpenAI embeddings.

`created` is the request's `created` (an adapter has no clock: the pipeline stamps it).
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.gemini.contents import join_tool_id
from proxy.schema import ChatResponse, Usage, text_preview

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def finish_reason(reason: Any, *, tool_calls: bool) -> str:
    """Returns OpenAI's finish_reason for Gemini's (which says STOP after function calls)."""
    mapped = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if tool_calls and mapped == "stop" else mapped


def usage_from(raw: Any) -> Usage:
    """Returns the Usage for Gemini's usageMetadata: thoughts count as completion tokens
    (and as reasoning), the cached part of the prompt as cached tokens."""
    meta = raw if isinstance(raw, dict) else {}

    def count(name: str) -> int:
        value = meta.get(name)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    completion = count("candidatesTokenCount") + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count("totalTokenCount") or prompt + completion,
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


class Parts:
    """What one candidate's parts say, in OpenAI's terms: text, reasoning, tool calls."""

    def __init__(self, call_prefix: str) -> None:
        self.texts: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self._prefix = call_prefix

    def read(self, parts: Any) -> None:
        """Adds the parts of one content (a whole answer, or one stream event's)."""
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                (self.reasoning if part.get("thought") is True else self.texts).append(text)
            call = part.get("functionCall")
            if isinstance(call, dict):
                self.calls.append(self._call(call, part.get("thoughtSignature")))

    def _call(self, call: dict[str, Any], signature: Any) -> dict[str, Any]:
        given = call.get("id")
        call_id = given if isinstance(given, str) and given else f"{self._prefix}{len(self.calls)}"
        args = call.get("args")
        return {
            "id": join_tool_id(call_id, signature if isinstance(signature, str) else None),
            "type": "function",
            "function": {
                "name": str(call.get("name") or ""),
                "arguments": orjson.dumps(args if isinstance(args, dict) else {}).decode(),
            },
        }


def call_prefix(doc: dict[str, Any], fallback: str) -> str:
    """Returns the prefix of the ids made for this answer's tool calls (Gemini's carry none)."""
    response_id = doc.get("responseId")
    return f"call_{response_id if isinstance(response_id, str) and response_id else fallback}_"


def load(dep: Deployment, body: bytes) -> dict[str, Any]:
    """Returns the JSON object of a 2xx body.

    Raises:
        UpstreamError: the body is not a JSON object (502, retryable).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise bad_body(dep, "Gemini answered 2xx with a body that is not a JSON object.")
    return doc


def bad_body(dep: Deployment, message: str) -> UpstreamError:
    return UpstreamError(
        message,
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
        code="bad_upstream_response",
    )


def first_candidate(doc: dict[str, Any]) -> dict[str, Any]:
    candidates = doc.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    return first if isinstance(first, dict) else {}


def model_of(doc: dict[str, Any], dep: Deployment) -> str:
    version = doc.get("modelVersion")
    return version if isinstance(version, str) and version else dep.model


def parse_response(
    dep: Deployment, body: bytes, *, created: int = 0, request_id: str = ""
) -> ChatResponse:
    """Returns the OpenAI answer for a 2xx `generateContent` body. A prompt Gemini blocked
    (no candidates, `promptFeedback.blockReason`) is an empty `content_filter` answer.

    Raises:
        UpstreamError: the body is not an answer (502, retryable).
    """
    doc = load(dep, body)
    if "candidates" not in doc and "promptFeedback" not in doc:
        raise bad_body(dep, "Gemini answered 2xx with a body that is not an answer.")
    candidate = first_candidate(doc)
    content = candidate.get("content")
    parts = Parts(call_prefix(doc, request_id or "0"))
    parts.read(content.get("parts") if isinstance(content, dict) else None)
    reason = candidate.get("finishReason") if candidate else _blocked(doc)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(parts.texts) if parts.texts or not parts.calls else None,
    }
    if parts.calls:
        message["tool_calls"] = parts.calls
    if parts.reasoning:
        message["reasoning_content"] = "".join(parts.reasoning)
    usage = usage_from(doc.get("usageMetadata"))
    model = model_of(doc, dep)
    finish = finish_reason(reason, tool_calls=bool(parts.calls))
    out = {
        "id": f"chatcmpl-{doc.get('responseId') or request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage.as_openai(),
    }
    return ChatResponse(
        body=orjson.dumps(out),
        usage=usage,
        model=model,
        preview=text_preview(message["content"] or ""),
        finish=finish,
    )


def _blocked(doc: dict[str, Any]) -> str | None:
    feedback = doc.get("promptFeedback")
    return "SAFETY" if isinstance(feedback, dict) and feedback.get("blockReason") else None


def parse_embeddings(
    dep: Deployment, body: bytes, *, base64_floats: bool, usage: Usage
) -> ChatResponse:
    """Returns OpenAI's embeddings list for a 2xx `batchEmbedContents` body.

    `base64_floats`: the client asked for `encoding_format: base64` (the openai SDK's
    default): each vector as little-endian float32 bytes in base64, as OpenAI sends it.
    Gemini reports no token counts here; `usage` is the caller's estimate.

    Raises:
        UpstreamError: the body holds no embeddings (502, retryable).
    """
    doc = load(dep, body)
    items = doc.get("embeddings")
    if not isinstance(items, list):
        raise bad_body(dep, "Gemini answered 2xx without embeddings.")
    values = [item.get("values") if isinstance(item, dict) else None for item in items]
    return embeddings_answer(dep, values, base64_floats=base64_floats, usage=usage)


def embeddings_answer(
    dep: Deployment, vectors: list[Any], *, base64_floats: bool, usage: Usage
) -> ChatResponse:
    """Returns OpenAI's embeddings list of these vectors (a vector that is not a list of
    numbers is empty), as floats or, with `base64_floats`, as base64 float32 bytes."""
    data = []
    for index, values in enumerate(vectors):
        vector = [float(v) for v in values] if isinstance(values, list) else []
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": _base64(vector) if base64_floats else vector,
            }
        )
    out = {
        "object": "list",
        "data": data,
        "model": dep.model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }
    return ChatResponse(body=orjson.dumps(out), usage=usage, model=dep.model)


def _base64(vector: list[float]) -> str:
    floats = array("f", vector)
    if sys.byteorder != "little":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode()
