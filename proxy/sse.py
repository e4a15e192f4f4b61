"""Incremental Server-Sent Events decoding (upstream streams) and encoding (to clients)."""

from __future__ import annotations

from proxy.schema import SSEEvent

DONE = b"data: [DONE]\n\n"


class SSEDecoder:
    """Splits a byte stream into events as they complete; keeps the unfinished tail."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Returns every event completed by `data` (possibly none)."""
        buf = self._buf + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SSEEvent] = []
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            block, buf = buf[:end], buf[end + 2 :]
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buf = buf
        return events

    def flush(self) -> list[SSEEvent]:
        """Returns a last event left without its blank line when the stream ended."""
        block, self._buf = self._buf, b""
        event = _parse_block(block.strip(b"\n"))
        return [event] if event is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[str] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return SSEEvent(name, "\n".join(data))


def encode(data: bytes) -> bytes:
    """Returns one `data:` event for a client."""
    return b"data: " + data + b"\n\n"


def encode_event(event: SSEEvent) -> bytes:
    """Returns `event` as SSE bytes again (`event:` line when it has a name, then `data:`)."""
    data = "".join(f"data: {line}\n" for line in event.data.split("\n"))
    head = f"event: {event.event}\n" if event.event else ""
    return (head + data + "\n").encode()
