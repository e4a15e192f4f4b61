"""OpenAI's Responses API as an upstream: a Response object or its SSE stream → the neutral
OpenAI chat form (a `chat.completion`, `chat.completion.chunk`s), which feeds the cache, the
usage row, the cost and the dashboard while the client gets the upstream's own bytes.

Mapping: `output_text` → message content, `refusal` → refusal, reasoning summaries →
`reasoning_content`; `function_call` → a tool call named `namespace__name` when namespaced (the
Responses front door's flat name, so a cached answer renders back as the client's tool);
`custom_tool_call` → a tool call whose arguments are `{"input": raw}`; `usage` input, output,
cached and reasoning tokens → `Usage`. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.schema import PREVIEW_CHARS, ChatResponse, Chunk, SSEEvent, Usage, text_preview

Classify = Callable[[int, bytes], UpstreamError]
"""The adapter's `classify_error` for one deployment: (status, OpenAI error body) → error."""

CUSTOM_ARGUMENT = "input"
"""A custom tool call's raw input, as the one string argument of the neutral tool call."""
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_RATE_LIMITS = ("rate_limit_exceeded", "insufficient_quota")
# Responses error codes (`response.failed`, `error` events) that are the request's fault:
# context_length_exceeded, invalid_prompt, the invalid_image* and image_* family, ...
_REQUEST_FAULTS = ("context_length_exceeded", "invalid_", "image_", "unsupported_", "empty_",
                   "failed_to_download")  # fmt: skip


def flat_name(namespace: Any, name: str) -> str:
    """Returns the neutral function name of a call to `name` in `namespace` (`ns__name`)."""
    if not isinstance(namespace, str) or not namespace:
        return name
    return f"{namespace.rstrip('_')}__{name.lstrip('_')}"


def usage_from(usage: Any) -> Usage | None:
    """Returns the `Usage` in a Responses `usage` object (None when there is none)."""
    if not isinstance(usage, Mapping):
        return None
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    out_details = usage.get("output_tokens_details")
    out_details = out_details if isinstance(out_details, Mapping) else {}
    prompt, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(usage.get("total_tokens")) or prompt + completion,
        cached_tokens=_count(details.get("cached_tokens")),
        cache_write_tokens=_count(details.get("cache_write_tokens")),
        reasoning_tokens=_count(out_details.get("reasoning_tokens")),
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    """Returns OpenAI chat usage for `usage`, cache writes included (as `Usage.from_openai`
    and the Responses renderer read them)."""
    out = usage.as_openai()
    if usage.cache_write_tokens:
        out["prompt_tokens_details"]["cache_creation_tokens"] = usage.cache_write_tokens
    return out


def failure(classify: Classify, error: Any, default: str) -> UpstreamError:
    """Returns the `UpstreamError` for a Responses error object (`response.failed`'s `error`,
    or an `error` event): a rate limit is 429, a bad request 400, `server_error` 500, any other
    code 502; the adapter's `classify_error` decides what is retryable, as for HTTP errors."""
    error = error if isinstance(error, Mapping) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else default
    body = {"message": message, "type": error.get("type"), "code": code,
            "param": error.get("param")}  # fmt: skip
    return classify(_status_of(code), orjson.dumps({"error": body}))


def _status_of(code: str | None) -> int:
    if code in _RATE_LIMITS:
        return 429
    if code is not None and code.startswith(_REQUEST_FAULTS):
        return 400
    return 500 if code == "server_error" else 502


