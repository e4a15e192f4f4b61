"""Writing answers straight through ASGI: a whole body, or an SSE stream relayed chunk by chunk
that stops the upstream at once when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from proxy.http.routes import Receive, Send
from proxy.pipeline import Answer

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    base: list[tuple[bytes, bytes]],
) -> None:
    """Sends a whole answer: `base` headers, its length, then `headers`."""
    raw = [*base, (b"content-length", str(len(body)).encode()), *encode_headers(headers)]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def relay(answer: Answer, receive: Receive, send: Send) -> str:
    """Sends an SSE answer chunk by chunk; stops the upstream at once if the client leaves.

    Returns:
        "200 stream" when the stream completed, "client went away" otherwise.
    """
    stream: AsyncIterator[bytes] = answer.stream  # type: ignore[assignment]
    task = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        if task is not None:
            task.cancel()

    start = [*SSE_HEADERS, *encode_headers(answer.headers)]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    watcher = asyncio.ensure_future(watch())
    try:
        async for data in stream:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not gone or task is None:
            raise
        task.uncancel()
    finally:
        watcher.cancel()
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # runs the pipeline's end-of-stream accounting exactly once
    return "client went away" if gone else "200 stream"
