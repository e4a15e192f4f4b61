"""Gemini `streamGenerateContent?alt=sse` events → OpenAI `chat.completion.chunk`s.

Each event is a whole `GenerateContentResponse` holding the next parts; the one with a
`finishReason` ends the answer (it also carries the final usageMetadata). The decoder only
remembers the response id and model, how many tool calls it has sent, the usage so far, and
whether it has finished.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.providers.gemini.errors import stream_error
from proxy.providers.gemini.response import (
    Parts,
    bad_body,
    call_prefix,
    finish_reason,
    first_candidate,
    model_of,
    usage_from,
)
from proxy.schema import Chunk, SSEEvent


class GeminiStreamDecoder:
    """Turns one Gemini stream into OpenAI chunks (see `StreamDecoder`).

    Order: a role chunk, reasoning / content / tool-call deltas (a function call arrives
    whole, so its arguments come in one delta), one finish chunk, then a usage-only chunk
    (`choices: []`) that the router sends only when the client asked for it.
    """

    def __init__(self, dep: Deployment, *, created: int = 0, request_id: str = "") -> None:
        self._dep = dep
        self._created = created
        self._request_id = request_id
        self._id = ""
        self._model = dep.model
        self._prefix = ""
        self._started = False
        self._calls = 0
        self._usage: Any = None
        self._head: dict[str, Any] = {}
        """The chunks' id, object, created and model (known from the first event)."""
        self._done = False

    @property
    def done(self) -> bool:
        """An event with a finishReason arrived: the upstream finished its answer."""
        return self._done

    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Returns the OpenAI chunks this event makes.

        Raises:
            UpstreamError: an `{"error": ...}` event (429 and 5xx retryable), or data that is
                not a JSON object (502, retryable).
        """
        doc = self._load(event)
        if "error" in doc:
            raise stream_error(self._dep, doc)
        if not self._started:
            self._id = f"chatcmpl-{doc.get('responseId') or self._request_id}"
            self._model = model_of(doc, self._dep)
            self._prefix = call_prefix(doc, self._request_id or "0")
            self._head = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
            }
        if doc.get("usageMetadata") is not None:
            self._usage = doc["usageMetadata"]
        candidate = first_candidate(doc)
        content = candidate.get("content")
        raw = content.get("parts") if isinstance(content, dict) else None
        chunks = self._open()
        if isinstance(raw, list) and len(raw) == 1 and _plain_text(raw[0]):
            text = raw[0]["text"]  # most events: one piece of the answer's text
            if text:
                chunks.append(self._chunk({"content": text}, text=text))
        else:
            chunks += self._parts(raw)
        reason = candidate.get("finishReason")
        if reason is None and not candidate and _blocked(doc):
            reason = "SAFETY"
        if reason is not None:
            chunks += self._finish(reason)
        return chunks

    def _parts(self, raw: Any) -> list[Chunk]:
        parts = Parts(self._prefix + f"{self._calls}_")
        parts.read(raw)
        chunks = [self._chunk({"reasoning_content": t}) for t in parts.reasoning if t]
        chunks += [self._chunk({"content": t}, text=t) for t in parts.texts if t]
        for call in parts.calls:
            chunks.append(self._chunk({"tool_calls": [{"index": self._calls, **call}]}))
            self._calls += 1
        return chunks

    def _load(self, event: SSEEvent) -> dict[str, Any]:
        try:
            doc = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise bad_body(self._dep, "Gemini sent a stream event that is not a JSON object.")
        return doc

    def _finish(self, reason: Any) -> list[Chunk]:
        self._done = True
        finish = finish_reason(reason, tool_calls=self._calls > 0)
        usage = usage_from(self._usage)
        tail = {**self._head, "choices": [], "usage": usage.as_openai()}
        return [
            self._chunk({}, finish=finish),
            Chunk(data=orjson.dumps(tail), usage=usage, usage_only=True),
        ]

    def _open(self) -> list[Chunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None, text: str = "") -> Chunk:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = orjson.dumps({**self._head, "choices": [choice]})
        return Chunk(data=data, text=text, finish=finish)


def _plain_text(part: Any) -> bool:
    return isinstance(part, dict) and len(part) == 1 and isinstance(part.get("text"), str)


def _blocked(doc: dict[str, Any]) -> bool:
    feedback = doc.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))
