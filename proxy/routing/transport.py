"""The one shared upstream HTTP client: aiohttp's pool behind the small httpx-shaped surface we use.

Adapters build `UpstreamRequest`s (pure data); this client sends them. httpcore's
pool walks every pooled connection on each request, which capped the proxy at a few hundred
requests a second at concurrency 64; aiohttp's connector does not (bench/README.md has the
numbers). Every failure to reach or read an upstream is a `TransportError`:

    TransportError          the upstream could not be reached or read (retryable)
    ├── ConnectError        refused, unresolvable, TLS failed: nothing was sent
    ├── ReadError           the connection failed while the answer was read
    │   └── BodyTooLarge    the answer is longer than MAX_BODY (the connection is closed)
    └── RemoteProtocolError the upstream closed the connection or cut the body short

A request cancelled (its client left) closes its connection instead of returning it to the pool.

Their text is aiohttp's error class name only: never a URL or a header, so never a key.
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

import aiohttp
from multidict import CIMultiDictProxy

from proxy.config.types import Deployment
from proxy.schema import UpstreamRequest

POOL_LIMIT = 1000
"""Connections open at once across all upstreams (aiohttp waits for a free one beyond it)."""
KEEPALIVE = 30.0
MAX_BODY = 64 * 1024 * 1024
"""The longest whole answer read (bigger ones are refused, never held): a streamed answer's
bytes are bounded the same way in `attempt`."""


class TransportError(Exception):
    """The upstream could not be reached, or the connection failed mid-answer."""


class ConnectError(TransportError):
    """No connection: refused, unresolvable or a failed TLS handshake."""


class ReadError(TransportError):
    """The connection failed while the answer was being read."""


class RemoteProtocolError(TransportError):
    """The upstream closed the connection early or sent a body cut short."""


class BodyTooLarge(ReadError):  # noqa: N818 - a TransportError like its siblings
    """The answer is longer than the limit; the rest was not read."""


class UpstreamResponse:
    """What an upstream answered; the body is read (`content`) or streamed (`aiter_bytes`)."""

    __slots__ = ("status_code", "headers", "content", "_response")

    def __init__(self, response: aiohttp.ClientResponse, content: bytes = b"") -> None:
        self.status_code = response.status
        self.headers: CIMultiDictProxy[str] = response.headers
        self.content = content
        self._response = response

    async def aread(self) -> bytes:
        """Reads the rest of the body (at most MAX_BODY bytes).

        Raises:
            TransportError: the connection failed while reading, or the body is too long.
        """
        self.content = await _read(self._response)
        return self.content

    async def aiter_bytes(self, idle: float | None = None) -> AsyncIterator[bytes]:
        """Yields the body as it arrives; with `idle`, also b"" after each `idle` seconds in
        which nothing arrived (the read goes on: nothing is lost).

        Raises:
            TransportError: the connection dropped or the body was cut short.
        """
        content = self._response.content
        try:
            if idle is None:
                async for data in content.iter_any():
                    yield data
                return
            while True:
                try:
                    async with asyncio.timeout(idle):
                        data = await content.readany()
                except TimeoutError:
                    yield b""  # a cancelled readany leaves what arrives in the buffer
                    continue
                if not data:
                    return
                yield data
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None

    async def aclose(self) -> None:
        """Returns the connection to the pool, or closes it if the body was not read."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


TlsRule = tuple[str, ssl.SSLContext | bool]
"""(base URL, aiohttp's `ssl=`): requests under that base are checked this way."""


def tls_rules(deployments: Iterable[Deployment]) -> list[TlsRule]:
    """Returns the TLS rule of each deployment whose `ssl_verify` is set, longest base first.

    Reads CA bundles (blocking file I/O): call it off the event loop, once per config.

    Raises:
        ssl.SSLError, OSError: a CA bundle that cannot be read.
    """
    rules: dict[str, ssl.SSLContext | bool] = {}
    contexts: dict[str, ssl.SSLContext] = {}
    for dep in deployments:
        if dep.ssl_verify is None or dep.ssl_verify is True or not dep.api_base:
            continue
        if isinstance(dep.ssl_verify, str):
            if dep.ssl_verify not in contexts:
                contexts[dep.ssl_verify] = ssl.create_default_context(cafile=dep.ssl_verify)
            rules[dep.api_base] = contexts[dep.ssl_verify]
        else:
            rules[dep.api_base] = False
    return sorted(rules.items(), key=lambda rule: -len(rule[0]))


class UpstreamClient(Protocol):
    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        """Sends a request; with `stream` the body is left to `aiter_bytes`."""
        ...

    async def aclose(self) -> None: ...


LARGE_BODY = 1 << 20
"""Bodies above this go to aiohttp as a stream it writes piece by piece (a whole large
`bytes` body is one write, about which aiohttp warns)."""


def _payload(content: bytes) -> bytes | io.BytesIO | None:
    if not content:
        return None
    return io.BytesIO(content) if len(content) > LARGE_BODY else content


class AiohttpClient:
    """One pooled aiohttp session for every upstream call; create and use on one event loop."""

    def __init__(
        self,
        *,
        limit: int = POOL_LIMIT,
        keepalive: float = KEEPALIVE,
        tls: Sequence[TlsRule] = (),
    ) -> None:
        self._tls = tuple(tls)
        """Per-deployment certificate checks (`ssl_verify`), by base URL: one shared session,
        the ssl context given per request, as aiohttp intends."""
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
        url = str(request.url)
        tls = next((rule for base, rule in self._tls if _under(url, base)), True)
        try:
            response = await self._session.request(
                request.method,
                url,
                headers=request.headers,
                data=_payload(request.content),
                allow_redirects=False,
                ssl=tls,
            )
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None
        if stream:
            return UpstreamResponse(response)
        try:
            body = await _read(response)
        except BaseException:  # a failure or a cancellation: the connection is not reusable
            response.close()
            raise
        response.release()
        return UpstreamResponse(response, body)

    async def aclose(self) -> None:
        await self._session.close()
        # Let the pooled connections' transports finish closing while the loop still runs;
        # otherwise their sockets are only closed by the garbage collector.
        await asyncio.sleep(0)


def _under(url: str, base: str) -> bool:
    """Whether `url` is `base` or a path below it (`https://a.test` is not `https://a.testx`)."""
    return url.startswith(base) and (len(url) == len(base) or url[len(base)] in "/?#")


async def _read(response: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes:
    """Reads the whole body, refusing one longer than `limit` before holding it.

    Raises:
        TransportError: the connection failed, or the body is longer than `limit`.
    """
    length = response.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"BodyTooLarge (over {limit // (1024 * 1024)} MiB)")
    if length is not None:  # the usual case: one read of a known length, no chunk loop
        try:
            return await response.read()
        except aiohttp.ClientError as exc:
            raise _translate(exc) from None
    parts: list[bytes] = []
    size = 0
    try:
        async for data in response.content.iter_any():
            size += len(data)
            if size > limit:
                raise BodyTooLarge(f"BodyTooLarge (over {limit // (1024 * 1024)} MiB)")
            parts.append(data)
    except aiohttp.ClientError as exc:
        raise _translate(exc) from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _translate(exc: aiohttp.ClientError) -> TransportError:
    """Maps aiohttp's errors onto ours, keeping only the class name (no URL, no headers)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(type(exc).__name__)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return RemoteProtocolError(type(exc).__name__)
    return ReadError(type(exc).__name__)
