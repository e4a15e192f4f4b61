"""One attempt at one deployment: send through the shared client, bounded by its timeout.

Non-stream attempts return the parsed answer; stream attempts return once the first chunk
has arrived (so a stream that fails before its first byte can still be retried elsewhere),
holding the open upstream response for the router to relay.

A pass-through whose upstream turns out not to serve the client's format (`NativeFallback`:
OpenAI's Responses API on a Chat-only server) is sent again at once, translated, inside the
same attempt: the router never sees that first answer, so it counts against nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from proxy.config.types import Deployment
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.providers.base import BinaryStreamDecoder, Provider, StreamDecoder, passes_through
from proxy.routing.transport import (
    MAX_BODY,
    BodyTooLarge,
    TransportError,
    UpstreamClient,
    UpstreamResponse,
)
from proxy.schema import ChatRequest, ChatResponse, Chunk, SSEEvent, Usage
from proxy.sse import MAX_EVENT, EventTooLargeError, SSEDecoder, encode_event

log = logging.getLogger("llmproxy")


@runtime_checkable
class NativeFallback(Protocol):
    """The optional ability of a provider whose pass-through depends on the deployment and
    may turn out unserved upstream (`OpenAIProvider`: Responses only to `openai/`, and not to
    a Chat-only server)."""

    def passes_through_on(self, req: ChatRequest, dep: Deployment) -> bool:
        """Whether `req` goes to `dep` in the client's own format."""
        ...

    def lacks_native(self, req: ChatRequest, dep: Deployment, status: int, body: bytes) -> bool:
        """Whether this error answer to `req`, sent to `dep` in the client's format, means
        the upstream lacks that format; if so, the provider remembers it and translates
        requests to `dep` from now on."""
        ...


