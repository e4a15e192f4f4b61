"""Writing answers straight through ASGI: a whole body, or an SSE stream relayed chunk by chunk,
while `ClientWatch` stops the work at once when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

from proxy.http.routes import Receive, Send
from proxy.pipeline import Answer

JSON_HEADERS = [(b"content-type", b"application/json")]
WATCH_AFTER = 0.025
"""Seconds a request runs before its client is watched: a quick answer never pays for the watch
(a task per request cost ~20 µs), and a client gone sooner is seen at this point."""
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class ClientWatch:
    """While its block runs (the upstream call, then the answer being written), a disconnect
    from the client (watched from WATCH_AFTER seconds on) cancels the serving task, so the
    upstream request is dropped at once; the block then ends quietly with `gone` set.

    Enter it once the request body is read: it consumes `receive` from then on.
    """

    __slots__ = ("gone", "finishing", "_receive", "_task", "_timer", "_watcher")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self.finishing = False
        """Set before the answer's last bytes go out: a disconnect from then on (which is
        also what uvicorn's `receive` reports once the answer is complete) cancels nothing."""
        self._receive = receive
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None

    def __enter__(self) -> ClientWatch:
        self._task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start)
        return self

    def _start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if self.gone and kind is not None and issubclass(kind, asyncio.CancelledError):
            if self._task is not None:
                self._task.uncancel()
            return True  # the cancellation was ours: the client left
        return False

    async def _watch(self) -> None:
        receive = self._receive
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.finishing or self._task is None:
            return
        self.gone = True
        self._task.cancel()


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    base: list[tuple[bytes, bytes]],
    watch: ClientWatch | None = None,
) -> None:
    """Sends a whole answer: `base` headers, its length, then `headers`."""
    raw = [*base, (b"content-length", str(len(body)).encode()), *encode_headers(headers)]
    if watch is not None:
        watch.finishing = True
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def relay(answer: Answer, send: Send, watch: ClientWatch) -> str:
    """Sends an SSE answer chunk by chunk, inside `watch` (so it stops when the client
    leaves); the stream is closed however it ends, which runs its accounting exactly once.

    Returns:
        "200 stream" when the stream completed, "client went away" otherwise.
    """
    stream: AsyncIterator[bytes] = answer.stream  # type: ignore[assignment]
    start = [*SSE_HEADERS, *encode_headers(answer.headers)]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": start})
        async for data in stream:
            if data:  # b"" is a keep-alive tick the client's format had no event for
                await send({"type": "http.response.body", "body": data, "more_body": True})
        watch.finishing = True
        await send({"type": "http.response.body", "body": b""})
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # runs the pipeline's end-of-stream accounting exactly once
    return "200 stream"
