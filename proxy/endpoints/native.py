"""What a pass-through stream needs of its client's wire format: the error event that ends it
when the upstream fails after its first bytes (the upstream's own events went as sent)."""

from __future__ import annotations

import orjson

from proxy.endpoints import anthropic_messages, openai_responses
from proxy.errors import ProxyError


def stream_error_event(wire: str, err: ProxyError) -> bytes:
    """Returns the SSE event that ends a `wire` stream with `err`.

    Args:
        wire: `NativeBody.wire`: "anthropic_messages" or "openai_responses".
    """
    if wire == "anthropic_messages":
        _status, body = anthropic_messages.render_error(err)
        return b"event: error\ndata: " + body + b"\n\n"
    _status, body = openai_responses.render_error(err)
    doc = orjson.loads(body)["error"]
    code = doc.get("code") or doc.get("type")
    event = {**doc, "type": "error", "code": code, "sequence_number": 0}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
