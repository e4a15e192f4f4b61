"""Request bodies on demand (`general_settings.store_prompts_in_spend_logs`, or the dashboard's
toggle): per request id, what the client sent, what went upstream after translation (the final
attempt's body) and what came back, held in memory and bounded (bytes per body, requests in
all, age). Every text is scrubbed of the configured keys, and `api_key`, `authorization` and
`x-api-key` fields are dropped from a JSON body; headers are never stored.

Off by default: the pipeline then holds no store and captures nothing.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.secret import redact, redact_url

MAX_BODY_BYTES = 64 * 1024
"""Bytes of one body kept; a longer one is cut and notes its original size."""
MAX_REQUESTS = 500
"""Requests held at most; the oldest goes first."""
MAX_AGE_S = 3600.0
"""Seconds a request's bodies are held."""
PARTS = ("client", "upstream", "answer")
DROPPED_FIELDS = frozenset({"api_key", "authorization", "x-api-key"})
"""Fields taken out of a JSON body at any depth (compared lower-case)."""
MAX_PARSE_BYTES = 4 * 1024 * 1024
"""A body above this is not parsed to drop fields: it is cut as text (and scrubbed)."""
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=\-]{8,})")
_KEY_FIELD = re.compile(r'(?i)("(?:api_key|authorization|x-api-key)"\s*:\s*)"[^"]*"')


@dataclass(frozen=True, slots=True)
class StoredText:
    """One stored body: its text (scrubbed, perhaps cut) and its size before the cut."""

    text: str
    size: int
    """Bytes of the body as it was (before scrubbing and cutting)."""
    truncated: bool


@dataclass
class _Entry:
    at: float
    parts: dict[str, StoredText]
    upstream_url: str | None = None


class BodyStore:
    """The bounded store of request bodies, keyed by request id (call on one event loop)."""

    def __init__(
        self,
        scrub: Callable[[str], str] = str,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_BODY_BYTES,
        max_age: float = MAX_AGE_S,
    ) -> None:
        """Args:
        scrub: takes every configured key out of a text (the runtime's Scrubber).
        clock: seconds, for the age bound (injected in tests).
        max_requests, max_bytes, max_age: the bounds.
        """
        self._scrub = scrub
        self._clock = clock
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def put(
        self,
        request_id: str,
        part: str,
        body: bytes | bytearray | str | Mapping[str, Any] | None,
        *,
        size: int | None = None,
    ) -> None:
        """Stores one body of a request (a later one of the same part replaces it).

        Args:
            request_id: the request's id (`x-request-id`).
            part: "client", "upstream" or "answer".
            body: a JSON document, or its bytes or text (SSE text for a stream).
            size: the body's original size when `body` is already a cut prefix of it.

        Raises:
            ValueError: `part` is not one of PARTS.
        """
        if part not in PARTS:
            raise ValueError(f"unknown body part {part!r}")
        if body is None or not request_id:
            return
        stored = self._text(body, size)
        entry = self._entry(request_id)
        entry.parts[part] = stored

    def put_upstream(self, request_id: str, url: str, content: bytes) -> None:
        """Stores the body sent upstream (its URL shown redacted; its headers never)."""
        self.put(request_id, "upstream", content)
        self._entry(request_id).upstream_url = redact_url(self._scrub(url))[:2000]

    def get(self, request_id: str) -> dict[str, Any] | None:
        """Returns `{"id", "client", "upstream", "answer", "upstream_url", "sizes",
        "truncated"}` (a part not captured is None), or None when nothing is held for it."""
        self._expire()
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        parts = entry.parts
        return {
            "id": request_id,
            **{p: parts[p].text if p in parts else None for p in PARTS},
            "upstream_url": entry.upstream_url,
            "sizes": {p: parts[p].size for p in PARTS if p in parts},
            "truncated": {p: parts[p].truncated for p in PARTS if p in parts},
        }

    def status(self) -> dict[str, Any]:
        """Returns the bounds and how many requests are held."""
        return {
            "requests": len(self),
            "max_requests": self.max_requests,
            "max_body_bytes": self.max_bytes,
            "max_age_s": self.max_age,
        }

    def _entry(self, request_id: str) -> _Entry:
        entry = self._entries.get(request_id)
        if entry is None:
            self._expire()
            entry = self._entries[request_id] = _Entry(self._clock(), {})
            while len(self._entries) > self.max_requests:
                self._entries.popitem(last=False)
        return entry

    def _expire(self) -> None:
        """Drops the entries older than `max_age` (the oldest are first)."""
        oldest = self._clock() - self.max_age
        entries = self._entries
        while entries:
            first = next(iter(entries.values()))
            if first.at > oldest:
                break
            entries.popitem(last=False)

    def _text(
        self, body: bytes | bytearray | str | Mapping[str, Any], size: int | None
    ) -> StoredText:
        """Returns `body` as stored: key fields dropped, keys scrubbed, cut to `max_bytes`."""
        if isinstance(body, Mapping):
            raw = orjson.dumps(_without_keys(body), default=str)
            original = size if size is not None else len(raw)
            text = raw.decode()
        else:
            raw = body.encode() if isinstance(body, str) else bytes(body)
            original = size if size is not None else len(raw)
            text = _drop_key_fields(raw)
        # Scrub before cutting (a key cut in two would escape the scrubber), but never more
        # than twice the bound: a 30 MiB body is not scrubbed whole.
        text = _redact_bearer(self._scrub(text[: 2 * self.max_bytes]))
        data = text.encode()
        truncated = original > self.max_bytes or len(data) > self.max_bytes
        if len(data) > self.max_bytes:
            text = data[: self.max_bytes].decode(errors="ignore")
        if truncated:
            text += f"\n… (cut at {self.max_bytes} bytes; the body had {original})"
        return StoredText(text, original, truncated)


def _drop_key_fields(raw: bytes) -> str:
    """Returns `raw` as text, a JSON object's key fields dropped (re-encoded); anything else
    (SSE, a body too large to parse) with such fields' string values blanked."""
    if len(raw) <= MAX_PARSE_BYTES and raw[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            return orjson.dumps(_without_keys(doc)).decode()
    text = raw.decode(errors="replace")
    return _KEY_FIELD.sub(r'\1"…"', text)


def _without_keys(doc: Any, depth: int = 0) -> Any:
    """Returns `doc` without DROPPED_FIELDS in any object (to 64 levels; deeper: dropped)."""
    if depth > 64:
        return "…"
    if isinstance(doc, Mapping):
        return {
            k: _without_keys(v, depth + 1)
            for k, v in doc.items()
            if not (isinstance(k, str) and k.lower() in DROPPED_FIELDS)
        }
    if isinstance(doc, list):
        return [_without_keys(v, depth + 1) for v in doc]
    return doc


def _redact_bearer(text: str) -> str:
    """Returns `text` with any `Bearer <token>` shown as its last 4 characters."""
    if "earer" not in text:
        return text
    return _BEARER.sub(lambda m: m.group(1) + redact(m.group(2)), text)
