"""One request end to end: cache lookup, the router, cost, the stream relay and the usage event.

The HTTP layer hands a `ChatRequest` to `Pipeline.handle` and writes back the `Answer` it gets
(bytes, or an async iterator of SSE bytes) with its `x-llmproxy-*` headers. A request whose task
is cancelled (its client left) is reported as a 499; `end_requests` ends every request still in
flight at shutdown, each with a 503 in its format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from proxy.access.book import Ticket, VirtualKeys
from proxy.config.types import Deployment
from proxy.endpoints.native import stream_error_event
from proxy.endpoints.params import client_params
from proxy.errors import ProxyError, UpstreamError
from proxy.events import EventBus, RequestFinished, RequestStarted
from proxy.routing.attempt import OpenStream
from proxy.routing.router import Router, Trace, estimate_prompt_tokens
from proxy.schema import (
    PREVIEW_CHARS,
    CacheControl,
    ChatRequest,
    Chunk,
    UpstreamRequest,
    Usage,
    text_preview,
)
from proxy.sse import DONE, encode
from proxy.store.bodies import BodyStore
from proxy.store.cache import CachedAnswer, ResponseCache
from proxy.store.pricing import PriceTable
from proxy.stream_assembly import assemble, replay

MAX_KEPT = 4 * 1024 * 1024
"""Bytes of chunks kept to cache a streamed answer whole; a longer one streams on, uncached."""
CLIENT_GONE = "the client went away"
DEFAULT_MAX_TOKENS = 1000
"""Output tokens a virtual key's reservation assumes when the request sets no maximum."""
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
MAX_RATE_ENTRIES = 1024


@dataclass
class Answer:
    """What the HTTP layer sends: a body or an SSE stream, and the proxy's headers."""

    headers: dict[str, str]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    native: bool = False
    """The body or stream is in the client's own wire format (a pass-through), not OpenAI's."""


class AnswerStream:
    """An answer's SSE bytes whose end-of-stream accounting runs exactly once: when the stream
    ends or fails, and also when it is closed before its first read (an unstarted async
    generator's `finally` never runs, which would leak the report, the in-flight slot and the
    upstream connection)."""

    __slots__ = ("_gen", "_on_unread_close", "_started")

    def __init__(
        self, gen: AsyncGenerator[bytes, None], on_unread_close: Callable[[], Awaitable[None]]
    ) -> None:
        self._gen = gen
        self._on_unread_close = on_unread_close
        self._started = False

    def __aiter__(self) -> AnswerStream:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        self._started = True
        return self._gen.__anext__()

    async def aclose(self) -> None:
        """Closes the stream; runs the accounting here if no read ever started it."""
        started, self._started = self._started, True
        await self._gen.aclose()
        if not started:
            await self._on_unread_close()


@dataclass
class _Outcome:
    trace: Trace
    status: int = 200
    dep: Deployment | None = None
    usage: Usage | None = None
    cost: float | None = None
    cache: str = "off"
    ttft_ms: float | None = None
    error: str | None = None
    preview: str = ""
    cost_saved: float | None = None
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    """Bytes in `chunks`, bounded by MAX_KEPT."""
    chars: int = 0
    """Characters of streamed text (only the first PREVIEW_CHARS or so are kept)."""
    unread: int = 0
    """Chunks past the preview whose text the decoder did not read (about a token each)."""
    task: asyncio.Task[object] | None = None
    keep_chunks: bool = False
    native: bool = False
    """The stream passes the upstream's own events through (see `Answer.native`)."""
    last_native: bytes | None = None
    """The last upstream event relayed as is (its numbering continues in an error event)."""
    ticket: Ticket | None = None
    """A virtual key's admission, settled once by `_report`."""
    """Keep the streamed chunks: only when the whole answer will be cached."""
    bodies: BodyStore | None = None
    """Where this request's bodies go (only while they are stored); `answer` is stored there
    by `_report`."""
    answer: bytes | bytearray | None = None
    answer_size: int = 0
    """Bytes of a stream's answer relayed (`answer` keeps the first of them)."""
    finish: str | None = None
    """Why the answer ended (OpenAI's finish_reason), once a chunk or the answer said."""