def parse_response(dep: Deployment, body: bytes, classify: Classify) -> ChatResponse:
    """Returns the neutral answer for a 2xx Responses body, `native` set to `body` itself.

    Raises:
        UpstreamError: the body is not a Response object (502, retryable), or it is a failed
            response or an error document (classified as `failure`).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise _bad_body(dep, "the upstream answer is not a Response object")
    if doc.get("status") == "failed" or ("error" in doc and "output" not in doc):
        raise failure(classify, doc.get("error"), "the upstream response failed")
    message, has_calls = _message(doc.get("output"))
    usage = usage_from(doc.get("usage"))
    finish = _finish(doc, has_calls)
    choice = {"index": 0, "message": message, "finish_reason": finish}
    completion = {**_envelope(doc, "chat.completion"), "choices": [choice]}
    if usage is not None:
        completion["usage"] = usage_json(usage)
    text = message.get("content")
    return ChatResponse(
        body=orjson.dumps(completion),
        usage=usage,
        preview=text_preview(text) if isinstance(text, str) else "",
        model=str(doc.get("model") or ""),
        native=body,
        finish=finish,
    )


def _message(output: Any) -> tuple[dict[str, Any], bool]:
    """Returns the assistant message for a Response's output items, and whether it calls tools."""
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output if isinstance(output, list) else ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif kind == "reasoning":
            reasoning.extend(_summary_texts(item))
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(_tool_call(item, len(calls)))
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def _summary_texts(item: Mapping[str, Any]) -> list[str]:
    """A reasoning item's summary texts, then its raw `reasoning_text` (open-weight models)."""
    parts = [*(item.get("summary") or ()), *(item.get("content") or ())]
    return [str(p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _tool_call(item: Mapping[str, Any], position: int) -> dict[str, Any]:
    if item.get("type") == "custom_tool_call":
        raw = item.get("input")
        arguments = orjson.dumps({CUSTOM_ARGUMENT: raw if isinstance(raw, str) else ""}).decode()
    else:
        args = item.get("arguments")
        arguments = args if isinstance(args, str) else orjson.dumps(args or {}).decode()
    return {
        "id": str(item.get("call_id") or item.get("id") or f"call_{position}"),
        "type": "function",
        "function": {"name": _call_name(item), "arguments": arguments},
    }


def _call_name(item: Mapping[str, Any]) -> str:
    return flat_name(item.get("namespace"), str(item.get("name") or ""))


def _finish(response: Mapping[str, Any], has_calls: bool) -> str:
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(reason, "length") if isinstance(reason, str) else "length"
    return "tool_calls" if has_calls else "stop"


def _envelope(response: Mapping[str, Any], kind: str) -> dict[str, Any]:
    rid = response.get("id")
    created = response.get("created_at")
    return {
        "id": "chatcmpl-" + (rid.removeprefix("resp_") if isinstance(rid, str) else ""),
        "object": kind,
        "created": created if isinstance(created, int) else 0,
        "model": str(response.get("model") or ""),
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bad_body(dep: Deployment, reason: str) -> UpstreamError:
    return UpstreamError(
        f"{dep.provider}: {reason}",
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
        code="bad_upstream_response",
    )


_OPEN_INPUT = '{"' + CUSTOM_ARGUMENT + '":"'
_CLOSE_INPUT = '"}'


def _escaped(text: Any) -> str:
    """Returns `text` escaped as the inside of a JSON string (so a custom call's input can
    stream piece by piece into `{"input": "..."}`); "" for a non-string."""
    return orjson.dumps(text).decode()[1:-1] if isinstance(text, str) else ""


class _Call:
    """A tool call being streamed: its place among the message's calls and its kind."""

    __slots__ = ("custom", "position", "sent")

    def __init__(self, position: int, custom: bool) -> None:
        self.position = position
        self.custom = custom
        self.sent = False
        """Some of its arguments (or input) arrived as deltas."""


_LEAN_EVENTS = frozenset(
    {b"response.output_text.delta", b"response.output_item.added", b"response.completed",
     b"response.incomplete", b"response.failed", b"error"}
)  # fmt: skip
"""What a lean stream reads: answer text (the preview), whether a tool was called, its end
and failures; not `created` or `in_progress` (which repeat the request's tools), the argument
deltas nor the `.done` echoes."""


class ResponsesStreamDecoder:
    """Turns one Responses SSE stream into neutral chunks (see `StreamDecoder`).

    Order: a role chunk at `response.created`, then content, refusal, reasoning and tool-call
    deltas as they come, then at `response.completed` (or `response.incomplete`) one finish
    chunk and a usage-only chunk (`choices: []`). A custom tool call's input streams as the
    JSON string inside `{"input": ...}`, so its arguments are valid JSON once done.
    Events are dispatched by their `event:` name where the upstream sends one, so the large
    ones the proxy needs nothing from (`response.in_progress`, the `.done` echoes) are never
    decoded.
    """

    def __init__(
        self, dep: Deployment, classify: Classify, *, created: int = 0, lean: bool = False
    ) -> None:
        """`lean`: nobody reads the chunks' OpenAI bytes (a pass-through with no cache): chunks
        carry only their text and usage, `response.created` is not decoded, and the usage of
        `response.completed` is read from its tail without decoding the whole response (which
        repeats the request's tools)."""
        self._dep = dep
        self._classify = classify
        self._lean = lean
        self._envelope = {"id": "", "object": "chat.completion.chunk", "created": created,
                          "model": dep.model}  # fmt: skip
        self._started = False
        self._done = False
        self._calls: dict[int, _Call] = {}
        """Output index → the tool call streaming there."""
        self._lean_calls = False
        """A lean stream added a tool call (its items are not decoded)."""
        self._seen = 0
        """Characters of answer text decoded (a lean stream stops once the preview has them)."""
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Chunk]]] = {
            "response.created": self._created,
            "response.output_text.delta": self._delta("content"),
            "response.refusal.delta": self._delta("refusal"),
            "response.reasoning_summary_text.delta": self._delta("reasoning_content"),
            "response.reasoning_text.delta": self._delta("reasoning_content"),
            "response.output_item.added": self._item_added,
            "response.function_call_arguments.delta": self._arguments,
            "response.custom_tool_call_input.delta": self._arguments,
            "response.output_item.done": self._item_done,
            "response.completed": self._completed,
            "response.incomplete": self._completed,
            "response.failed": self._failed,
            "error": self._error,
        }

    @property
    def done(self) -> bool:
        """`response.completed`, `.incomplete` or `.failed` arrived."""
        return self._done

    @property
    def native_events(self) -> frozenset[bytes] | None:
        """The events a lean stream decodes (its pass-through relays them all); None: all."""
        return _LEAN_EVENTS if self._lean else None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Returns the neutral chunks this event makes (none for most events).

        Raises:
            UpstreamError: `response.failed` or an `error` event (retryable unless the
                request is at fault), or data that is not JSON (502, retryable).
        """
        name = event.event
        if name is not None and name not in self._handlers:
            return []  # named, and nothing the proxy reads: not decoded at all
        if self._lean:
            if name == "response.output_text.delta" and self._seen >= PREVIEW_CHARS:
                return []  # the preview is full: the text is relayed, not read
            if name == "response.output_item.added":
                # Only whether a call was made (for the finish reason): the marker is a whole
                # JSON string (quotes inside a string value are escaped), the item's type.
                text = event.data
                if '"function_call"' in text or '"custom_tool_call"' in text:
                    self._lean_calls = True
                return []
            if name == "response.created":
                return self._open()
            if name == "response.completed":
                usage = tail_usage(event.data)
                if usage is not None:
                    return self._completed({"response": {"usage": usage}})
        data = self._load(event)
        kind = data.get("type") if name is None else name
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        return handler(data) if handler else []

    def _load(self, event: SSEEvent) -> dict[str, Any]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise _bad_body(self._dep, f"the upstream sent an invalid {event.event or 'event'}")
        return data

    def _created(self, data: dict[str, Any]) -> list[Chunk]:
        response = data.get("response")
        if isinstance(response, dict):
            head = _envelope(response, "chat.completion.chunk")
            self._envelope["id"] = head["id"]
            self._envelope["created"] = head["created"] or self._envelope["created"]
            self._envelope["model"] = head["model"] or self._envelope["model"]
        return self._open()

    def _delta(self, name: str) -> Callable[[dict[str, Any]], list[Chunk]]:
        """Returns the handler of a text delta event, sent as the chunk delta field `name`."""

        def handle(data: dict[str, Any]) -> list[Chunk]:
            delta = data.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            text = delta if name == "content" else ""  # only the answer's text is previewed
            self._seen += len(text)
            return self._open() + [self._chunk({name: delta}, text=text)]

        return handle

    def _item_added(self, data: dict[str, Any]) -> list[Chunk]:
        item = data.get("item")
        index = data.get("output_index")
        if not isinstance(item, dict) or not isinstance(index, int):
            return []
        return self._start_call(index, item)

    def _start_call(self, index: int, item: Mapping[str, Any]) -> list[Chunk]:
        kind = item.get("type")
        if kind not in ("function_call", "custom_tool_call") or index in self._calls:
            return []
        call = self._calls[index] = _Call(len(self._calls), kind == "custom_tool_call")
        start = {
            "index": call.position,
            "id": str(item.get("call_id") or item.get("id") or f"call_{call.position}"),
            "type": "function",
            "function": {"name": _call_name(item), "arguments": _OPEN_INPUT if call.custom else ""},
        }
        return self._open() + [self._chunk({"tool_calls": [start]})]

    def _arguments(self, data: dict[str, Any]) -> list[Chunk]:
        index = data.get("output_index")
        call = self._calls.get(index) if isinstance(index, int) else None
        delta = data.get("delta")
        if call is None or not isinstance(delta, str) or not delta:
            return []
        call.sent = True
        return [self._args_chunk(call, _escaped(delta) if call.custom else delta)]

    def _item_done(self, data: dict[str, Any]) -> list[Chunk]:
        item = data.get("item")
        index = data.get("output_index")
        if not isinstance(item, dict) or not isinstance(index, int):
            return []
        chunks = self._start_call(index, item)  # an upstream that sent no `added` for it
        call = self._calls.get(index)
        if call is None:
            return chunks
        if not call.sent:  # nothing streamed: the whole arguments (or input) now
            raw = item.get("input") if call.custom else item.get("arguments")
            piece = _escaped(raw) if call.custom else raw
            if isinstance(piece, str) and piece:
                chunks.append(self._args_chunk(call, piece))
            call.sent = True
        if call.custom:
            chunks.append(self._args_chunk(call, _CLOSE_INPUT))
            call.custom = False  # closed: a repeated done adds nothing
        return chunks

    def _completed(self, data: dict[str, Any]) -> list[Chunk]:
        self._done = True
        response = data.get("response")
        response = response if isinstance(response, dict) else {}
        finish = _finish(response, bool(self._calls) or self._lean_calls)
        # a custom call whose `output_item.done` never came still ends as valid JSON
        chunks = self._open() + [self._args_chunk(c, _CLOSE_INPUT) for c in self._calls.values()
                                 if c.custom]  # fmt: skip
        chunks.append(self._chunk({}, finish=finish))
        usage = usage_from(response.get("usage"))
        if usage is not None:
            body = {**self._envelope, "choices": [], "usage": usage_json(usage)}
            chunks.append(Chunk(data=orjson.dumps(body), usage=usage, usage_only=True))
        return chunks

    def _failed(self, data: dict[str, Any]) -> list[Chunk]:
        self._done = True
        response = data.get("response")
        error = response.get("error") if isinstance(response, dict) else None
        raise failure(self._classify, error, "the upstream response failed")

    def _error(self, data: dict[str, Any]) -> list[Chunk]:
        self._done = True
        raise failure(self._classify, data, "the upstream stream failed")

    def _open(self) -> list[Chunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _args_chunk(self, call: _Call, piece: str) -> Chunk:
        return self._chunk({"tool_calls": [{"index": call.position,
                                            "function": {"arguments": piece}}]})  # fmt: skip

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None, text: str = "") -> Chunk:
        if self._lean:
            return Chunk(data=None, text=text, finish=finish)
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = orjson.dumps({**self._envelope, "choices": [choice]})
        return Chunk(data=data, text=text, finish=finish)


_USAGE = '"usage":'
_RAW = json.JSONDecoder()


def tail_usage(data: str) -> dict[str, Any] | None:
    """Returns the `usage` object of a `response.completed` event's JSON, read from the last
    `"usage":` in it (the response's own, which OpenAI puts after the echoed tools), without
    decoding the rest; None when it is not plainly there (the caller then decodes it all)."""
    at = data.rfind(_USAGE)
    if at < 0:
        return None
    start = at + len(_USAGE)
    while start < len(data) and data[start] in " \t\r\n":
        start += 1
    if not data.startswith("{", start):
        return None
    try:
        usage, _ = _RAW.raw_decode(data, start)
    except ValueError:
        return None
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    return usage
