"""An OpenAI `chat.completion` → an Anthropic Messages object, and the mappings the stream
renderer shares (stop reasons, usage, ids).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ProxyError

Block = dict[str, Any]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def stop_reason(finish_reason: Any, *, tool_use: bool) -> str:
    """Returns Anthropic's stop_reason for OpenAI's finish_reason.

    A turn that ends with tool calls is `tool_use` whatever the upstream said (some answer
    `stop`), unless it ran out of tokens: Claude Code runs the tools only on `tool_use`.
    """
    reason = _STOP.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    if tool_use and reason in ("end_turn", "tool_use"):
        return "tool_use"
    return "end_turn" if reason == "tool_use" else reason


def usage_block(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Returns Anthropic's usage for OpenAI's: `input_tokens` excludes cache reads and writes.

    Cache counts are read from `prompt_tokens_details` (OpenAI) or from the top-level
    `cache_read_input_tokens` / `cache_creation_input_tokens` (LiteLLM's names).
    """
    usage = usage or {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}

    def count(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    read = count(details.get("cached_tokens")) or count(usage.get("cache_read_input_tokens"))
    write = count(details.get("cache_creation_tokens")) or count(
        usage.get("cache_creation_input_tokens")
    )
    return {
        "input_tokens": max(0, count(usage.get("prompt_tokens")) - read - write),
        "output_tokens": count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def message_id(completion_id: Any) -> str:
    """Returns a `msg_…` id made from the upstream's id (a fresh one when it has none)."""
    base = completion_id if isinstance(completion_id, str) else ""
    base = _BAD_ID_CHARS.sub("", base.removeprefix("chatcmpl-").removeprefix("msg_"))
    return f"msg_{base or uuid.uuid4().hex}"


def tool_use_id(call_id: Any) -> str:
    """Returns a tool call id Anthropic accepts (`[a-zA-Z0-9_-]+`), fresh when it is empty.

    The client sends it back in its `tool_result`, so the same id reaches every upstream.
    """
    value = _BAD_ID_CHARS.sub("_", call_id) if isinstance(call_id, str) else ""
    return value or f"toolu_{uuid.uuid4().hex[:24]}"


def tool_input(arguments: Any) -> dict[str, Any]:
    """Returns the tool input for OpenAI's arguments JSON; `{}` when it is not a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {}


def load_completion(body: bytes) -> dict[str, Any]:
    """Returns the completion document.

    Raises:
        ProxyError: 502, the body is not an OpenAI chat completion.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise ProxyError(
            "The upstream answer is not a chat completion.",
            status=502,
            type="api_error",
            code="bad_upstream_response",
        )
    return doc


def render(completion: bytes, model: str) -> bytes:
    """Translates an OpenAI chat completion into an Anthropic Messages object.

    Args:
        completion: the `chat.completion` JSON (`ChatResponse.body`, or a cached answer).
        model: the model name to answer with (usually the one the client asked for).

    Returns:
        The Messages JSON: `msg_…` id, content blocks (thinking, text, tool_use), stop_reason
        and usage.

    Raises:
        ProxyError: 502, `completion` is not a chat completion.
    """
    doc = load_completion(completion)
    first = doc["choices"][0] if doc["choices"] else {}
    message = first.get("message") if isinstance(first, dict) else None
    message = message if isinstance(message, dict) else {}
    content = content_blocks(message)
    tool_use = any(block["type"] == "tool_use" for block in content)
    out = {
        "id": message_id(doc.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(first.get("finish_reason"), tool_use=tool_use),
        "stop_sequence": None,
        "usage": usage_block(doc.get("usage")),
    }
    return orjson.dumps(out)


def content_blocks(message: Mapping[str, Any]) -> list[Block]:
    """Returns the content blocks for an OpenAI assistant message, in Anthropic's order."""
    blocks = _thinking(message)
    for name in ("content", "refusal"):
        text = message.get(name)
        if isinstance(text, str) and text:
            blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id")),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks


def _thinking(message: Mapping[str, Any]) -> list[Block]:
    # Signed blocks (an Anthropic upstream, through the OpenAI adapter) are kept as they were.
    signed = message.get("thinking_blocks")
    if isinstance(signed, list) and signed:
        return [dict(b) for b in signed if isinstance(b, dict) and isinstance(b.get("type"), str)]
    text = message.get("reasoning_content", message.get("reasoning"))
    if isinstance(text, str) and text:
        return [{"type": "thinking", "thinking": text, "signature": ""}]
    return []
