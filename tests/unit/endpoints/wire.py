"""Test wire helpers: OpenAI chunk builders, an SSE reader, and the official SDK clients
served by a mock transport (no sockets), so rendered bytes are read as a real client would."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import orjson

from proxy.sse import SSEDecoder

HEAD = {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "gpt-4o-mini"}  # fmt: skip
USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 12},
}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    """One `chat.completion.chunk` JSON (no choices when `delta` is None)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps({**HEAD, "choices": choices, **extra})


def tool_delta(index: int, *, id: str | None = None, name: str | None = None,
               args: str | None = None) -> dict[str, Any]:  # fmt: skip
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call.update(id=id, type="function")
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    if function:
        call["function"] = function
    return {"tool_calls": [call]}


def completion(message: dict[str, Any], finish: str = "stop", usage: Any = USAGE) -> bytes:
    """One `chat.completion` JSON with a single choice."""
    doc = {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1700000000,
           "model": "gpt-4o-mini",
           "choices": [{"index": 0, "message": {"role": "assistant", **message},
                        "finish_reason": finish, "logprobs": None}],
           "usage": usage}  # fmt: skip
    return orjson.dumps(doc)


def events(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """Parses SSE bytes into (event name, data) pairs; checks every event is well formed."""
    assert data.endswith(b"\n\n")
    decoder = SSEDecoder()
    out = [(e.event, orjson.loads(e.data)) for e in decoder.feed(data)]
    assert decoder.flush() == []
    return out


def run(renderer: Any, pieces: Iterable[bytes]) -> bytes:
    """Feeds every chunk, then finishes; returns all the bytes sent."""
    out = b"".join(renderer.feed(piece) for piece in pieces)
    return out + renderer.finish()


def _http(sdk: str) -> Any:
    """The HTTP client module the SDK is built on (`httpx2` in current SDKs, `httpx` before)."""
    base = importlib.import_module(f"{sdk}._base_client")
    return getattr(base, "httpx2", None) or base.httpx


def _client(sdk: str, body: bytes, status: int, sse: bool, base_url: str) -> Any:
    module, http = importlib.import_module(sdk), _http(sdk)
    kind = "text/event-stream" if sse else "application/json"

    def answer(request: Any) -> Any:
        return http.Response(status, content=body, headers={"content-type": kind})

    transport = http.Client(transport=http.MockTransport(answer))
    name = "Anthropic" if sdk == "anthropic" else "OpenAI"
    return getattr(module, name)(api_key="k", base_url=base_url, http_client=transport,
                                 max_retries=0)  # fmt: skip


def anthropic_client(body: bytes, *, status: int = 200, sse: bool = False) -> Any:
    """An `anthropic.Anthropic` whose every request is answered with `body`."""
    return _client("anthropic", body, status, sse, "http://proxy.test")


def openai_client(body: bytes, *, status: int = 200, sse: bool = False) -> Any:
    """An `openai.OpenAI` whose every request is answered with `body`."""
    return _client("openai", body, status, sse, "http://proxy.test/v1")
