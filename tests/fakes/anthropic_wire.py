"""Anthropic's Messages API wire format for the fake upstream: messages (JSON and named-event
streams), models, and errors in `{"type": "error", "error": {...}}` shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes import steps as st
from tests.fakes.exchange import (
    Exchange,
    json_pieces,
    long_content,
    pieces,
    prompt_words,
    retry_after_header,
    usage_numbers,
)
from tests.fakes.http11 import Answer

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
MODELS = ("claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022")
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 409: "conflict_error",
          413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
          504: "timeout_error", 529: "overloaded_error"}  # fmt: skip
STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
        "content_filter": "refusal", "function_call": "tool_use"}  # fmt: skip


def _headers(seq: int, content_type: str = JSON) -> dict[str, str]:
    return {
        "content-type": content_type,
        "request-id": f"req_fake{seq:08d}",
        "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
    }


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def error_answer(
    exchange: Exchange,
    status: int,
    message: str,
    *,
    type: str | None = None,  # noqa: A002 - the vendor's field name
    headers: dict[str, str] | None = None,
) -> Answer:
    """Returns: an error response in Anthropic's shape, with its top-level `request_id`."""
    kind = type or _TYPES.get(status, "api_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_fake{exchange.seq:08d}",
    }
    return Answer(status, {**_headers(exchange.seq), **(headers or {})}, _dumps(body))


def models_answer(exchange: Exchange) -> Answer:
    """Returns: the GET /v1/models page in Anthropic's shape."""
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in MODELS
    ]
    page = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    return Answer(200, _headers(exchange.seq), _dumps(page))


def count_tokens_answer(exchange: Exchange) -> Answer:
    """Returns: the /v1/messages/count_tokens answer, `{"input_tokens": N}` (the fake's word
    count of the system prompt and messages)."""
    count = {"input_tokens": prompt_words(exchange.body)}
    return Answer(200, _headers(exchange.seq), _dumps(count))


def render(step: st.Step, exchange: Exchange) -> Answer:
    """Returns: the answer to `step` for this request (not for Hang / Drop, handled by the
    server)."""
    match step:
        case st.Reply():
            return _reply(step, exchange)
        case st.Error(status, message, kind, _code, headers):
            return error_answer(exchange, status, message, type=kind, headers=dict(headers))
        case st.RateLimit():
            return _rate_limit(step, exchange)
        case st.Overloaded():
            return error_answer(exchange, 529, "Overloaded", type="overloaded_error")
        case st.ContextTooLong():
            msg = "prompt is too long: 208310 tokens > 200000 maximum"
            return error_answer(exchange, 400, msg, type="invalid_request_error")
        case st.StreamCut(after):
            answer = _reply(st.Reply(content=long_content(after)), exchange)
            stream = answer.events is not None
            # message_start, content_block_start and ping come before the content deltas
            answer.cut_after = 3 + after if stream else 0
            return answer
        case st.StreamErrorFirst(message, kind):
            err = {"type": "error", "error": {"type": kind, "message": message}}
            return Answer(200, _headers(exchange.seq, SSE), events=[_event("error", err)])
    raise TypeError(f"the server handles {step!r} itself")


def _rate_limit(step: st.RateLimit, exchange: Exchange) -> Answer:
    name, value = retry_after_header(step.retry_after, step.ms)
    headers = {name: value}
    if step.reset_headers:
        reset = datetime.now(UTC) + timedelta(seconds=step.retry_after)
        stamp = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
        for kind, limit in (("requests", "50"), ("tokens", "40000"), ("input-tokens", "30000")):
            headers[f"anthropic-ratelimit-{kind}-limit"] = limit
            headers[f"anthropic-ratelimit-{kind}-remaining"] = "0"
            headers[f"anthropic-ratelimit-{kind}-reset"] = stamp
    msg = (
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. Please reduce the prompt length or the maximum tokens requested, or try again "
        "later."
    )
    return error_answer(exchange, 429, msg, type="rate_limit_error", headers=headers)


def _blocks(step: st.Reply, exchange: Exchange) -> list[dict[str, Any]]:
    """Returns: the complete content blocks of the reply (thinking, text, tool_use)."""
    blocks: list[dict[str, Any]] = []
    if step.reasoning:
        blocks.append({"type": "thinking", "thinking": step.reasoning, "signature": "fakesig=="})
    calls = list(step.tool_calls or []) if exchange.has_tools else []
    text = step.text()
    if text or not calls:
        blocks.append({"type": "text", "text": text})
    for i, call in enumerate(calls):
        tool_id = call.get("id") or f"toolu_fake{exchange.seq:04d}{i:02d}"
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_id,
                "name": call["name"],
                "input": call.get("arguments") or {},
            }
        )
    return blocks


def _stop_reason(step: st.Reply, blocks: list[dict[str, Any]]) -> str:
    if step.finish_reason:
        return STOP.get(step.finish_reason, step.finish_reason)
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def _usage(step: st.Reply, exchange: Exchange, output: int | None = None) -> dict[str, Any]:
    n = usage_numbers(step, exchange)
    return {
        "input_tokens": n["input"],
        "cache_creation_input_tokens": n["cache_write"],
        "cache_read_input_tokens": n["cache_read"],
        "output_tokens": n["output"] if output is None else output,
        "service_tier": "standard",
    }


def _message(step: st.Reply, exchange: Exchange, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"msg_fake{exchange.seq:08d}",
        "type": "message",
        "role": "assistant",
        "model": exchange.model(step),
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(step, exchange),
    }


def _reply(step: st.Reply, exchange: Exchange) -> Answer:
    blocks = _blocks(step, exchange)
    if exchange.stream:
        return Answer(200, _headers(exchange.seq, SSE), events=_events(step, exchange, blocks))
    message = _message(step, exchange, blocks)
    message["stop_reason"] = _stop_reason(step, blocks)
    return Answer(200, _headers(exchange.seq), _dumps(message))


def _events(step: st.Reply, exchange: Exchange, blocks: list[dict[str, Any]]) -> list[bytes]:
    start = _message(step, exchange, [])
    start["usage"] = _usage(step, exchange, output=1)
    events = [_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(blocks):
        events += _block_events(index, block)
        if index == 0:
            events.insert(2, _event("ping", {"type": "ping"}))
    delta = {"stop_reason": _stop_reason(step, blocks), "stop_sequence": None}
    out = {"output_tokens": usage_numbers(step, exchange)["output"]}
    events.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": out}))
    return [*events, _event("message_stop", {"type": "message_stop"})]


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    kind = block["type"]
    if kind == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
    elif kind == "thinking":
        opening = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        opening = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in json_pieces(block["input"])
        ]
    events = [_event("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": opening})]  # fmt: skip
    events += [
        _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
        for d in deltas
    ]
    events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events
