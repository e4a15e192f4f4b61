"""Neutral request, response, chunk and usage types that every provider adapter speaks.

The proxy's outward format is OpenAI's, so a request keeps the client's OpenAI body as a dict
and a response or chunk carries OpenAI JSON bytes ready to send; adapters translate to and
from their own wire format around these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Kind = Literal["chat", "embeddings", "completions"]
PIN_HEADER = "x-llmproxy-deployment"
"""The request header that pins a request to one deployment id (the master key only), named
as the response header that says which deployment answered."""


class SharedTools(list[dict[str, Any]]):
    """Chat tools converted once from a client's tool list and handed to every request that
    sends the same bytes again (an agent sends its tools unchanged on every turn), so
    read-only. `derived` keeps what a provider builds from them (Anthropic's tool blocks),
    built once too."""

    __slots__ = ("derived",)

    def __init__(self, tools: list[dict[str, Any]]) -> None:
        super().__init__(tools)
        self.derived: dict[str, Any] = {}


@dataclass
class ChatRequest:
    """One client request, after the proxy-only fields were taken out of the body."""

    model: str
    """The group the client asked for."""
    body: dict[str, Any]
    """The OpenAI request body, without `api_key`, `api_base`, `base_url` and `cache`."""
    kind: Kind = "chat"
    stream: bool = False
    include_usage: bool = False
    """The client asked for `stream_options.include_usage`."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers an adapter may pass through (e.g. `anthropic-beta`), lower-case names."""
    request_id: str = ""
    drop_params: bool = False
    created: int = 0
    """Unix time the proxy took the request (set by the pipeline); answers that carry no
    timestamp of their own (Anthropic's) use it as OpenAI's `created`."""
    front_door: str = "chat"
    """The client wire format it came through: "chat", "messages" or "responses"."""
    native: NativeBody | None = None
    """The client's own body, for a pass-through when the upstream speaks the same format."""
    session: str | None = None
    """The agent session id the request carried (headers, `prompt_cache_key`, metadata)."""
    client: str = ""
    """The client, named from its User-Agent."""
    neutral_chunks: bool = True
    """A stream's chunks must carry OpenAI's bytes (the cache keeps them). When False, a
    pass-through stream, whose client gets the upstream's own events, may skip making them."""
    ping_after: float | None = None
    """For a stream: after this many seconds of upstream silence (once it started) the
    pipeline yields b"" so the front door can send a keep-alive (Messages' `ping`)."""
    caller: Any = None
    """Who is calling (a `proxy.access.Caller`, set by the front door); None or the master's
    caller: unlimited. Typed loosely: the core types cannot import the access layer."""
    pending: Callable[[], dict[str, Any]] | None = None
    """The translation of the client's own body into `body`, deferred while every deployment
    that may serve the request takes that body as sent (`body` is then a stub with `model`,
    `stream` and `max_tokens`); `settle()` runs it when one that does not is tried."""
    capture: Callable[[UpstreamRequest], None] | None = None
    """Set by the pipeline only while request bodies are stored: each attempt hands it the
    request it sends upstream (the last one stays). None: nothing is captured."""
    chunk_docs: list[Mapping[str, Any] | bytes] | None = None
    """Set by a front door that renders the stream in another format: with each piece of
    chunk bytes it yields, the pipeline appends those chunks here (each its `doc`, or its
    `data` when it has none), so the renderer reads them without parsing the bytes again."""
    pin: str | None = None
    """The one deployment of the group to try (the master's `x-llmproxy-deployment` header):
    no other, no fallbacks, no cache; tried even while cooling down or at a limit. None: the
    router chooses."""

    def settle(self) -> None:
        """Fills `body` with the deferred translation, once (nothing when none is pending).

        Raises:
            BadRequest: the client's body cannot be translated (the field is named).
        """
        pending = self.pending
        if pending is not None:
            self.pending = None
            self.body = pending()


@dataclass(frozen=True, slots=True)
class NativeBody:
    """A client body in a wire format some upstream speaks natively."""

    wire: str
    """"anthropic_messages" or "openai_responses"."""
    body: dict[str, Any]
    """The client's body without the proxy-only fields; `model` is replaced upstream."""
    raw: bytes = b""
    """The body as the client sent it, when it held no proxy-only field (else b""): sent
    upstream with only `model`'s value replaced when nothing else changes (`native_bytes`)."""
    bulk: Mapping[str, bytes] = field(default_factory=dict)
    """The fields left undecoded in `body` (each an `orjson.Fragment` there) and their JSON
    bytes, for a body parsed only as far as its pass-through needs (`load_body_lazily`)."""

    def decoded(self) -> dict[str, Any]:
        """Returns `body` with its undecoded fields decoded (for what reads every value)."""
        if not self.bulk:
            return self.body
        out = dict(self.body)
        for name, data in self.bulk.items():
            with contextlib.suppress(orjson.JSONDecodeError):  # else kept as the bytes came
                out[name] = orjson.loads(data)
        return out


@dataclass
class Usage:
    """Token counts as the upstream reported them (or estimated, flagged)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of prompt_tokens)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's prompt cache (part of prompt_tokens)."""
    reasoning_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        """Reads OpenAI's `usage` object; None when absent."""
        if not usage:
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(usage.get("total_tokens") or prompt + completion),
            cached_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_creation_tokens") or 0),
            reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
        )

    def as_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens or self.cache_write_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass
