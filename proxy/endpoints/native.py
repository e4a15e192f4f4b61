"""What a pass-through stream needs of its client's wire format: the error event that ends it
when the upstream fails after its first bytes (the upstream's own events went as sent)."""

from __future__ import annotations

import re

import orjson

from proxy.endpoints import anthropic_messages, openai_responses
from proxy.errors import ProxyError

_SEQUENCE = re.compile(rb'"sequence_number":\s*(\d+)')


def stream_error_event(wire: str, err: ProxyError, last: bytes | None = None) -> bytes:
    """Returns the SSE event that ends a `wire` stream with `err`.

    Args:
        wire: `NativeBody.wire`: "anthropic_messages" or "openai_responses".
        last: the last upstream event the client got; a Responses error event continues its
            `sequence_number`.
    """
    if wire == "anthropic_messages":
        _status, body = anthropic_messages.render_error(err)
        return b"event: error\ndata: " + body + b"\n\n"
    _status, body = openai_responses.render_error(err)
    doc = orjson.loads(body)["error"]
    code = doc.get("code") or doc.get("type")
    event = {**doc, "type": "error", "code": code, "sequence_number": _next_sequence(last)}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def _next_sequence(last: bytes | None) -> int:
    """Returns one more than the `sequence_number` in `last` (0 when it has none)."""
    found = _SEQUENCE.findall(last or b"")
    return int(found[-1]) + 1 if found else 0
