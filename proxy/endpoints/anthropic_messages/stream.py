"""OpenAI `chat.completion.chunk`s → Anthropic Messages SSE, one renderer per stream.

Order: `message_start`, then per content block `content_block_start`, its deltas
(`thinking_delta`, `text_delta`, `input_json_delta`) and `content_block_stop`, then
`message_delta` (stop_reason, usage) and `message_stop`; or an `error` event on a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.endpoints.anthropic_messages.errors import error_body, error_from_document
from proxy.endpoints.anthropic_messages.response import (
    message_id,
    stop_reason,
    tool_use_id,
    usage_block,
)
from proxy.endpoints.chunk_stream import ChunkRenderer
from proxy.errors import ProxyError


def event(name: str, data: Mapping[str, Any]) -> bytes:
    """Returns one SSE event: `event: <name>`, `data: <json>`, a blank line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class _Tool:
    id: str = ""
    name: str = ""
    block: int | None = None
    """Its content block index, once started (it starts when its name is known)."""
    pending: list[str] = field(default_factory=list)


class MessagesStream(ChunkRenderer):
    """Renders one OpenAI chunk stream as Messages SSE (see `ChunkRenderer`); its terminal
    event is `message_stop` or an `error` event."""

    def __init__(self, model: str, *, message_id: str = "", input_tokens: int = 0) -> None:
        """`input_tokens` is what `message_start` reports before the upstream's count arrives
        (with `message_delta`); leave it 0 unless you have the upstream's number."""
        super().__init__()
        self._model = model
        self._id = message_id
        self._input_tokens = input_tokens
        self._started = False
        self._next_block = 0
        self._open: tuple[str, int] | None = None
        """The open block: (kind, block index); kind is text, thinking or tool."""
        self._tools: dict[int, _Tool] = {}

    def _error_of(self, doc: Mapping[str, Any]) -> ProxyError:
        return error_from_document(doc)

    def error(self, err: ProxyError, message: str | None = None) -> bytes:
        """Returns an `error` event in Anthropic's shape; the stream is then closed.

        `message` is the text the client may read (keys scrubbed); `err.message` if None.
        """
        if self._closed:
            return b""
        self._closed = True
        return event("error", error_body(err, message))

    def ping(self) -> bytes:
        """Returns a `ping` event (for long waits; clients ignore it)."""
        return b"" if self._closed else event("ping", {"type": "ping"})

    def _start(self, doc: Mapping[str, Any] | None = None) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._id = self._id or message_id(doc.get("id") if doc else None)
        usage = {**usage_block(None), "input_tokens": self._input_tokens}
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _choice(self, choice: Mapping[str, Any]) -> bytes:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        out = b""
        reasoning = delta.get("reasoning_content", delta.get("reasoning"))
        if isinstance(reasoning, str) and reasoning:
            out += self._text("thinking", reasoning)
        for name in ("content", "refusal"):
            if isinstance(delta.get(name), str) and delta[name]:
                out += self._text("text", delta[name])
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool(call)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
            out += self._close()
        return out

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open is None or self._open[0] != kind:
            out += self._close()
            empty = {"type": "text", "text": ""}
            if kind == "thinking":
                empty = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._open_block(kind, empty)
        piece = {"type": "text_delta", "text": text}
        if kind == "thinking":
            piece = {"type": "thinking_delta", "thinking": text}
        return out + self._delta(self._next_block - 1, piece)

    def _tool(self, call: Mapping[str, Any]) -> bytes:
        index = call.get("index", 0)
        tool = self._tools.setdefault(index if isinstance(index, int) else 0, _Tool())
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        tool.id = tool.id or str(call.get("id") or "")
        tool.name = tool.name or str(function.get("name") or "")
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            tool.pending.append(piece)
        out = self._start_tool(tool) if tool.block is None and tool.name else b""
        return out + self._tool_flush(tool)

    def _start_tool(self, tool: _Tool) -> bytes:
        out = self._close()
        block = {"type": "tool_use", "id": tool_use_id(tool.id), "name": tool.name, "input": {}}
        out += self._open_block("tool", block)
        tool.block = self._next_block - 1
        return out

    def _open_block(self, kind: str, block: Mapping[str, Any]) -> bytes:
        """Starts block number `_next_block`, which is then `_next_block - 1`."""
        index = self._next_block
        self._next_block += 1
        self._open = (kind, index)
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return event("content_block_start", data)

    def _delta(self, index: int, delta: Mapping[str, Any]) -> bytes:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        return event("content_block_delta", data)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _end(self) -> bytes:
        out = self._start()
        for tool in self._tools.values():  # a call whose name never came: start it anyway
            if tool.block is None:
                tool.name = tool.name or "unknown"
                out += self._start_tool(tool) + self._tool_flush(tool)
        out += self._close()
        tool_use = any(tool.block is not None for tool in self._tools.values())
        delta = {"stop_reason": stop_reason(self._finish, tool_use=tool_use), "stop_sequence": None}
        data = {"type": "message_delta", "delta": delta, "usage": usage_block(self._usage)}
        self._closed = True
        return out + event("message_delta", data) + event("message_stop", {"type": "message_stop"})

    def _tool_flush(self, tool: _Tool) -> bytes:
        if tool.block is None or not tool.pending:
            return b""
        partial = "".join(tool.pending)
        tool.pending.clear()
        return self._delta(tool.block, {"type": "input_json_delta", "partial_json": partial})
