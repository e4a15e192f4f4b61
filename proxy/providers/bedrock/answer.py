"""Bedrock Converse answers → OpenAI: the whole answer, and ConverseStream's events as
`chat.completion.chunk`s.

The stream's bytes are AWS's binary event stream, framed by botocore's own parser
(`EventStreamBuffer`, which checks each message's CRCs); each event's JSON payload is then
translated as it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.anthropic.request import JSON_TOOL
from proxy.providers.anthropic.response import usage_json
from proxy.providers.bedrock.errors import stream_exception
from proxy.schema import ChatResponse, Chunk, SSEEvent, Usage, text_preview

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
}


def finish_reason(stop: Any, *, tool_calls: bool) -> str:
    """Returns OpenAI's finish_reason for Converse's stopReason (a `tool_use` stop made
    only by the response_format tool is a plain `stop`)."""
    reason = _FINISH.get(stop, "stop") if isinstance(stop, str) else "stop"
    return "stop" if reason == "tool_calls" and not tool_calls else reason


def usage_from(raw: Any) -> Usage:
    """Returns the Usage for Converse's usage object; cache reads and writes count as prompt."""
    raw = raw if isinstance(raw, dict) else {}

    def count(name: str) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) else 0

    read, write = count("cacheReadInputTokens"), count("cacheWriteInputTokens")
    prompt, completion = count("inputTokens") + read + write, count("outputTokens")
    return Usage(prompt, completion, prompt + completion, read, write)


def parse_response(dep: Deployment, body: bytes, *, created: int, answer_id: str) -> ChatResponse:
    """Returns the OpenAI `chat.completion` for a 2xx Converse body.

    Raises:
        UpstreamError: the body is not a Converse answer (502, retryable).
    """
    try:
        doc = orjson.loads(body)
        blocks = doc["output"]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        blocks = None
    if not isinstance(blocks, list):
        raise bad_answer(dep, "Bedrock answered 2xx with a body that is not a Converse answer.")
    message, has_calls = _message(blocks)
    usage = usage_from(doc.get("usage"))
    finish = finish_reason(doc.get("stopReason"), tool_calls=has_calls)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    out = {
        "id": answer_id,
        "object": "chat.completion",
        "created": created,
        "model": dep.model,
        "choices": [choice],
        "usage": usage_json(usage),
    }
    preview = text_preview(message["content"] or "")
    return ChatResponse(
        body=orjson.dumps(out), usage=usage, model=dep.model, preview=preview, finish=finish
    )


def _message(blocks: list[Any]) -> tuple[dict[str, Any], bool]:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        use = block.get("toolUse")
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(use, dict) and use.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(use.get("input", {})).decode())
        elif isinstance(use, dict):
            arguments = orjson.dumps(use.get("input", {})).decode()
            calls.append(
                {
                    "id": use.get("toolUseId", ""),
                    "type": "function",
                    "function": {"name": use.get("name", ""), "arguments": arguments},
                }
            )
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            reasoning.append(text if isinstance(text, str) else "")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if not calls and message["content"] is None:
        message["content"] = ""
    if calls:
        message["tool_calls"] = calls
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    return message, bool(calls)


def bad_answer(dep: Deployment, message: str) -> UpstreamError:
    return UpstreamError(
        message,
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
        code="bad_upstream_response",
    )


class ConverseStreamDecoder:
    """Turns one ConverseStream event stream into OpenAI chunks: a role chunk, content,
    reasoning and tool-call deltas, one finish chunk at `messageStop`, then at `metadata` a
    usage-only chunk (`choices: []`). Fed raw bytes (`feed_bytes`), never SSE."""

    def __init__(self, dep: Deployment, *, created: int, answer_id: str) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._dep = dep
        self._buffer = EventStreamBuffer()
        self._envelope = {
            "id": answer_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": dep.model,
        }
        self._started = False
        self._done = False
        self._tools: dict[Any, int | None] = {}
        """Converse block index → OpenAI tool-call index (None: the response_format tool)."""

    @property
    def done(self) -> bool:
        """`metadata` arrived: the upstream's last event."""
        return self._done

    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Bedrock streams no SSE; see `feed_bytes`."""
        raise bad_answer(self._dep, "Bedrock sent an SSE event instead of an event stream.")

    def feed_bytes(self, data: bytes) -> list[Chunk]:
        """Returns the chunks the complete messages in `data` (and before) make.

        Raises:
            UpstreamError: an exception event, or bytes that are not an event stream.
        """
        from botocore.eventstream import ParserError

        self._buffer.add_data(data)
        chunks: list[Chunk] = []
        try:
            for message in self._buffer:
                headers: Any = message.headers  # a dict (botocore-stubs says int)
                chunks.extend(self._event(headers, message.payload))
        except ParserError:
            raise bad_answer(self._dep, "Bedrock sent a damaged event stream.") from None
        return chunks

    def _event(self, headers: Mapping[str, Any], payload: bytes) -> list[Chunk]:
        kind = headers.get(":message-type")
        if kind != "event":
            raise stream_exception(self._dep, headers, payload)
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise bad_answer(self._dep, "Bedrock sent an event that is not JSON.") from None
        name = headers.get(":event-type")
        if name == "contentBlockStart":
            return self._block_start(data)
        if name == "contentBlockDelta":
            return self._delta(data)
        if name == "messageStop":
            has_calls = any(v is not None for v in self._tools.values())
            reason = finish_reason(data.get("stopReason"), tool_calls=has_calls)
            return self._open() + [self._chunk({}, finish=reason)]
        if name == "metadata":
            self._done = True
            usage = usage_from(data.get("usage"))
            body = {**self._envelope, "choices": [], "usage": usage_json(usage)}
            return [Chunk(data=orjson.dumps(body), usage=usage, usage_only=True)]
        return self._open() if name == "messageStart" else []

    def _block_start(self, data: dict[str, Any]) -> list[Chunk]:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        index = data.get("contentBlockIndex")
        if use.get("name") == JSON_TOOL:
            self._tools[index] = None
            return []
        position = sum(1 for v in self._tools.values() if v is not None)
        self._tools[index] = position
        call = {
            "index": position,
            "id": use.get("toolUseId", ""),
            "type": "function",
            "function": {"name": use.get("name", ""), "arguments": ""},
        }
        return self._open() + [self._chunk({"tool_calls": [call]})]

    def _delta(self, data: dict[str, Any]) -> list[Chunk]:
        delta = data.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str) and text:
            return self._open() + [self._chunk({"content": text}, text=text)]
        partial = (delta.get("toolUse") or {}).get("input")
        if isinstance(partial, str) and partial:
            position = self._tools.get(data.get("contentBlockIndex"))
            if position is None:  # the response_format tool's JSON is the answer
                return self._open() + [self._chunk({"content": partial}, text=partial)]
            call = {"index": position, "function": {"arguments": partial}}
            return self._open() + [self._chunk({"tool_calls": [call]})]
        thought = (delta.get("reasoningContent") or {}).get("text")
        if isinstance(thought, str) and thought:
            return self._open() + [self._chunk({"reasoning_content": thought})]
        return []

    def _open(self) -> list[Chunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None, text: str = "") -> Chunk:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = orjson.dumps({**self._envelope, "choices": [choice]})
        return Chunk(data=data, text=text, finish=finish)
