"""Client connections, bounded: uvicorn's httptools protocol with the limits it lacks.

A request must arrive whole (head and body) within `read_timeout` of its first byte (else 408),
a connection with no request under way closes after `idle_timeout`, a request head is at most
MAX_HEAD bytes and MAX_HEADERS fields (else 431), and at most `max_connections` are open: past
that a new connection closes the oldest one that is idle or still sending its head, and when
every connection is serving a request the new one gets 503. So half-open connections cannot
hold file descriptors for long, nor lock other clients out.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from proxy.errors import BadRequest, ProxyError
from proxy.http.routes import Receive, Scope, Send

MAX_HEAD = 64 * 1024
"""Bytes of a request line and headers; more gets 431."""
MAX_HEADERS = 100
"""Header fields in one request; more gets 431 (SDKs and agents send 10-30)."""
MAX_CONNECTIONS = 10_000
"""The most client connections by default, whatever the open-file limit."""
LINGER = 2.0
"""Seconds a refused connection is still read (and the bytes dropped) after its answer, so
the client reads the answer instead of a connection reset."""

Render = Callable[[str | None, str | None, ProxyError], tuple[int, bytes, str]]
"""(method, path, error) -> the status and JSON body of `error` in that route's wire format,
and a request id; method and path are None while the request head is incomplete."""


@dataclass(frozen=True)
class ClientLimits:
    """The bounds on client connections (`general_settings.client_*`)."""

    read_timeout: float = 30.0
    idle_timeout: float = 5.0
    max_connections: int = MAX_CONNECTIONS
    max_head: int = MAX_HEAD
    max_headers: int = MAX_HEADERS


def default_max_connections() -> int:
    """Returns a connection cap that leaves file descriptors for upstream calls and files.

    Every request being served holds a client connection and an upstream one, so half of the
    open-file limit (less a reserve) goes to clients, at most MAX_CONNECTIONS.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, (soft - 128) // 2))


def raise_open_file_limit() -> int:
    """Raises the soft open-file limit to the hard one (Go does the same); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # pragma: no cover - some sandboxes refuse it
            return soft
        return hard
    return soft


def bounded_protocol(limits: ClientLimits, render: Render) -> type[HttpToolsProtocol]:
    """Returns the HTTP protocol class for one server: `limits`, errors rendered by `render`.

    The class keeps the server's list of connections that may be closed for a new one.
    """

    class ServerProtocol(BoundedProtocol):
        _server = _Server(limits, render)

    return ServerProtocol


@dataclass
class _Server:
    """What the connections of one server share."""

    limits: ClientLimits
    render: Render
    waiting: dict[BoundedProtocol, None] = field(default_factory=dict)
    """The connections that are idle or sending a head, oldest first."""


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read and idle timeouts, head limits and a cap."""

    _server: ClassVar[_Server]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self._server.limits
        self._render = self._server.render
        self._waiting = self._server.waiting
        # uvicorn's keep-alive timer is the idle bound once a request was answered (its hint
        # says int; call_later takes any number of seconds).
        self.timeout_keep_alive = cast(int, self._limits.idle_timeout)
        self._timer: asyncio.TimerHandle | None = None
        """The idle bound of a new connection, then the read bound of a request under way."""
        self._reading = False
        """A request has begun and is not whole yet."""
        self._in_head = True
        self._head_bytes = 0
        """Bytes received while the current head is incomplete (a head across reads)."""
        self._refusal: tuple[int, bytes, str] | None = None
        self._lingering = False
        """Answered and closing: what the client still sends is dropped."""

    # connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections and not self._close_oldest():
            self.app = self._unavailable  # every request here: 503, then close
        self._waiting[self] = None
        self._timer = self.loop.call_later(self._limits.idle_timeout, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._waiting.pop(self, None)
        super().connection_lost(exc)

    def _close_oldest(self) -> bool:
        """Closes the oldest connection that is idle or sending a head; False if none is."""
        for other in self._waiting:
            if other is not self:
                del self._waiting[other]
                self.connections.discard(other)
                other._cancel_timer()
                other.transport.close()
                return True
        return False

    # reading

    def data_received(self, data: bytes) -> None:
        """uvicorn's, answering a malformed or oversized head in the front door's shape, and
        arming the read bound when a request did not arrive whole in this read."""
        if self._lingering:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():  # pragma: no cover - the app serves no websockets
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is None:
                self._refusal = self._render(None, None, BadRequest("Malformed HTTP request."))
            self._send_refusal(*self._refusal)
            return
        if self._in_head and self._head_bytes > self._limits.max_head:
            self._refuse(None, None, _head_too_large(self._limits))
        elif self._reading and self._timer is None:  # most requests arrive in one read
            self._timer = self.loop.call_later(self._limits.read_timeout, self._read_expired)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = True
        self._cancel_timer()  # a new connection's idle bound

    def on_headers_complete(self) -> None:
        limits = self._limits
        # A head larger than one read was counted by data_received; within a read, the raw
        # count (which may include body bytes) says when to measure the head itself.
        if len(self.headers) > limits.max_headers or (
            self._head_bytes > limits.max_head and self._head_size() > limits.max_head
        ):
            self._refusal = self._render(None, None, _head_too_large(limits))
            raise _HeadTooLargeError  # httptools stops parsing and raises HttpParserError
        self._in_head = False
        self._head_bytes = 0
        self._waiting.pop(self, None)
        super().on_headers_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._reading = False
        self._in_head = True
        self._cancel_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle now, under uvicorn's timer
            self._waiting[self] = None

    # timers

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _read_expired(self) -> None:
        """The request did not arrive whole in time: 408 if nothing was answered yet."""
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        busy = cycle is not None and not cycle.response_complete
        if busy and (self._in_head or cycle.response_started):
            self.transport.close()  # an answer is under way: no room for another
            return
        err = ProxyError(
            f"The request did not arrive within {self._limits.read_timeout:g} s.",
            status=408,
            type="invalid_request_error",
            code="request_timeout",
        )
        if busy:  # the body is late: the route's handler sees the client leave
            cycle.disconnected = True
            cycle.message_event.set()
            self._refuse(self.scope["method"], self.scope["path"], err)
        else:
            self._refuse(None, None, err)

    # answers of our own

    def _refuse(self, method: str | None, path: str | None, err: ProxyError) -> None:
        self._send_refusal(*self._render(method, path, err))

    def _send_refusal(self, status: int, body: bytes, request_id: str) -> None:
        """Answers with `status` and closes, after reading what the client still sends."""
        self._cancel_timer()
        self._waiting.pop(self, None)
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: %s\r\n" % request_id.encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self._timer = self.loop.call_later(LINGER, self.transport.close)
        else:  # pragma: no cover - TCP transports can
            self.transport.close()

    async def _unavailable(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = ProxyError(
            "The proxy is serving as many connections as it may; retry shortly.",
            status=503,
            code="too_many_connections",
            headers={"retry-after": "1"},
        )
        status, body, request_id = self._render(scope["method"], scope["path"], err)
        headers = [
            (b"x-request-id", request_id.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _HeadTooLargeError(Exception):
    pass


def _head_too_large(limits: ClientLimits) -> ProxyError:
    return ProxyError(
        f"Request head too large: at most {limits.max_head // 1024} KiB"
        f" and {limits.max_headers} header fields.",
        status=431,
        type="invalid_request_error",
        code="request_header_fields_too_large",
    )