@dataclass
class OpenStream:
    """An upstream stream whose first chunks arrived; `batches()` yields the rest.

    Chunks come in batches, one per network read: events that arrived together are relayed
    together (one write instead of many), and nothing waits for a later read.
    """

    first: list[Chunk]
    dep: Deployment
    _source: AsyncIterator[list[Chunk]]
    _response: UpstreamResponse | None = None
    _closed: bool = field(default=False)
    native: bool = False
    """The chunks carry the upstream's own events for a client of the same wire format."""
    on_end: Callable[[UpstreamError | None, Usage | None], None] | None = None
    """The router's bookkeeping for this stream (slot, verdict, tokens); `end()` runs it once."""

    def end(self, error: UpstreamError | None, usage: Usage | None) -> None:
        """Reports how the stream ended: `error` if it failed after its first chunk, and the
        usage it carried (or an estimate). Safe to call more than once; only the first counts."""
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(error, usage)

    async def batches(self, chunk_timeout: float) -> AsyncIterator[list[Chunk]]:
        """Yields the chunks after `first`, each read bounded by `chunk_timeout` seconds (an
        empty batch is a keep-alive tick, see `ChatRequest.ping_after`).

        Raises:
            UpstreamError: the upstream failed, cut the stream, or went quiet too long.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            try:
                async with asyncio.timeout(chunk_timeout):
                    batch = await anext(self._source)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise self._quiet(chunk_timeout) from None
            except TransportError as exc:
                raise connection_error(self.dep, exc) from None
            if batch:
                heard = loop.time()
            elif loop.time() - heard >= chunk_timeout:
                raise self._quiet(chunk_timeout)
            yield batch

    def _quiet(self, chunk_timeout: float) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self.dep.provider} stream went quiet for {chunk_timeout:g}s",
            provider=self.dep.provider,
            key_id=self.dep.id,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            # Closing a broken stream must not mask its outcome.
            with contextlib.suppress(Exception):
                await aclose()
        if self._response is not None:
            await self._response.aclose()


async def complete(
    client: UpstreamClient,
    provider: Provider,
    req: ChatRequest,
    dep: Deployment,
    budget: float,
) -> ChatResponse:
    """Sends one non-stream request, bounded by `budget` seconds (or asks `provider.local`).

    Raises:
        UpstreamError: an error answer, a timeout or a connection failure.
        BadRequest: the request cannot be expressed for this provider.
    """
    local = provider.local
    if local is not None:
        return local.respond(req, dep)
    native = _native(provider, req, dep)
    request = provider.build_request(req, dep)
    if req.capture is not None:
        req.capture(request)
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(budget):
            response = await client.send(request)
    except TimeoutError:
        raise UpstreamTimeout(
            f"{dep.provider} did not answer within {budget:g}s",
            provider=dep.provider,
            key_id=dep.id,
        ) from None
    except TransportError as exc:
        raise connection_error(dep, exc) from None
    if response.status_code >= 400:
        if native and _lacks_native(provider, req, dep, response.status_code, response.content):
            return await complete(client, provider, req, dep, _left(budget, started))
        raise provider.classify_error(dep, response.status_code, response.headers, response.content)
    return provider.parse_response(req, dep, response.content)


async def open_stream(
    client: UpstreamClient,
    provider: Provider,
    req: ChatRequest,
    dep: Deployment,
    budget: float,
) -> OpenStream:
    """Starts a stream and waits for its first chunk (bounded by `budget` seconds).

    A provider answering locally (`provider.local`) streams its own chunks instead.

    Raises:
        UpstreamError: an error answer, an error as first event, a timeout, a dropped
            connection, or a stream that ended before any chunk.
    """
    local = provider.local
    if local is not None:
        chunks = _one_by_one(local.stream(req, dep))
        return OpenStream(await anext(chunks), dep, chunks)
    native = _native(provider, req, dep)
    request = provider.build_request(req, dep)
    if req.capture is not None:
        req.capture(request)
    started = asyncio.get_running_loop().time()
    response: UpstreamResponse | None = None
    source: AsyncIterator[list[Chunk]] | None = None
    try:
        async with asyncio.timeout(budget):
            response = await client.send(request, stream=True)
            if response.status_code >= 400:
                body = await response.aread()
                if native and _lacks_native(provider, req, dep, response.status_code, body):
                    await response.aclose()
                    response = None
                    return await open_stream(client, provider, req, dep, _left(budget, started))
                raise provider.classify_error(dep, response.status_code, response.headers, body)
            decoder = provider.open_stream(req, dep)
            source = _decode(response, decoder, dep, native=native, idle=req.ping_after)
            first = await anext(source)
    except TimeoutError:
        await _abandon(source, response)
        raise UpstreamTimeout(
            f"{dep.provider} sent no first chunk within {budget:g}s",
            provider=dep.provider,
            key_id=dep.id,
        ) from None
    except StopAsyncIteration:
        await _abandon(source, response)
        raise UpstreamError(
            f"{dep.provider} ended the stream before any chunk",
            provider=dep.provider,
            key_id=dep.id,
            status=502,
            retryable=True,
        ) from None
    except TransportError as exc:
        await _abandon(source, response)
        raise connection_error(dep, exc) from None
    except BaseException:
        await _abandon(source, response)
        raise
    return OpenStream(first, dep, source, response, native=native)


_FALLBACKS: dict[type, bool] = {}


def _is_fallback(provider: Provider) -> bool:
    """Whether `provider` is a `NativeFallback`, memoized per class (an isinstance check
    against a runtime-checkable Protocol inspects every member, ~10 µs each time)."""
    kind = type(provider)
    known = _FALLBACKS.get(kind)
    if known is None:
        known = _FALLBACKS[kind] = isinstance(provider, NativeFallback)
    return known


def _native(provider: Provider, req: ChatRequest, dep: Deployment) -> bool:
    """Whether `req` goes to `dep` in the client's own format (a pass-through). When it does
    not, the translation the front door deferred (`ChatRequest.pending`) is made now.

    Raises:
        BadRequest: that translation failed (the client's body names an ill-typed field).
    """
    native = passes_through(provider, req) and (
        not _is_fallback(provider) or cast(NativeFallback, provider).passes_through_on(req, dep)
    )
    if not native:
        req.settle()
    return native


def _lacks_native(
    provider: Provider, req: ChatRequest, dep: Deployment, status: int, body: bytes
) -> bool:
    """Whether an error answer to a request sent in the client's format means `dep` does not
    serve that format (now remembered by the provider), so the request is to be sent again at
    once, translated. Asked only after a pass-through, so the retry cannot loop."""
    if req.native is None or not _is_fallback(provider):
        return False
    if not cast(NativeFallback, provider).lacks_native(req, dep, status, body):
        return False
    log.info(
        "deployment %s: the upstream answered %d for the %s format; its requests go "
        "translated from now on",
        dep.id,
        status,
        req.native.wire,
    )
    return True


def _left(budget: float, started: float) -> float:
    """The seconds of `budget` left since loop time `started` (the retry's own bound)."""
    return max(0.0, budget - (asyncio.get_running_loop().time() - started))


async def _decode(
    response: UpstreamResponse,
    decoder: StreamDecoder,
    dep: Deployment,
    *,
    native: bool = False,
    idle: float | None = None,
) -> AsyncIterator[list[Chunk]]:
    """Yields the chunks each network read completes; an empty batch only with `idle`, for
    each `idle` seconds without a read once a batch was yielded (a keep-alive tick).

    With `native` (a pass-through), the bytes of the events each read completes follow that
    read's chunks on a data-less chunk, so the client gets the upstream's stream as sent.

    Raises:
        UpstreamError: the stream grew past MAX_BODY bytes, or one event past MAX_EVENT.
    """
    size = 0
    if isinstance(decoder, BinaryStreamDecoder):  # not SSE: the decoder frames the bytes
        async for data in response.aiter_bytes():
            size += len(data)
            if size > MAX_BODY:
                raise _too_large(dep, f"a stream longer than {MAX_BODY >> 20} MiB")
            if batch := decoder.feed_bytes(data):
                yield batch
            if decoder.done:
                return
        return
    sse = SSEDecoder()
    feed = _with_native(decoder) if native else decoder.feed
    # A pass-through relays each read's whole events as one piece, and decodes only the
    # events its decoder reads (`native_events`, when it names them).
    wanted: frozenset[bytes] | None = getattr(decoder, "native_events", None)
    started = False
    reads = response.aiter_bytes() if idle is None else response.aiter_bytes(idle)
    async for data in reads:
        if not data:
            if started:
                yield []
            continue
        size += len(data)
        if size > MAX_BODY:
            raise _too_large(dep, f"a stream longer than {MAX_BODY >> 20} MiB")
        try:
            if native:
                events, piece = sse.relay(data, wanted)
            else:
                events = sse.feed(data)
        except EventTooLargeError:
            raise _too_large(dep, f"an event longer than {MAX_EVENT >> 20} MiB") from None
        if native:
            batch = [chunk for event in events for chunk in decoder.feed(event)]
            if piece:
                batch.append(Chunk(data=None, native=piece))
        else:
            batch = [chunk for event in events for chunk in feed(event)]
        if batch:
            started = True
            yield batch
        if decoder.done:
            return
    batch = [chunk for event in sse.flush() for chunk in feed(event)]
    if batch:
        yield batch


def _with_native(decoder: StreamDecoder) -> Callable[[SSEEvent], list[Chunk]]:
    def feed(event: SSEEvent) -> list[Chunk]:
        chunks = decoder.feed(event)
        raw = event.raw or encode_event(event)
        if not chunks:
            return [Chunk(data=None, native=raw)]
        first = chunks[0]  # a new chunk, not dataclasses.replace: that costs ~5 µs an event
        chunks[0] = Chunk(
            first.data, first.usage, first.text, first.usage_only, raw, first.finish, first.doc
        )
        return chunks

    return feed


async def _one_by_one(source: AsyncIterator[Chunk]) -> AsyncIterator[list[Chunk]]:
    async for chunk in source:
        yield [chunk]


async def _abandon(
    source: AsyncIterator[list[Chunk]] | None, response: UpstreamResponse | None
) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):  # the original failure is what gets reported
            await aclose()
    if response is not None:
        await response.aclose()


def _too_large(dep: Deployment, what: str) -> UpstreamError:
    """The error of an answer past the bounds (the rest is not read, nothing more is held)."""
    return UpstreamError(
        f"{dep.provider} sent {what}",
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
        code="upstream_too_large",
    )


def connection_error(dep: Deployment, exc: TransportError) -> UpstreamError:
    """Returns the retryable error for a refused, reset or cut connection (no URL, no key),
    or for an answer longer than MAX_BODY."""
    if isinstance(exc, BodyTooLarge):
        return _too_large(dep, f"an answer longer than {MAX_BODY >> 20} MiB")
    kind = type(exc).__name__
    return UpstreamError(
        f"{dep.provider}: connection failed ({kind})",
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
        code="upstream_connection",
    )
