"""The contract every provider adapter keeps: translate requests and answers, do no I/O.

The router owns the one shared upstream client (`proxy/routing/transport.py`), the timeouts
and the retries; an adapter only turns a `ChatRequest` into an `UpstreamRequest`, turns the
upstream's bytes back into OpenAI's format, and says what an error means (`classify_error`
decides `retryable`). A provider that needs no upstream (the mock) answers through `local`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.schema import ChatRequest, ChatResponse, Chunk, NativeBody, SSEEvent, UpstreamRequest


class StreamDecoder(Protocol):
    """Per-stream state: turns upstream SSE events into OpenAI chunks, in order."""

    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Returns the chunks this event makes (often one, maybe none).

        Raises:
            UpstreamError: the event is an error from the upstream.
        """
        ...

    @property
    def done(self) -> bool:
        """The upstream said its stream is complete."""
        ...


@runtime_checkable
class BinaryStreamDecoder(StreamDecoder, Protocol):
    """A decoder for an upstream whose stream is not SSE (Bedrock's AWS event stream): the
    attempt feeds it the raw bytes instead of SSE events."""

    def feed_bytes(self, data: bytes) -> list[Chunk]:
        """Returns the chunks the bytes received so far complete (often none).

        Raises:
            UpstreamError: an error in the stream, or bytes that are not one.
        """
        ...


class LocalAnswers(Protocol):
    """The optional ability to answer without an upstream: no network, no key, no bill."""

    def respond(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        """Returns the whole answer to a non-stream request."""
        ...

    def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[Chunk]:
        """Yields the answer to a stream request as OpenAI chunks (at least one)."""
        ...


class Provider(Protocol):
    """One wire format. Pure: no I/O, no clock, no global state."""

    wire: str

    @property
    def forwarded_headers(self) -> tuple[str, ...]:
        """Client headers (lower-case) this provider passes upstream from `ChatRequest.headers`."""
        ...

    @property
    def native_wire(self) -> str | None:
        """The client wire format this provider's upstream speaks as is (`NativeBody.wire`):
        a request in it passes through with only `model` replaced. None: always translated."""
        ...

    @property
    def local(self) -> LocalAnswers | None:
        """Its own answers when it needs no upstream (the mock); None for a real upstream.

        When set, the attempt asks it instead of sending what `build_request` builds.
        """
        ...

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Returns the upstream request for `req` on deployment `dep` (key from `dep.key`).

        Raises:
            BadRequest: the request cannot be expressed for this provider.
            NotImplementedByProvider: the route (e.g. embeddings) is not served by it.
        """
        ...

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the OpenAI answer for a 2xx upstream body.

        Raises:
            UpstreamError: the body is not a valid answer.
        """
        ...

    def open_stream(self, req: ChatRequest, dep: Deployment) -> StreamDecoder:
        """Returns a decoder for one upstream stream."""
        ...

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what a non-2xx upstream answer means, with `retryable` decided."""
        ...

    def probe_request(self, dep: Deployment) -> UpstreamRequest | None:
        """Returns the cheapest request that proves `dep`'s key (list models, no tokens spent).

        Any 2xx answer means the key works; an error answer goes to `classify_error`.

        Returns:
            The request, or None when there is no key to prove (a provider answering locally).
        """
        ...


def passes_through(provider: Provider, req: ChatRequest) -> bool:
    """Whether `req` goes to `provider` in the client's own format (only `model` replaced)."""
    native = req.native
    return native is not None and native.wire == provider.native_wire


_MODEL_KEY = b'"model"'
_SPACE = b" \t\r\n"


def native_bytes(native: NativeBody, body: dict[str, Any]) -> bytes:
    """Returns the bytes of `body`, a passed-through client body for the upstream.

    When `body` is the client's own body with only `model` changed (no default, clamp or
    drop applied: every other value the very object the client sent), that is the client's
    bytes with the model's value replaced, sparing the re-encoding of an agent's 60 KB
    request; otherwise `body` encoded.
    """
    raw, client = native.raw, native.body
    if raw and len(body) == len(client):
        for name, value in client.items():
            if name != "model" and body.get(name) is not value:
                break
        else:
            replaced = replace_model(raw, client.get("model"), body.get("model"))
            if replaced is not None:
                return replaced
    return orjson.dumps(body)


def replace_model(raw: bytes, old: Any, new: Any) -> bytes | None:
    """Returns `raw` (a JSON object) with its `"model": old` made `"model": new`; None when
    that cannot be done by bytes alone for sure: `"model"` appears more than once (a nested
    key or a value of that name), or not as orjson would write `old`.

    A `"model"` right after the object's opening brace is its first key (agents put it
    first). Elsewhere it must be the one `"model"` token: its quotes unescaped, that is a key
    or a whole string, and followed by a colon and `old`'s JSON it is the key the parsed body
    holds `old` under.
    """
    if not isinstance(old, str) or not isinstance(new, str):
        return None
    at = raw.find(_MODEL_KEY)
    if at <= 0:
        return None
    if raw[:at].strip(_SPACE) != b"{" and (
        raw[at - 1] == 0x5C or raw.find(_MODEL_KEY, at + 7) >= 0  # 0x5C: a backslash
    ):
        return None
    pos, end = at + 7, len(raw)
    while pos < end and raw[pos] in _SPACE:
        pos += 1
    if pos >= end or raw[pos] != 0x3A:  # ":"
        return None
    pos += 1
    while pos < end and raw[pos] in _SPACE:
        pos += 1
    value = orjson.dumps(old)
    if not raw.startswith(value, pos):
        return None
    return b"".join((raw[:pos], orjson.dumps(new), raw[pos + len(value) :]))
