"""Anthropic Messages answer → OpenAI `chat.completion` (and the usage/finish mappings the
stream decoder shares).

`created` is the request's `created` (an adapter has no clock: the pipeline stamps it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.anthropic.request import JSON_TOOL
from proxy.schema import ChatResponse, Usage, text_preview

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, *, tool_calls: bool) -> str:
    """Returns OpenAI's finish_reason for Anthropic's stop_reason.

    A `tool_use` stop made only by the response_format tool is a plain `stop`.
    """
    reason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if reason == "tool_calls" and not tool_calls else reason


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Returns the Usage for Anthropic's usage object; cache reads and writes count as prompt."""

    def count(name: str) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) else 0

    read, write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    prompt = count("input_tokens") + read + write
    completion = count("output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_tokens=write,
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    """Returns OpenAI's usage object, plus Anthropic's cache counts as LiteLLM names them."""
    out = usage.as_openai()
    if usage.cached_tokens or usage.cache_write_tokens:
        out["cache_read_input_tokens"] = usage.cached_tokens
        out["cache_creation_input_tokens"] = usage.cache_write_tokens
    return out


def parse_response(dep: Deployment, body: bytes, *, created: int = 0) -> ChatResponse:
    """Returns the OpenAI answer for a 2xx Anthropic Messages body.

    Raises:
        UpstreamError: the body is not a Messages answer (502, retryable).
    """
    doc = _load(dep, body)
    message, tool_calls = _message(doc["content"])
    usage = usage_from(doc.get("usage") or {})
    model = doc["model"] if isinstance(doc.get("model"), str) else dep.model
    finish = finish_reason(doc.get("stop_reason"), tool_calls=tool_calls)
    out = {
        "id": doc.get("id", ""),
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
        "usage": usage_json(usage),
    }
    return ChatResponse(
        body=orjson.dumps(out),
        usage=usage,
        model=model,
        preview=text_preview(message["content"] or ""),
        finish=finish,
    )


def _load(dep: Deployment, body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
        raise UpstreamError(
            "Anthropic answered 2xx with a body that is not a message.",
            provider=dep.provider,
            key_id=dep.id,
            status=502,
            retryable=True,
            code="bad_upstream_response",
        )
    return doc


def _message(blocks: list[Any]) -> tuple[dict[str, Any], bool]:
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking_blocks.append(block)
            reasoning.append(block.get("thinking", ""))
    content = "".join(texts) if texts or not calls else None  # None only beside tool calls
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if thinking_blocks:
        message["reasoning_content"] = "".join(reasoning)
        message["thinking_blocks"] = thinking_blocks  # echoed back to keep tool loops valid
    return message, bool(calls)
