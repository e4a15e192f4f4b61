"""A minimal HTTP/1.1 reader and writer for the fake upstream.

Hand-rolled on asyncio streams so a test can drop a connection without any response, or cut a
chunked stream mid-way, which a real framework would not let us do.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MAX_HEAD = 1 << 20


class MalformedRequestError(Exception):
    """The peer sent something that is not an HTTP/1.1 request head."""


@dataclass
class Request:
    """One parsed request: method, path (no query), query, lower-case headers, raw body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes

    @property
    def keep_alive(self) -> bool:
        """Returns: whether the client wants the connection kept open after the response."""
        return self.headers.get("connection", "").lower() != "close"

    def json(self) -> Any:
        """Returns: the body parsed as JSON, or None when it is empty or not JSON."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


@dataclass
class Answer:
    """What to send back: a whole body, or SSE events sent with chunked encoding.

    `cut_after`: for a stream, close after that many events with no terminating chunk; for a
    whole body, announce the full Content-Length, send half of it and close.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: list[bytes] | None = None
    cut_after: int | None = None


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request from the connection.

    Returns: the request, or None when the peer closed the connection between requests.
    Raises: MalformedRequestError on a malformed head; asyncio.IncompleteReadError on a cut body.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise MalformedRequestError("truncated request head") from exc
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise MalformedRequestError(lines[0][:80])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    raw = await _read_body(reader, headers)
    path, _, query = parts[1].partition("?")
    return Request(parts[0].upper(), path, query, headers, raw)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or "0")
    return await reader.readexactly(length) if length else b""


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Site Overloaded" if status == 529 else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_answer(
    writer: asyncio.StreamWriter, answer: Answer, *, keep_alive: bool, chunk_delay: float = 0.0
) -> bool:
    """Write the answer on the connection.

    Returns: True when the connection may serve another request, False when it must close
    (a cut answer, or the client asked to close).
    """
    headers = dict(answer.headers)
    if answer.events is None:
        headers["content-length"] = str(len(answer.body))
    else:
        headers["transfer-encoding"] = "chunked"
    headers["connection"] = "keep-alive" if keep_alive and answer.cut_after is None else "close"
    writer.write(_head(answer.status, headers))
    if answer.events is None:
        cut = answer.cut_after is not None
        writer.write(answer.body[: len(answer.body) // 2] if cut else answer.body)
        await writer.drain()
        return keep_alive and not cut
    await writer.drain()
    for index, event in enumerate(answer.events):
        if answer.cut_after is not None and index >= answer.cut_after:
            return False
        if index and chunk_delay:
            await asyncio.sleep(chunk_delay)
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
    if answer.cut_after is not None:
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return keep_alive
