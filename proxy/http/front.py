"""The OpenAI routes as a lean ASGI front; every other path goes on to the FastAPI app.

Chat, embeddings and completions are the proxy's hot path. FastAPI's per-request machinery
(middleware stack, dependency solving, exit stacks) cost about a fifth of the proxy's CPU per
request there, so these routes read the body, call the pipeline and write the answer straight
through ASGI. Behaviour is the same as any route: OpenAI's error shape, the same headers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson

from proxy.endpoints.openai_chat import parse_request
from proxy.errors import AuthError, BadRequest, ProxyError
from proxy.pipeline import Answer
from proxy.runtime import Runtime
from proxy.schema import CacheControl
from proxy.secret import Scrubber, Secret

log = logging.getLogger("llmproxy")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024
"""Bodies above this size get 413 (images in base64 make real requests large)."""
ROUTES = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
    "/v1/completions": "completions",
    "/completions": "completions",
}
# Request headers the hot path reads; others are never decoded.
_WANTED = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"content-length",
        b"cache-control",
        b"x-request-id",
        b"anthropic-version",
        b"anthropic-beta",
    }
)
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
_JSON = [(b"content-type", b"application/json")]
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _ClientGoneError(Exception):
    """The client disconnected before its request body arrived."""


class RequestIds:
    """Short unique request ids: a per-process random prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):06x}"


class OpenAIRoutes:
    """ASGI app: serves ROUTES (POST) itself and passes every other request to `app`."""

    def __init__(
        self,
        runtime: Runtime,
        app: ASGIApp,
        authenticate: Callable[[Mapping[str, str]], None],
        scrubber: Scrubber,
    ) -> None:
        self.runtime = runtime
        self.app = app
        self._authenticate = authenticate
        self._scrubber = scrubber
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            kind = ROUTES.get(scope["path"])
            if kind is not None:
                if scope["method"] == "POST":
                    await self._serve(kind, scope, receive, send)
                else:
                    err = ProxyError(
                        "Method not allowed.",
                        status=405,
                        type="invalid_request_error",
                        headers={"allow": "POST"},
                    )
                    await self._fail(send, err, self._ids(), scope["path"])
                return
        await self.app(scope, receive, send)

    async def _serve(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        headers = _headers(scope)
        given = headers.get("x-request-id", "")
        request_id = given if 0 < len(given) <= 128 else self._ids()
        model = "-"
        try:
            self._authenticate(headers)
            if self.runtime.draining:
                raise ProxyError(
                    "The proxy is shutting down.",
                    status=503,
                    type="api_error",
                    code="shutting_down",
                )
            body = await _read_body(receive, headers)
            passed = {name: headers[name] for name in PASSED_HEADERS if name in headers}
            req, ctl = parse_request(
                body, kind, passed, drop_params=self.runtime.config.litellm.drop_params
            )
            req.request_id, model = request_id, req.model
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s: POST %s model=%s stream=%s", request_id, scope["path"], model, req.stream
                )
            if "no-cache" in headers.get("cache-control", "").lower():
                ctl = CacheControl(no_cache=True, ttl=ctl.ttl)
            assert self.runtime.pipeline is not None
            answer = await self.runtime.pipeline.handle(req, ctl)
        except _ClientGoneError:
            return
        except ProxyError as err:
            await self._fail(send, err, request_id, scope["path"])
            return
        except Exception as exc:  # the one edge where anything unexpected becomes a 500
            text = self._scrubber.text(f"{type(exc).__name__}: {exc}")
            log.error("%s: internal error: %s", request_id, text)
            internal = ProxyError("Internal error in the proxy.")
            await self._fail(send, internal, request_id, scope["path"])
            return
        if answer.stream is None:
            await _send_body(send, 200, answer.body or b"", answer.headers, _JSON)
            _log_answer(request_id, model, answer.headers, "200", started)
            return
        outcome = await _relay(answer, receive, send)
        _log_answer(request_id, model, answer.headers, outcome, started)

    async def _fail(self, send: Send, err: ProxyError, request_id: str, path: str) -> None:
        message = self._scrubber.text(err.message)
        level = logging.WARNING if err.status >= 500 else logging.INFO
        log.log(
            level,
            "%s: POST %s -> %d %s: %s",
            request_id,
            path,
            err.status,
            err.code or err.type,
            message,
        )
        body = err.body()
        body["error"]["message"] = message
        headers = {**err.headers, "x-request-id": request_id}
        await _send_body(send, err.status, orjson.dumps(body), headers, _JSON)


def master_key_check(key: Secret | None) -> Callable[[Mapping[str, str]], None]:
    """Returns a check of `Authorization: Bearer`, `x-api-key` or `api-key` against `key`.

    The check raises AuthError when a master key is set and the headers lack it.
    """

    def check(headers: Mapping[str, str]) -> None:
        if key is None:
            return
        given = headers.get("authorization")
        if given is not None:
            scheme, _, token = given.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else given.strip()
        else:
            given = headers.get("x-api-key") or headers.get("api-key")
        if not given or not key.matches(given):
            raise AuthError()

    return check


def _headers(scope: Scope) -> dict[str, str]:
    """Returns the request headers the hot path reads, lower-case names, first value wins."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


async def _read_body(receive: Receive, headers: Mapping[str, str]) -> bytes:
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest("Invalid Content-Length header.")
        if int(length) > MAX_BODY:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY:
                raise _too_large()
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large() -> ProxyError:
    return ProxyError(
        f"Request body larger than {MAX_BODY // (1024 * 1024)} MiB.",
        status=413,
        type="invalid_request_error",
        code="request_too_large",
    )


def _encode(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _send_body(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    base: list[tuple[bytes, bytes]],
) -> None:
    raw = [*base, (b"content-length", str(len(body)).encode()), *_encode(headers)]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _relay(answer: Answer, receive: Receive, send: Send) -> str:
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

    await send(
        {"type": "http.response.start", "status": 200, "headers": [*_SSE, *_encode(answer.headers)]}
    )
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


def _log_answer(
    request_id: str, model: str, headers: Mapping[str, str], outcome: str, started: float
) -> None:
    """Logs a served answer at DEBUG (`--debug`); errors are logged at INFO by `_fail`.

    An INFO line for every answer cost about 7% of the proxy's CPU per request; every request
    is in the usage store, the dashboard and /llmproxy/events anyway.
    """
    if not log.isEnabledFor(logging.DEBUG):
        return
    fallback = headers.get("x-llmproxy-fallback")
    log.debug(
        "%s: %s -> %s via %s (%s), attempts %s, cache %s%s, %.0f ms",
        request_id,
        model,
        outcome,
        headers.get("x-llmproxy-deployment", "-"),
        headers.get("x-llmproxy-provider", "-"),
        headers.get("x-llmproxy-attempts", "-"),
        headers.get("x-llmproxy-cache", "-"),
        f", fallback {fallback}" if fallback else "",
        (time.monotonic() - started) * 1000,
    )
