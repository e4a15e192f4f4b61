"""The recorded wire shapes in tests/fixtures/<vendor>/, and helpers to compare answers to them.

`.json` files hold one response body; `.jsonl` files hold one SSE event a line, as
`{"event": name or null, "data": object or "[DONE]"}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    """Split a whole SSE body into events.

    Returns: (event name or None, data) pairs; data is parsed JSON, or the raw `[DONE]`.
    Raises: ValueError when an event's data is neither JSON nor `[DONE]`.
    """
    events: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        name: str | None = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def shape(value: Any) -> Any:
    """Returns: the structure of a JSON value: dict keys, first list item, scalar type names
    (numbers are one type; a tool's free-form `input` is just "object")."""
    if isinstance(value, dict):
        return {k: "object" if k == "input" else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def fixture_json(name: str) -> Any:
    """Returns: the parsed body in tests/fixtures/`name` (e.g. "openai/chat_completion.json")."""
    return json.loads((FIXTURES / name).read_text())


def fixture_lines(name: str) -> list[tuple[str | None, Any]]:
    """Returns: the (event, data) pairs of a recorded stream, e.g. "anthropic/stream.jsonl"."""
    rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line]
    return [(row["event"], row["data"]) for row in rows]


def sse_bytes(events: list[tuple[str | None, Any]]) -> bytes:
    """Returns: `events` written back as an SSE body, as the vendor sent them."""
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out).encode()