class ChatResponse:
    """A whole answer in OpenAI's format."""

    body: bytes
    """OpenAI JSON, sent to the client as is."""
    usage: Usage | None = None
    preview: str = ""
    """The start of the answer's text, for the dashboard."""
    model: str = ""
    native: bytes | None = None
    """The upstream's own body, when it speaks the client's wire format (a pass-through):
    sent to the client as is, while `body` (OpenAI's form) feeds the cache and the preview."""
    finish: str | None = None
    """Why the answer ended, in OpenAI's finish_reason vocabulary (stop, length, tool_calls,
    content_filter...); None when the upstream said nothing."""


@dataclass
class Chunk:
    """One streamed piece, already in OpenAI's `chat.completion.chunk` format."""

    data: bytes | None
    """The JSON to send as one `data:` event; None when there is nothing to send."""
    usage: Usage | None = None
    text: str = ""
    usage_only: bool = False
    """This chunk only carries usage (choices empty): dropped unless the client asked."""
    native: bytes | None = None
    """In a pass-through stream: the upstream's SSE event(s) this chunk came from, as sent."""
    finish: str | None = None
    """Set on the chunk that ends the answer: OpenAI's finish_reason vocabulary (stop, length,
    tool_calls, content_filter...); None on every other chunk."""
    doc: Mapping[str, Any] | None = None
    """`data` as the decoder built or read it, when it did: a front door rendering the stream
    in another format reads this instead of parsing `data` again. Never mutated."""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """The request an adapter builds and the transport sends: plain data, no I/O.

    (Not `httpx.Request`: building one parses the URL and wraps the headers on every call,
    which was a sixth of the proxy's CPU per request.)
    """

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    """Lower-case names. Left out of repr: they carry the provider key."""
    content: bytes = b""

    def __post_init__(self) -> None:
        if any(name != name.lower() for name in self.headers):
            object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str
    raw: bytes = field(default=b"", repr=False, compare=False)
    """The event's bytes as received (line endings made LF, its blank line included), for a
    pass-through to relay without encoding it again; b"" when it was not decoded from bytes."""


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


PREVIEW_CHARS = 200
"""Characters of an answer's text kept for its preview (the dashboard's), and all a lean
stream decoder reads of it."""


def text_preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class CacheControl:
    """The client's per-request cache wishes."""

    no_cache: bool = False
    ttl: float | None = None
