"""What every stream renderer shares: OpenAI `chat.completion.chunk`s come in (the pipeline's
SSE bytes, or one chunk at a time), another wire format's events go out. A renderer says only
how a stream opens, what one choice's delta becomes, how it ends and how it fails."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ProxyError
from proxy.sse import SSEDecoder, data_payloads


class ChunkRenderer(ABC):
    """Renders one OpenAI chunk stream in a client's wire format.

    Feed it every chunk (`feed`, or `feed_sse` for the pipeline's SSE bytes), then call
    `finish`; each call returns the bytes to send (possibly empty). After the terminal event
    (the answer's end or an error) every call returns nothing.
    """

    def __init__(self) -> None:
        self._closed = False
        self._finish: str | None = None
        """The finish reason of choice 0, once a `_choice` has read it."""
        self._usage: Mapping[str, Any] | None = None
        self._decoder = SSEDecoder()

    @property
    def closed(self) -> bool:
        """The terminal event was sent."""
        return self._closed

    def feed(self, chunk: bytes | Mapping[str, Any]) -> bytes:
        """Returns the events for one chunk (JSON bytes or a parsed dict).

        A chunk that is not a JSON object is skipped; an `{"error": …}` document ends the
        stream with the format's error event.
        """
        doc = _load(chunk)
        if doc is None or self._closed:
            return b""
        if "error" in doc and "choices" not in doc:
            return self.error(self._error_of(doc))
        out = self._start(doc)
        for choice in doc.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._choice(choice)
        if isinstance(doc.get("usage"), dict):
            self._usage = doc["usage"]
            if self._finish is not None:
                out += self._end()  # the usage chunk follows the finish: nothing more comes
        return out

    def feed_sse(self, data: bytes) -> bytes:
        """Returns the events for a piece of an OpenAI SSE stream (the pipeline's output):
        `data:` chunks, its error document and `data: [DONE]`, which finishes the stream."""
        return b"".join(
            self.finish() if payload.strip() == b"[DONE]" else self.feed(payload)
            for payload in data_payloads(self._decoder, data)
        )

    def finish(self) -> bytes:
        """Returns the closing events if the stream is not closed yet."""
        return b"" if self._closed else self._end()

    @abstractmethod
    def error(self, err: ProxyError, message: str | None = None) -> bytes:
        """Returns the format's error event; the stream is then closed.

        `message` is the text the client may read (keys scrubbed); `err.message` if None.
        """

    @abstractmethod
    def _error_of(self, doc: Mapping[str, Any]) -> ProxyError:
        """Returns the error an upstream's `{"error": …}` document stands for."""

    @abstractmethod
    def _start(self, doc: Mapping[str, Any] | None = None) -> bytes:
        """Returns the opening events the first time (`doc`: the first chunk), then b""."""

    @abstractmethod
    def _choice(self, choice: Mapping[str, Any]) -> bytes:
        """Returns the events of choice 0's delta; sets `_finish` when the choice ends."""

    @abstractmethod
    def _end(self) -> bytes:
        """Returns the closing events (usage from `_usage`) and closes the stream."""


def _load(chunk: bytes | Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not isinstance(chunk, bytes | bytearray | str):
        return chunk
    try:
        doc = orjson.loads(chunk)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
