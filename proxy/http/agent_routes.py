"""The two agent front doors beside Chat Completions: Anthropic Messages (`/v1/messages`,
`/v1/messages/count_tokens`: Claude Code, the anthropic SDKs) and OpenAI Responses
(`/v1/responses`: Codex CLI and clients that default to it). Lean handlers.

Each parses its body with its endpoint module, sends the neutral request (with the client's
own body beside it, for a pass-through) through the pipeline, and renders what comes back:
an upstream answer in the client's format goes as it is; anything else (another provider, a
cache hit) is translated from OpenAI's form, chunk by chunk for streams.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import orjson

from proxy.endpoints import anthropic_messages, openai_responses
from proxy.endpoints.chunk_stream import ChunkRenderer
from proxy.http.clients import client_name, header_session
from proxy.http.pin import checked_pin
from proxy.http.routes import Call
from proxy.pipeline import Answer
from proxy.providers.registry import FORWARDED_CLIENT_HEADERS
from proxy.runtime import Runtime
from proxy.schema import PIN_HEADER, CacheControl, ChatRequest, NativeBody

log = logging.getLogger("llmproxy")
_Info = TypeVar("_Info")
PING_AFTER = 10.0
"""Seconds of upstream silence in a translated Messages stream before a `ping` event (as
Anthropic's own streams send them, so clients and middleboxes see the connection alive)."""
_Parsed = tuple[ChatRequest, CacheControl, _Info]


class TranslatedStream:
    """The pipeline's OpenAI SSE bytes, re-rendered in another wire format as they arrive.

    `aclose()` closes the pipeline's stream, which runs its end-of-stream accounting once.
    """

    __slots__ = ("_inner", "_renderer", "_docs", "_idle", "_done")

    def __init__(
        self,
        inner: AsyncIterator[bytes],
        renderer: ChunkRenderer,
        docs: list[Mapping[str, Any] | bytes] | None = None,
        idle: Callable[[], bytes] | None = None,
    ) -> None:
        """`docs` is the request's `chunk_docs`: the chunks of each piece the pipeline yields,
        rendered from there (the piece's bytes are parsed only when it holds none: the end, an
        error event, a cached answer). `idle` renders a keep-alive for the pipeline's b""
        ticks (Messages' `ping`)."""
        self._inner = inner
        self._renderer = renderer
        self._docs = docs
        self._idle = idle
        self._done = False

    def __aiter__(self) -> TranslatedStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            try:
                data = await anext(self._inner)
            except StopAsyncIteration:
                self._done = True
                tail = self._renderer.finish()
                if tail:
                    return tail
                break
            out = self._render(data) if data else self._idle() if self._idle else b""
            if out:
                return out
        raise StopAsyncIteration

    def _render(self, data: bytes) -> bytes:
        docs = self._docs
        if not docs:
            return self._renderer.feed_sse(data)
        feed = self._renderer.feed
        out = b"".join(feed(doc) for doc in docs)
        docs.clear()
        return out

    async def aclose(self) -> None:
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()


class AgentHandlers:
    """The handlers of the Messages and Responses routes, around one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def messages(self, call: Call) -> Answer:
        """POST /v1/messages (lean): Anthropic's Messages API."""
        parse = partial(anthropic_messages.parse, call.body, self._forwarded(call))
        req, ctl, info = self._parse(parse, call.body, "anthropic_messages")
        self._fill(
            req,
            call,
            "messages",
            NativeBody("anthropic_messages", info.body, info.raw, info.bulk),
        )
        req.ping_after = PING_AFTER
        req.session = req.session or info.session_id
        answer = await self._handle(req, ctl, call)
        if answer.native:
            return answer
        if answer.stream is None:
            return Answer(
                answer.headers, body=anthropic_messages.render(answer.body or b"", req.model)
            )
        out = anthropic_messages.MessagesStream(req.model)
        stream = TranslatedStream(answer.stream, out, req.chunk_docs, out.ping)
        return Answer(answer.headers, stream=stream)

    async def count_tokens(self, call: Call) -> Answer:
        """POST /v1/messages/count_tokens (lean): Anthropic's own count when the group has a
        usable Anthropic deployment (free), else an estimate from the body (4xx for an unknown
        model or a bad body, as for /v1/messages)."""
        model, estimate = anthropic_messages.count_tokens(call.body)
        keys = self.runtime.virtual_keys
        if keys is not None:
            keys.check(call.caller, model)  # free, but only for the models the key may call
        router = self.runtime.serving_pipeline().router
        exact = await router.count_tokens(model, orjson.loads(call.body), self._forwarded(call))
        return Answer({"x-request-id": call.request_id}, body=exact or estimate)

    async def responses(self, call: Call) -> Answer:
        """POST /v1/responses (lean): OpenAI's Responses API, stateless."""
        parse = partial(openai_responses.parse, call.body, self._forwarded(call))
        req, ctl, info = self._parse(parse, call.body, "openai_responses")
        self._fill(
            req,
            call,
            "responses",
            NativeBody("openai_responses", info.body, info.raw, info.bulk),
        )
        req.session = req.session or info.session_id
        answer = await self._handle(req, ctl, call)
        if answer.native:
            return answer
        if answer.stream is None:
            return Answer(answer.headers, body=openai_responses.render(answer.body or b"", info))
        out = openai_responses.ResponsesStream(info, created_at=int(time.time()))
        return Answer(answer.headers, stream=TranslatedStream(answer.stream, out, req.chunk_docs))

    def _parse(self, parse: Callable[..., _Parsed[_Info]], raw: bytes, wire: str) -> _Parsed[_Info]:
        """Parses with the translation deferred when only deployments taking the `wire`
        body as sent may serve it and no cache needs the neutral form (`native_only`)."""
        hint = _model_hint(raw)
        router = self.runtime.serving_pipeline().router
        translate = self.runtime.cache is not None or not router.native_only(hint, wire)
        parsed = parse(drop_params=self._drop_params, translate=translate)
        if not translate and parsed[0].model != hint:  # the hint was a nested "model"
            parsed = parse(drop_params=self._drop_params)
        return parsed

    @property
    def _drop_params(self) -> bool:
        return self.runtime.config.litellm.drop_params

    @staticmethod
    def _forwarded(call: Call) -> dict[str, str]:
        headers = call.headers
        return {name: headers[name] for name in FORWARDED_CLIENT_HEADERS if name in headers}

    @staticmethod
    def _fill(req: ChatRequest, call: Call, door: str, native: NativeBody) -> None:
        req.request_id = call.request_id
        req.caller = call.caller
        pin = call.headers.get(PIN_HEADER)
        if pin is not None:
            req.pin = checked_pin(pin, call.caller)
        req.front_door = door
        req.native = native
        if req.stream:  # rendered in the door's format from the chunks, not their bytes
            req.chunk_docs = []
        req.client = client_name(call.headers.get("user-agent", ""))
        req.session = header_session(call.headers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: POST %s model=%s stream=%s", call.request_id, call.path, req.model, req.stream
            )

    async def _handle(self, req: ChatRequest, ctl: CacheControl, call: Call) -> Answer:
        if "no-cache" in call.headers.get("cache-control", "").lower():
            ctl = CacheControl(no_cache=True, ttl=ctl.ttl)
        return await self.runtime.serving_pipeline().handle(req, ctl)


_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def _model_hint(raw: bytes) -> str:
    """The body's `model`, found without parsing the whole body (only to choose whether the
    body needs translating; the parse that follows is the one that counts). "" if not found."""
    found = _MODEL.search(raw)
    return found.group(1).decode("utf-8", "replace") if found else ""
