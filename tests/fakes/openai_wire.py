"""OpenAI's wire format for the fake upstream: chat completions (JSON and chunk streams),
completions, embeddings, models, and errors in `{"error": {...}}` shape.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from typing import Any

from tests.fakes import steps as st
from tests.fakes.exchange import (
    Exchange,
    json_pieces,
    long_content,
    pieces,
    retry_after_header,
    usage_numbers,
)
from tests.fakes.http11 import Answer

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 409: "invalid_request_error",
          422: "invalid_request_error", 429: "requests"}  # fmt: skip
FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "stop_sequence": "stop", "refusal": "content_filter"}  # fmt: skip


def _headers(seq: int, content_type: str = JSON) -> dict[str, str]:
    return {
        "content-type": content_type,
        "x-request-id": f"req_fake{seq:08d}",
        "openai-version": "2020-10-01",
        "openai-processing-ms": "1",
    }


def answer_headers(seq: int, content_type: str = JSON) -> dict[str, str]:
    """Returns: the headers OpenAI sends with an answer (request id, version, timing)."""
    return _headers(seq, content_type)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_answer(
    exchange: Exchange,
    status: int,
    message: str,
    *,
    type: str | None = None,  # noqa: A002 - the vendor's field name
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Returns: an error response in OpenAI's `{"error": {message, type, param, code}}` shape."""
    kind = type or _TYPES.get(status, "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Answer(status, {**_headers(exchange.seq), **(headers or {})}, _dumps(body))


def validate(exchange: Exchange) -> Answer | None:
    """Light checks of the body, like the real API's 400s.

    Returns: a 400 answer when `model` or the path's main field is missing, else None.
    """
    body = exchange.body
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error_answer(exchange, 400, "you must provide a model parameter")
    field = {"/v1/chat/completions": "messages", "/v1/embeddings": "input"}.get(
        exchange.path, "prompt"
    )
    if field not in body:
        msg = f"Missing required parameter: '{field}'."
        return error_answer(exchange, 400, msg, param=field, code="missing_required_parameter")
    if field == "messages" and (not isinstance(body["messages"], list) or not body["messages"]):
        msg = "Invalid 'messages': empty array. Expected an array with minimum length 1."
        return error_answer(exchange, 400, msg, param="messages", code="empty_array")
    return None


def models_answer(exchange: Exchange) -> Answer:
    """Returns: the GET /v1/models list."""
    data = [
        {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in MODELS
    ]
    return Answer(200, _headers(exchange.seq), _dumps({"object": "list", "data": data}))


def render(step: st.Step, exchange: Exchange) -> Answer:
    """Returns: the answer to `step` for this request (not for Hang / Drop, handled by the
    server)."""
    match step:
        case st.Reply():
            return _reply(step, exchange)
        case st.Error(status, message, kind, code, headers):
            return error_answer(
                exchange, status, message, type=kind, code=code, headers=dict(headers)
            )
        case st.RateLimit():
            return _rate_limit(step, exchange)
        case st.Overloaded():
            msg = "The server is overloaded or not ready yet."
            return error_answer(exchange, 503, msg, type="server_error")
        case st.ContextTooLong():
            return _context_too_long(exchange)
        case st.StreamCut(after):
            answer = _reply(st.Reply(content=long_content(after)), exchange)
            stream = answer.events is not None
            answer.cut_after = 1 + after if stream else 0  # role chunk, then `after` contents
            return answer
        case st.StreamErrorFirst(message, kind):
            err = {"error": {"message": message, "type": kind, "param": None, "code": None}}
            return Answer(
                200, _headers(exchange.seq, SSE), events=[b"data: " + _dumps(err) + b"\n\n"]
            )
    raise TypeError(f"the server handles {step!r} itself")


def _rate_limit(step: st.RateLimit, exchange: Exchange) -> Answer:
    name, value = retry_after_header(step.retry_after, step.ms)
    headers = {name: value}
    if step.reset_headers:
        headers |= {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": go_duration(step.retry_after),
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149990",
            "x-ratelimit-reset-tokens": go_duration(step.retry_after),
        }
    wait = go_duration(step.retry_after)
    msg = (
        f"Rate limit reached for {exchange.model()} in organization org-fake on requests per min "
        f"(RPM): Limit 60, Used 60, Requested 1. Please try again in {wait}."
    )
    return error_answer(
        exchange, 429, msg, type="requests", code="rate_limit_exceeded", headers=headers
    )


def go_duration(seconds: float) -> str:
    """Returns: `seconds` written like OpenAI's reset headers: `1s`, `250ms`, `1m30s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


def _context_too_long(exchange: Exchange) -> Answer:
    msg = (
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130000 tokens. Please reduce the length of the messages."
    )
    return error_answer(exchange, 400, msg, param="messages", code="context_length_exceeded")


def _reply(step: st.Reply, exchange: Exchange) -> Answer:
    if exchange.path == "/v1/embeddings":
        return Answer(200, _headers(exchange.seq), _dumps(_embeddings(step, exchange)))
    if exchange.path == "/v1/completions":
        return _completion(step, exchange)
    if exchange.stream:
        return Answer(200, _headers(exchange.seq, SSE), events=_chat_events(step, exchange))
    return Answer(200, _headers(exchange.seq), _dumps(_chat_json(step, exchange)))


def _usage(step: st.Reply, exchange: Exchange) -> dict[str, Any]:
    n = usage_numbers(step, exchange)
    return {
        "prompt_tokens": n["input"],
        "completion_tokens": n["output"],
        "total_tokens": n["input"] + n["output"],
        "prompt_tokens_details": {"cached_tokens": n["cache_read"], "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _calls(step: st.Reply, exchange: Exchange) -> list[dict[str, Any]]:
    if not step.tool_calls or not exchange.has_tools:
        return []
    return [
        {
            "id": call.get("id") or f"call_fake{exchange.seq:04d}{i:02d}",
            "name": call["name"],
            "arguments": call.get("arguments") or {},
        }
        for i, call in enumerate(step.tool_calls)
    ]


def _finish(step: st.Reply, calls: list[dict[str, Any]]) -> str:
    if step.finish_reason:
        return FINISH.get(step.finish_reason, step.finish_reason)
    return "tool_calls" if calls else "stop"


def _envelope(exchange: Exchange, step: st.Reply, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{exchange.seq:08d}",
        "object": kind,
        "created": int(time.time()),
        "model": exchange.model(step),
    }


def _chat_json(step: st.Reply, exchange: Exchange) -> dict[str, Any]:
    calls = _calls(step, exchange)
    text = step.text()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if step.reasoning:
        message["reasoning_content"] = step.reasoning
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _finish(step, calls),
    }
    return {
        **_envelope(exchange, step, "chat.completion"),
        "choices": [choice],
        "usage": _usage(step, exchange),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _chat_events(step: st.Reply, exchange: Exchange) -> list[bytes]:
    calls = _calls(step, exchange)
    options = exchange.body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    base = {**_envelope(exchange, step, "chat.completion.chunk"), "service_tier": "default",
            "system_fingerprint": "fp_fake"}  # fmt: skip
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _dumps({**base, "choices": [choice]}) + b"\n\n"

    text = step.text()
    role: dict[str, Any] = {"role": "assistant", "content": "" if text or not calls else None}
    events = [chunk({**role, "refusal": None})]
    events += [chunk({"reasoning_content": p}) for p in pieces(step.reasoning or "")]
    events += [chunk({"content": p}) for p in pieces(text)]
    for i, call in enumerate(calls):
        head = {"index": i, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""}}  # fmt: skip
        events.append(chunk({"tool_calls": [head]}))
        for part in json_pieces(call["arguments"]):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}))
    events.append(chunk({}, _finish(step, calls)))
    if with_usage:
        last = {**base, "choices": [], "usage": _usage(step, exchange)}
        events.append(b"data: " + _dumps(last) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


def _completion(step: st.Reply, exchange: Exchange) -> Answer:
    base = {**_envelope(exchange, step, "text_completion"), "system_fingerprint": "fp_fake"}
    base["id"] = f"cmpl-fake{exchange.seq:08d}"
    finish = _finish(step, [])

    def choice(text: str, finish_reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}

    if not exchange.stream:
        n = usage_numbers(step, exchange)
        usage = {"prompt_tokens": n["input"], "completion_tokens": n["output"],
                 "total_tokens": n["input"] + n["output"]}  # fmt: skip
        whole = {**base, "choices": [choice(step.text(), finish)], "usage": usage}
        return Answer(200, _headers(exchange.seq), _dumps(whole))
    events = [b"data: " + _dumps({**base, "choices": [choice(p, None)]}) + b"\n\n"
              for p in pieces(step.text())]  # fmt: skip
    events.append(b"data: " + _dumps({**base, "choices": [choice("", finish)]}) + b"\n\n")
    return Answer(200, _headers(exchange.seq, SSE), events=[*events, b"data: [DONE]\n\n"])


def embedding_vector(item: Any) -> list[float]:
    """Returns: the fake's deterministic 8-number vector for one input."""
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [round(b / 127.5 - 1.0, 6) for b in digest[:8]]


def _embeddings(step: st.Reply, exchange: Exchange) -> dict[str, Any]:
    raw = exchange.body.get("input")
    single = isinstance(raw, str) or (
        isinstance(raw, list) and bool(raw) and isinstance(raw[0], int)
    )
    items: list[Any] = [raw] if single else list(raw or [])
    as_b64 = exchange.body.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(items):
        vector: Any = embedding_vector(item)
        if as_b64:
            vector = base64.b64encode(struct.pack("<8f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    n = sum(len(i.split()) if isinstance(i, str) else len(i) for i in items) or 1
    if step.usage:
        n = int(step.usage.get("prompt_tokens", step.usage.get("input_tokens", n)))
    usage = {"prompt_tokens": n, "total_tokens": n}
    return {"object": "list", "data": data, "model": exchange.model(step), "usage": usage}
