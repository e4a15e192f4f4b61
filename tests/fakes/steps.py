"""Scripted behaviours of the fake upstream: one step answers one request.

Steps are vendor-neutral; `openai_wire` and `anthropic_wire` render them in their wire format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_CONTENT = "Hello! This is the fake upstream."


@dataclass(frozen=True)
class Reply:
    """A normal answer (chat, stream, embeddings or completion, by the path asked)."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    model: str | None = None
    reasoning: str | None = None

    def text(self) -> str:
        """Returns: the content to send; empty by default when the reply calls tools."""
        if self.content is not None:
            return self.content
        return "" if self.tool_calls else DEFAULT_CONTENT


@dataclass(frozen=True)
class Error:
    """An error response in the vendor's error shape."""

    status: int
    message: str
    type: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RateLimit:
    """429 with Retry-After (or retry-after-ms), and optionally the vendor's reset headers."""

    retry_after: float = 1.0
    ms: bool = False
    reset_headers: bool = False


@dataclass(frozen=True)
class Overloaded:
    """Anthropic 529 overloaded_error; 503 on OpenAI paths."""


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer, until `seconds` pass (then close) or stop()."""

    seconds: float = 3600.0


@dataclass(frozen=True)
class Drop:
    """Close the connection right after reading the request, sending nothing."""


@dataclass(frozen=True)
class StreamCut:
    """A 200 stream that sends `after` content events, then closes with no terminator."""

    after: int = 3


@dataclass(frozen=True)
class StreamErrorFirst:
    """A 200 SSE stream whose first event is an error."""

    message: str = "Overloaded"
    status_type: str = "overloaded_error"


@dataclass(frozen=True)
class StreamStall:
    """A 200 stream that sends `after` content events, then neither sends nor closes until the
    client goes away (or `seconds` pass); the fake notes when the client closed."""

    after: int = 2
    seconds: float = 3600.0


@dataclass(frozen=True)
class Raw:
    """A 200 answer of raw bytes: the `head` pieces, then `piece` sent `repeat` times (no
    terminator added). `sse`: chunked `text/event-stream`; else JSON with a Content-Length.
    `pause`: seconds between the head and the rest (so they reach the client in two reads)."""

    head: tuple[bytes, ...] = ()
    piece: bytes = b""
    repeat: int = 0
    sse: bool = True
    pause: float = 0.0


@dataclass(frozen=True)
class ContextTooLong:
    """400 with the vendor's real context-length message."""


@dataclass(frozen=True)
class ToolLoop:
    """An agent's tool round trip, decided per request so that background calls (titles,
    small-model checks) cannot take its turns: see `tool_loop()` and `tests.fakes.turns`."""

    calls: tuple[tuple[str, Any], ...]
    final: str
    other: str = DEFAULT_CONTENT
    reasoning: str | None = None


Step = (
    Reply
    | Error
    | RateLimit
    | Overloaded
    | Hang
    | Drop
    | StreamCut
    | StreamErrorFirst
    | StreamStall
    | Raw
    | ContextTooLong
    | ToolLoop
)


def reply(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    model: str | None = None,
    reasoning: str | None = None,
) -> Reply:
    """A normal answer. `tool_calls`: [{"name": ..., "arguments": {...}, "id"?: ...}].

    Default content is DEFAULT_CONTENT (empty when tool_calls are given). `usage` may use either
    vendor's names (prompt_tokens/input_tokens, completion_tokens/output_tokens, and
    cache_read_input_tokens / cache_creation_input_tokens / cached_tokens).
    """
    calls = tuple(dict(call) for call in tool_calls) if tool_calls else None
    return Reply(content, calls, finish_reason, usage, delay, chunk_delay, model, reasoning)


def error(
    status: int,
    message: str = "The fake upstream returned an error.",
    *,
    type: str | None = None,  # noqa: A002 - the vendor's field name
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Error:
    """An error; `type` defaults to the vendor's usual type for the status."""
    return Error(status, message, type, code, tuple((headers or {}).items()))


def rate_limit(
    retry_after: float = 1.0, *, ms: bool = False, reset_headers: bool = False
) -> RateLimit:
    """429 with `Retry-After` (whole seconds, rounded up) or `retry-after-ms` when ms=True."""
    return RateLimit(retry_after, ms, reset_headers)


def overloaded() -> Overloaded:
    """Anthropic 529 overloaded_error (503 on OpenAI paths)."""
    return Overloaded()


def hang(seconds: float = 3600.0) -> Hang:
    """Never answer (until `seconds` pass, then close, or until stop())."""
    return Hang(seconds)


def drop() -> Drop:
    """Close the connection right after reading the request."""
    return Drop()


def stream_cut(after: int = 3) -> StreamCut:
    """Send `after` content events of a 200 stream, then close abruptly."""
    return StreamCut(after)


def stream_error_first(
    message: str = "Overloaded", status_type: str = "overloaded_error"
) -> StreamErrorFirst:
    """A 200 SSE stream whose first event is an error of type `status_type`."""
    return StreamErrorFirst(message, status_type)


def stream_stall(after: int = 2, seconds: float = 3600.0) -> StreamStall:
    """Send `after` content events of a 200 stream, then hold the connection silently."""
    return StreamStall(after, seconds)


def raw(
    *head: bytes, piece: bytes = b"", repeat: int = 0, sse: bool = True, pause: float = 0.0
) -> Raw:
    """A 200 answer of exactly these bytes: `head`, then after `pause` seconds `piece` `repeat`
    times (generated as sent, so hundreds of MB cost the fake no memory)."""
    return Raw(tuple(head), piece, repeat, sse, pause)


def context_too_long() -> ContextTooLong:
    """400 with the vendor's context-length-exceeded error."""
    return ContextTooLong()


def tool_loop(
    calls: dict[str, Any],
    final: str,
    *,
    other: str = DEFAULT_CONTENT,
    reasoning: str | None = None,
) -> ToolLoop:
    """Answer each request by what it carries, in every wire format (Messages, Chat, Responses):

    - its conversation ends with tool results: `final`, with `{result}` replaced by their text
      on one line (whitespace collapsed, at most 300 characters);
    - it offers a tool named in `calls`: a call of the first such tool (in `calls`' order), with
      the given arguments (a dict; a str is the input of a Responses `custom` tool);
    - anything else (a title request, a small-model check, a request with no tools): `other`.

    `reasoning`: the tool-calling answer also carries it (a thinking block with a signature, a
    Responses reasoning item with encrypted content, `reasoning_content`), so the agent must
    replay it. Meant for set_default(), so it answers every request of an agent's run.
    """
    return ToolLoop(tuple(calls.items()), final, other, reasoning)
