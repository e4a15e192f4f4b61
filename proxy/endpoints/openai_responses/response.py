"""An OpenAI `chat.completion` → a Responses `response` object, and the pieces the stream
renderer shares (the response envelope, output items, usage, status, ids).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.endpoints.openai_responses.request import ResponsesRequest
from proxy.endpoints.openai_responses.tools import ToolRef, custom_input
from proxy.errors import ProxyError

Item = dict[str, Any]

_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def base_id(completion_id: Any) -> str:
    """Returns the id stem the response and its items share (fresh when the upstream has none)."""
    base = completion_id if isinstance(completion_id, str) else ""
    base = _BAD_ID_CHARS.sub("", base.removeprefix("chatcmpl-"))
    return base or uuid.uuid4().hex


def status_of(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    """Returns (status, incomplete_details) for OpenAI's finish_reason."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def usage_object(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Returns the Responses usage for OpenAI chat usage (None when there is none)."""
    if not isinstance(usage, Mapping):
        return None

    def count(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    out_details = usage.get("completion_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    read = count(details.get("cached_tokens")) or count(usage.get("cache_read_input_tokens"))
    write = count(details.get("cache_creation_tokens")) or count(
        usage.get("cache_creation_input_tokens")
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": count(out_details.get("reasoning_tokens"))},
        "total_tokens": count(usage.get("total_tokens")) or prompt + completion,
    }


def envelope(
    info: ResponsesRequest,
    base: str,
    created_at: int,
    status: str,
    echo: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Returns a response object without output: id, status, model and the echoed request
    (`echo`, e.g. `echo_fragments(info)`, in place of `info.echo` when given)."""
    return {
        "id": f"resp_{base}",
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": info.model,
        "output": [],
        "usage": None,
        **(info.echo if echo is None else echo),
        "previous_response_id": None,
    }


def echo_fragments(info: ResponsesRequest) -> dict[str, orjson.Fragment]:
    """Returns the echoed request fields as JSON encoded once: a stream repeats them (the
    client's tools among them) in `response.created`, `in_progress` and `completed`."""
    return {name: orjson.Fragment(orjson.dumps(value)) for name, value in info.echo.items()}


def message_item(item_id: str, text: str, status: str = "completed") -> Item:
    """Returns an assistant message item holding `text` as one output_text part."""
    content = [text_part(text)] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}  # fmt: skip


def text_part(text: str) -> dict[str, Any]:
    """Returns an `output_text` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    item_id: str, call_id: str, flat: str, ref: ToolRef | None, arguments: str, status: str
) -> Item:
    """Returns the output item for one tool call: a `custom_tool_call` when the client
    defined the tool as custom (its input unwrapped), else a `function_call`."""
    name = ref.name if ref else flat
    if ref is not None and ref.kind == "custom":
        value = custom_input(arguments) if status == "completed" else ""
        item: Item = {"id": item_id, "type": "custom_tool_call", "status": status,
                      "call_id": call_id, "name": name, "input": value}  # fmt: skip
    else:
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
                "name": name, "arguments": arguments if status == "completed" else ""}  # fmt: skip
    if ref is not None and ref.namespace:
        item["namespace"] = ref.namespace
    return item


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


def render(completion: bytes, info: ResponsesRequest) -> bytes:
    """Translates an OpenAI chat completion into a Responses `response` object.

    Args:
        completion: the `chat.completion` JSON (`ChatResponse.body`, or a cached answer).
        info: the parsed request, for the tool table and the echoed fields.

    Returns:
        The response JSON: `resp_…` id, status (`incomplete` with a reason when cut short),
        output items (message, function_call, custom_tool_call) and usage.

    Raises:
        ProxyError: 502, `completion` is not a chat completion.
    """
    doc = load_completion(completion)
    first = doc["choices"][0] if doc["choices"] and isinstance(doc["choices"][0], dict) else {}
    message = first.get("message")
    message = message if isinstance(message, dict) else {}
    base = base_id(doc.get("id"))
    status, incomplete = status_of(first.get("finish_reason"))
    created = doc.get("created")
    created = created if isinstance(created, int) else 0
    out = envelope(info, base, created, status)
    out["incomplete_details"] = incomplete
    out["output"] = output_items(message, base, info)
    out["usage"] = usage_object(doc.get("usage"))
    return orjson.dumps(out)


def output_items(message: Mapping[str, Any], base: str, info: ResponsesRequest) -> list[Item]:
    """Returns the output items for an OpenAI assistant message."""
    items: list[Item] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        items.append(message_item(f"msg_{base}", text))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content = [{"type": "refusal", "refusal": refusal}]
        items.append({"id": f"msg_{base}_refusal", "type": "message", "status": "completed",
                      "role": "assistant", "content": content})  # fmt: skip
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        flat = str(function.get("name") or "")
        arguments = function.get("arguments")
        call_id = str(call.get("id") or f"call_{base}_{i}")
        ref = info.tools.get(flat)
        item_id = f"{'ctc' if ref and ref.kind == 'custom' else 'fc'}_{base}_{i}"
        args = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
        items.append(call_item(item_id, call_id, flat, ref, args, "completed"))
    return items
