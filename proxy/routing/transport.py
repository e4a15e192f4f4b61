"""The one shared upstream HTTP client: aiohttp's pool behind the small httpx-shaped surface we use.

Adapters build `UpstreamRequest`s (pure data); this client sends them. httpcore's
pool walks every pooled connection on each request, which capped the proxy at a few hundred
requests a second at concurrency 64; aiohttp's connector does not (bench/README.md has the
numbers). Every failure to reach or read an upstream is a `TransportError`:

    TransportError          the upstream could not be reached or read (retryable)
    ├── ConnectError        refused, unresolvable, TLS failed: nothing was sent
    ├── ReadError           the connection failed while the answer was read
    └── RemoteProtocolError the upstream closed the connection or cut the body short

Their text is aiohttp's error class name only: never a URL or a header, so never a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
from multidict import CIMultiDictProxy

from proxy.schema import UpstreamRequest

POOL_LIMIT = 1000
"""Connections open at once across all upstreams (aiohttp waits for a free one beyond it)."""
KEEPALIVE = 30.0


class TransportError(Exception):
    """The upstream could not be reached, or the connection failed mid-answer."""


class ConnectError(TransportError):
    """No connection: refused, unresolvable or a failed TLS handshake."""


class ReadError(TransportError):
    """The connection failed while the answer was being read."""


class RemoteProtocolError(TransportError):
    """The upstream closed the connection early or sent a body cut short."""


class UpstreamResponse:
    """What an upstream answered; the body is read (`content`) or streamed (`aiter_bytes`)."""

    __slots__ = ("status_code", "headers", "content", "_response")

    def __init__(self, response: aiohttp.ClientResponse, content: bytes = b"") -> None:
        self.status_code = response.status
        self.headers: CIMultiDictProxy[str] = response.headers
        self.content = content
        self._response = response

    async def aread(self) -> bytes:
        """Reads the rest of the body.

        Raises:
            TransportError: the connection failed while reading.
        """
        try:
            self.content = await self._response.read()
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yields the body as it arrives.

        Raises:
            TransportError: the connection dropped or the body was cut short.
        """
        try:
            async for data in self._response.content.iter_any():
                yield data
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None

    async def aclose(self) -> None:
        """Returns the connection to the pool, or closes it if the body was not read."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class UpstreamClient(Protocol):
    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        """Sends a request; with `stream` the body is left to `aiter_bytes`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    """One pooled aiohttp session for every upstream call; create and use on one event loop."""

    def __init__(self, *, limit: int = POOL_LIMIT, keepalive: float = KEEPALIVE) -> None:
        connector = aiohttp.TCPConnector(
            limit=limit, limit_per_host=0, keepalive_timeout=keepalive, ttl_dns_cache=300
        )
        # Timeouts are the router's (asyncio.timeout around each attempt), not the session's.
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            trust_env=False,
            raise_for_status=False,
        )

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        """Sends `request`.

        Raises:
            TransportError: the upstream could not be reached or dropped the connection.
        """
        try:
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers,
                data=request.content or None,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None
        if stream:
            return UpstreamResponse(response)
        try:
            body = await response.read()
        except aiohttp.ClientError as exc:
            response.close()
            raise _translate(exc) from None
        response.release()
        return UpstreamResponse(response, body)

    async def aclose(self) -> None:
        await self._session.close()
        # Let the pooled connections' transports finish closing while the loop still runs;
        # otherwise their sockets are only closed by the garbage collector.
        await asyncio.sleep(0)


def _translate(exc: aiohttp.ClientError) -> TransportError:
    """Maps aiohttp's errors onto ours, keeping only the class name (no URL, no headers)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(type(exc).__name__)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return RemoteProtocolError(type(exc).__name__)
    return ReadError(type(exc).__name__)
