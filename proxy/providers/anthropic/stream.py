"""Anthropic Messages stream events → OpenAI `chat.completion.chunk`s, one decoder per stream.

Each event is translated as it arrives; the decoder only remembers the message id and model,
which content blocks are tool calls, the usage so far, and whether it has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.anthropic.errors import stream_error
from proxy.providers.anthropic.request import JSON_TOOL
from proxy.providers.anthropic.response import finish_reason, usage_from, usage_json
from proxy.schema import Chunk, SSEEvent

_LEAN_EVENTS = frozenset(
    {b"message_start", b"content_block_start", b"content_block_delta", b"message_delta",
     b"message_stop", b"error"}
)  # fmt: skip
"""What a lean stream reads: not `ping`s nor `content_block_stop`s (nor unknown events)."""


class AnthropicStreamDecoder:
    """Turns one Anthropic stream into OpenAI chunks (see `StreamDecoder`).

    Order: a role chunk, content / reasoning / tool-call deltas, one finish chunk at
    `message_delta`, then at `message_stop` a usage-only chunk (`choices: []`) that the router
    sends only when the client asked for `stream_options.include_usage`.
    """

    def __init__(self, dep: Deployment, *, created: int = 0, lean: bool = False) -> None:
        """`lean`: a pass-through whose OpenAI chunk bytes nobody reads (no cache): chunks carry
        only their text and usage, and no JSON is built for them."""
        self._dep = dep
        self._lean = lean
        self._created = created
        self._id = ""
        self._model = dep.model
        self._started = False
        self._finished = False
        self._done = False
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int | None] = {}
        """Anthropic block index → OpenAI tool-call index (None: the response_format tool)."""
        self._lean_calls = False
        """A lean stream started a tool_use block (its blocks are not decoded)."""
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Chunk]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    @property
    def done(self) -> bool:
        """`message_stop` arrived: the upstream finished its answer."""
        return self._done

    @property
    def native_events(self) -> frozenset[bytes] | None:
        """The events a lean stream decodes (its pass-through relays them all); None: all."""
        return _LEAN_EVENTS if self._lean else None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Returns the OpenAI chunks this event makes; pings and unknown events make none.

        Raises:
            UpstreamError: an `error` event (overloaded and rate limits retryable), or data
                that is not JSON (502, retryable).
        """
        if self._lean:
            skipped = self._lean_skip(event)
            if skipped is not None:
                return skipped
        data = self._load(event)
        kind = data.get("type") or event.event
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        return handler(data) if handler else []

    def _lean_skip(self, event: SSEEvent) -> list[Chunk] | None:
        """In a lean stream (a pass-through: the client gets the upstream's own events), the
        events that carry nothing the proxy reads are answered without decoding them: pings,
        block starts and ends, and deltas of tool input, thinking or signatures. Returns None
        for an event to decode (the message's start and end, text, errors).

        The markers are searched in the raw JSON, where they can only be the block's own
        type: inside a string value their quotes would be escaped.
        """
        name = event.event
        if name == "content_block_delta":
            return None if '"text_delta"' in event.data else []
        if name == "content_block_start":
            if '"tool_use"' in event.data:
                self._lean_calls = True
            return []
        if name == "ping" or name == "content_block_stop":
            return []
        return None

    def _load(self, event: SSEEvent) -> dict[str, Any]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"Anthropic sent a stream event that is not JSON ({event.event or 'message'}).",
                provider=self._dep.provider,
                key_id=self._dep.id,
                status=502,
                retryable=True,
                code="bad_upstream_response",
            )
        return data

    def _message_start(self, data: dict[str, Any]) -> list[Chunk]:
        message = data.get("message")
        if isinstance(message, dict):
            self._id = str(message.get("id") or "")
            if isinstance(message.get("model"), str):
                self._model = message["model"]
            self._merge_usage(message.get("usage"))
        return self._open()

    def _block_start(self, data: dict[str, Any]) -> list[Chunk]:
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        kind = block.get("type")
        if kind == "tool_use":
            return self._open() + self._tool_start(data.get("index"), block)
        if kind == "text":
            return self._content(block.get("text"))
        if kind == "thinking":
            return self._reasoning(block.get("thinking"))
        return []

    def _tool_start(self, index: Any, block: dict[str, Any]) -> list[Chunk]:
        if not isinstance(index, int):
            return []
        if block.get("name") == JSON_TOOL:
            self._tools[index] = None
            return []
        position = sum(1 for v in self._tools.values() if v is not None)
        self._tools[index] = position
        call = {
            "index": position,
            "id": block.get("id", ""),
            "type": "function",
            "function": {"name": block.get("name", ""), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: dict[str, Any]) -> list[Chunk]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._content(delta.get("text"))
        if kind == "thinking_delta":
            return self._reasoning(delta.get("thinking"))
        if kind == "input_json_delta":
            return self._arguments(data.get("index"), delta.get("partial_json"))
        return []  # signature_delta, citations_delta: nothing OpenAI can carry

    def _arguments(self, index: Any, partial: Any) -> list[Chunk]:
        if not isinstance(partial, str) or not partial or index not in self._tools:
            return []
        position = self._tools[index]
        if position is None:
            return self._content(partial)  # the response_format tool's JSON is the answer
        call = {"index": position, "function": {"arguments": partial}}
        return self._open() + [self._chunk({"tool_calls": [call]})]

    def _message_delta(self, data: dict[str, Any]) -> list[Chunk]:
        self._merge_usage(data.get("usage"))
        delta = data.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        return self._finish(stop) if stop else []

    def _message_stop(self, data: dict[str, Any]) -> list[Chunk]:
        chunks = self._open() + self._finish("end_turn")
        self._done = True
        usage = usage_from(self._usage)
        body = {**self._envelope(), "choices": [], "usage": usage_json(usage)}
        raw = None if self._lean else orjson.dumps(body)
        return [*chunks, Chunk(data=raw, usage=usage, usage_only=True, doc=body)]

    def _error(self, data: dict[str, Any]) -> list[Chunk]:
        raise stream_error(self._dep, data)

    def _finish(self, stop_reason: str) -> list[Chunk]:
        if self._finished:
            return []
        self._finished = True
        has_calls = self._lean_calls or any(v is not None for v in self._tools.values())
        reason = finish_reason(stop_reason, tool_calls=has_calls)
        return [self._chunk({}, finish=reason)]

    def _open(self) -> list[Chunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _content(self, text: Any) -> list[Chunk]:
        if not isinstance(text, str) or not text:
            return []
        return self._open() + [self._chunk({"content": text}, text=text)]

    def _reasoning(self, text: Any) -> list[Chunk]:
        if not isinstance(text, str) or not text:
            return []
        return self._open() + [self._chunk({"reasoning_content": text})]

    def _merge_usage(self, usage: Any) -> None:
        # message_delta's counts are cumulative; a null means "unchanged".
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if isinstance(v, int))

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None, text: str = "") -> Chunk:
        if self._lean:
            return Chunk(data=None, text=text, finish=finish)
        doc = {
            **self._envelope(),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return Chunk(data=orjson.dumps(doc), text=text, finish=finish, doc=doc)