class Pipeline:
    """Serves requests through the cache and the router, and reports each one once."""

    def __init__(
        self,
        router: Router,
        cache: ResponseCache | None,
        prices: PriceTable,
        bus: EventBus,
        finish: Callable[[RequestFinished], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        keys: VirtualKeys | None = None,
    ) -> None:
        """`keys`: the virtual keys a non-master caller is admitted by (None: not served)."""
        self.router = router
        self.keys = keys
        self._rates: dict[str, tuple[float, float]] = {}
        """Per group asked for: the highest USD per input and per output token (estimates)."""
        self.cache = cache
        self.prices = prices
        self._bus = bus
        self._finish = finish
        self._clock = clock
        self._wall = wall
        self._serving: set[asyncio.Task[object]] = set()
        self.ending = False
        """Set by `end_requests`: a cancelled request is then ended with a 503, not a 499."""
        self.bodies: BodyStore | None = None
        """Where request bodies are stored; None (the default): nothing is captured."""

    def end_requests(self) -> int:
        """Ends every request still in flight (the drain at shutdown ran out): a stream gets an
        error event in its client's format, any other request a 503; each is reported once.

        Returns:
            How many requests were in flight.
        """
        self.ending = True
        tasks = list(self._serving)
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def handle(self, req: ChatRequest, ctl: CacheControl) -> Answer:
        """Answers one request.

        Raises:
            ProxyError: the request failed (already reported as a finished request), or 503
                when `end_requests` ended it.
            asyncio.CancelledError: the serving task was cancelled (the client left); reported
                as a 499 with the prompt's estimated tokens.
        """
        router = self.router  # a config reload swaps it: this request keeps the one it began on
        deps = router.resolve(req.model)  # unknown model: 404 before anything is counted
        caller = req.caller
        ticket = None
        if caller is not None and not caller.master and self.keys is not None:
            # 401/403/400 budget/429 before anything is counted; reserves the estimate.
            ticket = await self.keys.admit(caller, req.model, self._estimate(req, deps))
        trace = router.trace(req)
        started_wall = self._wall()
        req.created = req.created or int(started_wall)
        out = _Outcome(trace, ticket=ticket)
        if self.bodies is not None:
            _capture(self.bodies, req, out)
        task = out.task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
        started = RequestStarted(req.request_id, started_wall, req.model[:200], req.stream)
        self._bus.publish(started)
        try:
            return await self._serve(req, ctl, out, started_wall, router)
        except asyncio.CancelledError:
            ended = self._cancelled(req, out, started_wall)
            if ended is None:
                raise
            raise ended from None

    def _cancelled(self, req: ChatRequest, out: _Outcome, started_wall: float) -> ProxyError | None:
        """Reports a request cancelled before its answer was handed over; returns the 503 to
        answer instead when `end_requests` ended it (the cancellation is then undone)."""
        out.dep = out.dep or out.trace.current
        if out.usage is None:
            prompt = estimate_prompt_tokens(req)  # the upstream had the prompt, nothing more
            out.usage = Usage(prompt, 0, prompt, estimated=True)
        if out.dep is not None and out.cost is None:
            out.cost = self._cost(req, out.dep, out.usage)
        ended = _shutting_down() if self.ending else None
        out.status, out.error = (499, CLIENT_GONE) if ended is None else (503, ended.message)
        if ended is not None and out.task is not None:
            out.task.uncancel()
        self._report(req, out, started_wall)
        return ended

    async def _serve(
        self,
        req: ChatRequest,
        ctl: CacheControl,
        out: _Outcome,
        started_wall: float,
        router: Router,
    ) -> Answer:
        trace = out.trace
        # A pinned request wants that deployment's own answer: never read nor written.
        use_cache = (
            self.cache is not None and req.pin is None and (req.kind == "chat" or not req.stream)
        )
        key = ResponseCache.key(req) if use_cache else ""
        if use_cache and ctl.no_cache:
            assert self.cache is not None
            self.cache.record_bypass()
        elif use_cache:
            assert self.cache is not None
            hit = await self.cache.get(key)
            out.cache = "miss"
            if hit is not None:
                return self._from_cache(req, out, hit, started_wall)
        try:
            if req.stream:
                req.neutral_chunks = bool(key) and not ctl.no_cache
                opened = await router.open_stream(req, trace)
            else:
                resp, dep = await router.complete(req, trace)
        except ProxyError as err:
            out.status, out.error = err.status, err.message
            if out.bodies is not None:
                out.answer = orjson.dumps(err.body())
            self._report(req, out, started_wall)
            raise
        if req.stream:
            out.keep_chunks = bool(key) and not ctl.no_cache
            out.status, out.dep = 499, opened.dep  # until the stream completes: client gone
            out.native = opened.native
            text: list[str] = []  # the answer's first PREVIEW_CHARS or so, for its preview
            close = partial(self._close_relay, req, out, opened, text, key, ctl, started_wall)
            relay = self._relay(req, out, opened, text, close)
            if out.bodies is not None:
                relay = _recording(relay, out, out.bodies.max_bytes)
            return Answer(
                self._headers(req, out, opened.dep),
                stream=AnswerStream(relay, partial(close, False, None)),
                native=opened.native,
            )
        out.dep, out.usage, out.preview, out.finish = dep, resp.usage, resp.preview, resp.finish
        out.cost = self._cost(req, dep, resp.usage) if resp.usage else None
        if key and not ctl.no_cache and self.cache is not None:
            await self.cache.put(
                key,
                CachedAnswer(
                    resp.body, resp.usage, out.cost, dep.id, dep.provider, resp.preview, resp.finish
                ),
                ctl.ttl,
            )
        headers = self._headers(req, out, dep)
        if out.cost is not None:
            headers["x-llmproxy-cost"] = f"{out.cost:.8f}"
        if out.bodies is not None:
            out.answer = resp.native if resp.native is not None else resp.body
        self._report(req, out, started_wall)
        if resp.native is not None:
            return Answer(headers, body=resp.native, native=True)
        return Answer(headers, body=resp.body)

    def _from_cache(
        self, req: ChatRequest, out: _Outcome, hit: CachedAnswer, started_wall: float
    ) -> Answer:
        out.cache, out.usage, out.cost, out.cost_saved = "hit", hit.usage, 0.0, hit.cost
        out.preview, out.finish = hit.preview, hit.finish
        if out.bodies is not None:
            out.answer = hit.body  # the cached answer, in OpenAI's form
        headers = {
            "x-llmproxy-deployment": hit.deployment,
            "x-llmproxy-provider": hit.provider,
            "x-llmproxy-attempts": "0",
            "x-llmproxy-cache": "hit",
            "x-request-id": req.request_id,
        }
        if not req.stream:
            headers["x-llmproxy-cost"] = "0"
            self._report(req, out, started_wall, deployment=hit.deployment, provider=hit.provider)
            return Answer(headers, body=hit.body)
        chunks = replay(hit.body)
        out.status = 499  # until the replay completes: the client went away

        async def report() -> None:
            self._report(req, out, started_wall, deployment=hit.deployment, provider=hit.provider)

        async def relay() -> AsyncGenerator[bytes, None]:
            try:
                for i, data in enumerate(chunks):
                    if i == len(chunks) - 1 and not req.include_usage:
                        break  # replay() puts the usage-only chunk last
                    yield encode(data)
                yield DONE
                out.status = 200
            finally:
                await report()

        return Answer(headers, stream=AnswerStream(relay(), report))

    def forget_prices(self) -> None:
        """Drops the per-group price maxima of the reservation estimate (a reload may have
        repriced a group)."""
        self._rates.clear()

    def _estimate(self, req: ChatRequest, deps: list[Deployment]) -> float:
        """USD to reserve for a virtual key's request: the prompt's estimated tokens at the
        group's highest input price, plus its max tokens (1,000 when unset) at the highest
        output price."""
        rates = self._rates.get(req.model)
        if rates is None:
            rates = self._group_rates(req.model, deps)
        body = req.native.body if req.pending is not None and req.native is not None else req.body
        if req.pending is not None and req.native is not None:
            bulk = req.native.bulk
            name = "messages" if "messages" in body else "input"
            size = len(bulk[name]) if name in bulk else len(orjson.dumps(body.get(name)))
            prompt = max(1, size // 4)
        else:
            prompt = estimate_prompt_tokens(req)
        out = DEFAULT_MAX_TOKENS
        for name in _MAX_TOKENS:
            asked = body.get(name)
            if asked is not None:
                if isinstance(asked, int) and asked > 0:
                    out = asked
                break
        return prompt * rates[0] + out * rates[1]

    def _group_rates(self, model: str, deps: list[Deployment]) -> tuple[float, float]:
        rate_in = rate_out = 0.0
        for dep in deps:
            upstream = dep.upstream_model(model) if dep.wildcard else None
            cost_in = self.prices.cost(dep, Usage(1_000_000, 0, 1_000_000), model=upstream)
            cost_out = self.prices.cost(dep, Usage(0, 1_000_000, 1_000_000), model=upstream)
            rate_in = max(rate_in, (cost_in or 0.0) / 1_000_000)
            rate_out = max(rate_out, (cost_out or 0.0) / 1_000_000)
        if len(self._rates) >= MAX_RATE_ENTRIES:
            self._rates.clear()  # wildcard groups take any name: stay bounded
        self._rates[model] = (rate_in, rate_out)
        return rate_in, rate_out

    def _cost(self, req: ChatRequest, dep: Deployment, usage: Usage) -> float | None:
        """Prices `usage`; a wildcard deployment is priced by the model it actually called."""
        model = dep.upstream_model(req.model) if dep.wildcard else None
        return self.prices.cost(dep, usage, model=model)

    def _headers(self, req: ChatRequest, out: _Outcome, dep: Deployment) -> dict[str, str]:
        headers = {
            "x-llmproxy-deployment": dep.id,
            "x-llmproxy-provider": dep.provider,
            "x-llmproxy-attempts": str(len(out.trace.attempts)),
            "x-llmproxy-cache": out.cache,
            "x-request-id": req.request_id,
        }
        if out.trace.fallback:
            headers["x-llmproxy-fallback"] = out.trace.fallback
        return headers

    async def _relay(
        self,
        req: ChatRequest,
        out: _Outcome,
        opened: OpenStream,
        text: list[str],
        close: Callable[[bool, UpstreamError | None], Awaitable[None]],
    ) -> AsyncGenerator[bytes, None]:
        dep = opened.dep
        complete = False
        failed: UpstreamError | None = None
        try:
            data = self._take(req, out, opened.first, text)
            if data:
                yield data
            async for batch in opened.batches(dep.stream_timeout):
                data = self._take(req, out, batch, text)
                if data or not batch:  # b"" for a keep-alive tick (`ChatRequest.ping_after`)
                    yield data
            complete = True
            out.status = 200
            if not opened.native:
                yield DONE
        except UpstreamError as err:
            # Bytes already reached the client: end the stream with an error event.
            failed = err
            out.status, out.error = err.status, err.message
            for data in self._error_events(req, out, err):
                yield data
        except asyncio.CancelledError:
            if not self.ending or out.task is None:
                raise  # the client went away: reported as a 499 by `close`
            out.task.uncancel()
            ended = _shutting_down()
            out.status, out.error = ended.status, ended.message
            for data in self._error_events(req, out, ended):
                yield data
        finally:
            await close(complete, failed)

    @staticmethod
    def _error_events(req: ChatRequest, out: _Outcome, err: ProxyError) -> list[bytes]:
        """The SSE bytes that end a started stream with `err`, in its client's format."""
        if out.native and req.native is not None:
            return [stream_error_event(req.native.wire, err, out.last_native)]
        return [encode(orjson.dumps(err.body())), DONE]

    async def _close_relay(
        self,
        req: ChatRequest,
        out: _Outcome,
        opened: OpenStream,
        text: list[str],
        key: str,
        ctl: CacheControl,
        started_wall: float,
        complete: bool,
        failed: UpstreamError | None,
    ) -> None:
        """Ends a relayed stream: closes the upstream, settles usage, reports once."""
        await opened.close()
        self._settle_usage(req, out, text)
        opened.end(failed, out.usage)
        await self._end_stream(req, out, opened.dep, complete, key, ctl, started_wall)

    def _take(self, req: ChatRequest, out: _Outcome, batch: list[Chunk], text: list[str]) -> bytes:
        """Notes usage, time to first token and text; returns the SSE bytes to send.

        The chunks themselves are kept only when the whole answer will be cached.
        """
        keep = out.keep_chunks
        native = out.native
        docs = req.chunk_docs
        pieces: list[bytes] = []
        for chunk in batch:
            if chunk.usage is not None:
                out.usage = chunk.usage
            if chunk.finish is not None:
                out.finish = chunk.finish
            if chunk.text:
                if out.ttft_ms is None:
                    out.ttft_ms = (self._clock() - out.trace.started) * 1000
                if out.chars <= PREVIEW_CHARS:
                    text.append(chunk.text)
                out.chars += len(chunk.text)
            elif out.chars >= PREVIEW_CHARS and chunk.data is not None and not chunk.usage_only:
                out.unread += 1  # a lean decoder stops reading text once the preview is full
            if native:
                if chunk.native is not None:
                    pieces.append(chunk.native)
                    out.last_native = chunk.native
            elif chunk.data is not None and (not chunk.usage_only or req.include_usage):
                pieces.append(b"data: " + chunk.data + b"\n\n")
                if docs is not None:
                    docs.append(chunk.doc if chunk.doc is not None else chunk.data)
            if keep and chunk.data is not None:
                keep = self._keep(out, chunk.data)
        return b"".join(pieces)

    @staticmethod
    def _keep(out: _Outcome, data: bytes) -> bool:
        """Keeps a chunk for the cache; past MAX_KEPT drops them all (no caching). Returns
        whether chunks are still kept."""
        out.kept += len(data)
        if out.kept > MAX_KEPT:
            out.keep_chunks, out.chunks = False, []
            return False
        out.chunks.append(data)
        return True

    @staticmethod
    def _settle_usage(req: ChatRequest, out: _Outcome, text: list[str]) -> None:
        """Sets the preview, and an estimate (4 characters a token) when upstream sent no usage."""
        out.preview = text_preview("".join(text), PREVIEW_CHARS)
        if out.usage is None:
            prompt = estimate_prompt_tokens(req)
            if out.chunks:
                completion = max(1, _answer_chars(out.chunks) // 4)
            else:
                completion = max(1, out.chars // 4 + out.unread)
            out.usage = Usage(prompt, completion, prompt + completion, estimated=True)

    async def _end_stream(
        self,
        req: ChatRequest,
        out: _Outcome,
        dep: Deployment,
        complete: bool,
        key: str,
        ctl: CacheControl,
        started_wall: float,
    ) -> None:
        assert out.usage is not None
        out.cost = self._cost(req, dep, out.usage)
        if complete and out.keep_chunks and key and not ctl.no_cache and self.cache is not None:
            answer = CachedAnswer(
                assemble(out.chunks),
                out.usage,
                out.cost,
                dep.id,
                dep.provider,
                out.preview,
                out.finish,
            )
            await self.cache.put(key, answer, ctl.ttl)
        self._report(req, out, started_wall)

    def _report(
        self,
        req: ChatRequest,
        out: _Outcome,
        started_wall: float,
        *,
        deployment: str | None = None,
        provider: str | None = None,
    ) -> None:
        if out.task is not None:
            self._serving.discard(out.task)
        if out.bodies is not None and out.answer is not None:
            out.bodies.put(req.request_id, "answer", out.answer, size=out.answer_size or None)
        usage = out.usage or Usage()
        ticket, caller = out.ticket, req.caller
        if ticket is not None and self.keys is not None:
            out.ticket = None  # settled exactly once
            self.keys.settle(ticket, out.cost, usage.prompt_tokens + usage.completion_tokens)
        dep = out.dep
        attempts = out.trace.attempts
        self._finish(
            RequestFinished(
                id=req.request_id,
                time=started_wall,
                group=req.model,
                deployment=deployment
                or (dep.id if dep else (attempts[-1].deployment if attempts else None)),
                provider=provider or (dep.provider if dep else None),
                status=out.status,
                latency_ms=(self._clock() - out.trace.started) * 1000,
                ttft_ms=out.ttft_ms,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=out.cost,
                cache=out.cache,
                attempts=len(attempts),
                fallback=out.trace.fallback,
                stream=req.stream,
                kind=req.kind,
                front_door=req.front_door,
                client=req.client,
                session=req.session,
                error=out.error,
                cost_saved=out.cost_saved,
                tokens_estimated=usage.estimated,
                cached_tokens=usage.cached_tokens,
                attempt_log=tuple(a.as_dict() for a in attempts),
                preview=out.preview,
                key_alias=None if caller is None or caller.master else caller.alias,
                finish=None if out.status == 499 else out.finish,  # 499: the client went away
                params=_params(req),
            )
        )


def _params(req: ChatRequest) -> dict[str, Any]:
    """The client's parameters for the request log, from its own body."""
    native = req.native
    return client_params(req.body) if native is None else client_params(native.body, native.bulk)


def _capture(bodies: BodyStore, req: ChatRequest, out: _Outcome) -> None:
    """Stores the client's body and has each attempt hand over what it sends upstream (only
    while bodies are stored)."""
    out.bodies = bodies
    client = req.native.decoded() if req.native is not None else req.body
    bodies.put(req.request_id, "client", client)
    request_id = req.request_id

    def capture(request: UpstreamRequest) -> None:
        bodies.put_upstream(request_id, request.url, request.content)

    req.capture = capture


async def _recording(
    relay: AsyncGenerator[bytes, None], out: _Outcome, limit: int
) -> AsyncGenerator[bytes, None]:
    """Relays a stream's SSE bytes, keeping the first `limit` of them as its stored answer
    (`_report`, run when the relay ends, stores them)."""
    kept = out.answer = bytearray()
    try:
        async for data in relay:
            out.answer_size += len(data)
            if len(kept) < limit:
                kept += data[: limit - len(kept)]
            yield data
    finally:
        await relay.aclose()


def _shutting_down() -> ProxyError:
    return ProxyError(
        "The proxy is shutting down.", status=503, type="api_error", code="shutting_down"
    )


def _answer_chars(chunks: list[bytes]) -> int:
    """Characters of text and tool arguments in a streamed answer (for a usage estimate)."""
    if not chunks:
        return 0
    doc = orjson.loads(assemble(chunks))
    total = 0
    for choice in doc.get("choices") or []:
        message = choice.get("message") or {}
        total += len(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            total += len((call.get("function") or {}).get("arguments") or "")
    return total
