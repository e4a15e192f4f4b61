"""The front door: the one ASGI app every request reaches first.

It matches the route table, names the request (`x-request-id`, on every answer), checks the key
the route needs, serves lean routes itself and the others through FastAPI, and is the one edge
where errors are rendered, in the route's wire format, and logged, one line format for all.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from proxy.access import MASTER, Caller
from proxy.config.allowed_ips import Network, client_allowed
from proxy.errors import BadRequest, ProxyError
from proxy.http.auth import KeyCheck
from proxy.http.routes import (
    Auth,
    Call,
    LeanHandler,
    Message,
    Receive,
    Route,
    RouteTable,
    Scope,
    Send,
    WireFormat,
)
from proxy.http.writer import JSON_HEADERS, ClientWatch, relay, send_body
from proxy.secret import Scrubber

log = logging.getLogger("llmproxy")

MAX_BODY = 32 * 1024 * 1024
"""Bodies above this size get 413 (images in base64 make real requests large)."""
MAX_REQUEST_ID = 128
"""A client's `x-request-id` longer than this (or not visible ASCII) is replaced by ours."""
READ_HEADERS = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"content-length",
        b"content-type",
        b"cache-control",
        b"x-request-id",
        b"anthropic-version",
        b"anthropic-beta",
        b"user-agent",
        b"x-session-affinity",
        b"x-session-id",
        b"x-claude-code-session-id",
        b"session-id",
        b"host",
        b"origin",
        b"x-llmproxy-deployment",  # the deployment pin (proxy.http.pin)
    }
)
"""The request headers the front door decodes for itself and lean handlers; others never are."""
INTERNAL_ERROR = "Internal error in the proxy."


class _ClientGoneError(Exception):
    """The client disconnected before its request body arrived."""


class RequestIds:
    """Short unique request ids: a per-process random prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):06x}"


class FrontDoor:
    """ASGI app: serves the route table, lean routes itself and the others through FastAPI."""

    def __init__(
        self,
        table: RouteTable,
        check: KeyCheck,
        scrubber: Scrubber,
        lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
        allowed_ips: tuple[Network, ...] = (),
    ) -> None:
        """Builds the door and the FastAPI app behind it, with the table's non-lean routes.

        Args:
            table: the routes.
            check: the key check for routes that need a key.
            scrubber: takes keys out of error messages and logged tracebacks.
            lifespan: run by the server at start and stop (through FastAPI).
            allowed_ips: `general_settings.allowed_ips`; when set, a client from any other
                address gets 403 on every route.
        """
        self.table = table
        self._allowed_ips = allowed_ips
        self._check = check
        self._scrubber = scrubber
        self._ids = RequestIds()
        self.api = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        for route in table.routes:
            if not route.lean:
                for path in route.paths:
                    path = path + "{rest:path}" if route.prefix else path
                    self.api.add_api_route(path, route.handler, methods=[route.method])
        # FastAPI's router without its middleware stack, whose ServerErrorMiddleware would
        # answer an error itself and re-raise it: errors reach this door unrendered instead.
        # The exit stack is one FastAPI's endpoints require.
        self._fastapi = AsyncExitStackMiddleware(self.api.router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)  # lifespan (and websockets, refused)
            return
        headers = _read_headers(scope)
        given = headers.get("x-request-id")
        if given and len(given) <= MAX_REQUEST_ID and _visible_ascii(given):
            request_id = given
        else:
            request_id = self._ids()
        route = self.table.get(scope["method"], scope["path"])
        if self._allowed_ips and not client_allowed(self._allowed_ips, _peer(scope)):
            wire = route.wire if route else self.table.miss(scope["method"], scope["path"])[1]
            await self._failed(send, wire, _ip_refused(), False, request_id, scope)
        elif route is None:
            err, wire = self.table.miss(scope["method"], scope["path"])
            await self._failed(send, wire, err, False, request_id, scope)
        elif route.lean:
            await self._serve_lean(route, scope, receive, send, headers, request_id)
        else:
            await self._serve_fastapi(route, scope, receive, send, headers, request_id)

    async def _serve_lean(
        self,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        request_id: str,
    ) -> None:
        started = time.monotonic()
        answering = False
        try:
            caller = self._admit(route, headers)
            body = await _read_body(receive, headers)
            handler: LeanHandler = route.handler  # type: ignore[assignment]
            with ClientWatch(receive) as watch:  # the client leaving cancels the upstream call
                answer = await handler(Call(scope["path"], headers, request_id, body, caller))
                answering = True
                if answer.stream is None:
                    await send_body(
                        send, 200, answer.body or b"", answer.headers, JSON_HEADERS, watch
                    )
                    outcome = "200"
                else:
                    outcome = await relay(answer, send, watch)
            if watch.gone:
                return
        except _ClientGoneError:
            return
        except Exception as exc:  # the edge: every error of a lean route is rendered here
            await self._failed(send, route.wire, exc, answering, request_id, scope)
            return
        if log.isEnabledFor(logging.DEBUG):
            _log_answer(request_id, scope, answer.headers, outcome, started)

    async def _serve_fastapi(
        self,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        request_id: str,
    ) -> None:
        answering = False
        raw_id = request_id.encode()

        async def reply(message: Message) -> None:
            nonlocal answering
            if message["type"] == "http.response.start":
                answering = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
            await send(message)

        try:
            caller = self._admit(route, headers)
            scope["app"] = self.api
            state = scope.setdefault("state", {})
            state["request_id"], state["caller"] = request_id, caller
            await self._fastapi(scope, _limited(receive), reply)
        except (_ClientGoneError, ClientDisconnect):
            return
        except Exception as exc:  # the edge: every error of a FastAPI route is rendered here
            await self._failed(send, route.wire, exc, answering, request_id, scope)

    def _admit(self, route: Route, headers: Mapping[str, str]) -> Caller:
        """Raises the route's 401 (403 from the browser guard, or a virtual key on a master
        key route), 415 or 413 before its handler.

        Returns:
            The caller (`access.MASTER` on routes that need no key, which are not guarded).
        """
        caller = MASTER
        if route.needs_key:
            caller = self._check(headers)
            if route.auth is Auth.MASTER and not caller.master:
                raise _master_only()
        if route.json_body:
            kind = headers.get("content-type")
            if kind is None or (kind != "application/json" and not _is_json(kind)):
                raise _not_json(kind)
        length = headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise BadRequest("Invalid Content-Length header.")
            if int(length) > MAX_BODY:
                raise _too_large()
        return caller

    def render(
        self, method: str | None, path: str | None, err: ProxyError
    ) -> tuple[int, bytes, str]:
        """Returns the status and body of `err` in the wire format of the route at `path`,
        and a new request id.

        For answers the connection gives itself (a slow or oversized request, too many
        connections); with no method and path (an incomplete head), in the default format.
        """
        route = None if method is None or path is None else self.table.get(method, path)
        wire = self.table.default_wire if route is None else route.wire
        status, body = wire.render_error(err, err.message)
        return status, body, self._ids()

    async def _failed(
        self,
        send: Send,
        wire: WireFormat,
        exc: Exception,
        answering: bool,
        request_id: str,
        scope: Scope,
    ) -> None:
        """Logs an error once and, unless the answer already started, answers it in `wire`.

        An unexpected exception is logged with its traceback (keys scrubbed) and answered as a
        plain 500; its text never reaches the client.
        """
        err = _as_proxy_error(exc)
        trace = None
        if err is None:
            err = ProxyError(INTERNAL_ERROR)
            trace = self._scrubber.text("".join(traceback.format_exception(exc)))
        message = self._scrubber.text(err.message)
        status, body = wire.render_error(err, message)
        _log_error(request_id, scope, status, err, message, trace, answering)
        if answering:
            return  # too late for an error answer; the server closes the connection
        headers = {**err.headers, "x-request-id": request_id}
        await send_body(send, status, body, headers, JSON_HEADERS)


def _master_only() -> ProxyError:
    return ProxyError(
        "This route needs the master key; a virtual key may not call it.",
        status=403,
        type="permission_error",
        code="master_key_required",
    )


def _ip_refused() -> ProxyError:
    return ProxyError(
        "Access forbidden: this client's IP address is not in general_settings.allowed_ips.",
        status=403,
        type="permission_error",
        code="ip_not_allowed",
    )


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _read_headers(scope: Scope) -> dict[str, str]:
    """Returns the request headers in READ_HEADERS, lower-case names, first value wins."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in READ_HEADERS:
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


def _visible_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _read_body(receive: Receive, headers: Mapping[str, str]) -> bytes:
    """Returns the whole request body (its length header was checked by `_admit`).

    Raises:
        ProxyError: 413, the body grew past MAX_BODY.
        _ClientGoneError: the client disconnected first.
    """
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


def _limited(receive: Receive) -> Receive:
    """Returns `receive` that raises 413 once the body it passed on grows past MAX_BODY."""
    size = 0

    async def limited() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            raise _too_large()
        return message

    return limited


def _not_json(kind: str | None) -> ProxyError:
    """The 415 of a JSON route: a browser may send other types cross-site without asking."""
    given = "no Content-Type" if kind is None else f"Content-Type {ascii(kind[:64])}"
    return ProxyError(
        f"The body must be JSON: send the header Content-Type: application/json ({given}).",
        status=415,
        type="invalid_request_error",
        code="unsupported_media_type",
    )


def _too_large() -> ProxyError:
    return ProxyError(
        f"Request body larger than {MAX_BODY // (1024 * 1024)} MiB.",
        status=413,
        type="invalid_request_error",
        code="request_too_large",
    )


def _as_proxy_error(exc: Exception) -> ProxyError | None:
    """Returns the error the client should see for `exc`, or None for an internal error."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return BadRequest(f"Invalid request: {problems}")
    if isinstance(exc, HTTPException):
        err = ProxyError(
            str(exc.detail),
            status=exc.status_code,
            type="invalid_request_error" if exc.status_code < 500 else "api_error",
            headers=dict(exc.headers or {}),
        )
        return err
    return None


def _log_error(
    request_id: str,
    scope: Scope,
    status: int,
    err: ProxyError,
    message: str,
    trace: str | None,
    answering: bool,
) -> None:
    """One line per error, the same for every route: id, method, path, status, code, message.

    An internal error's line is followed by its traceback. Client 4xx log at INFO, 5xx at
    WARNING, internal errors at ERROR.
    """
    level = logging.INFO if status < 500 else logging.WARNING
    if trace is not None:
        level = logging.ERROR
    text = _printable(message)
    if answering:
        text += " (after the answer started)"
    if trace is not None:
        text += "\n" + trace.rstrip()
    log.log(
        level,
        "%s: %s %s -> %d %s: %s",
        request_id,
        scope["method"],
        _printable(scope["path"]),
        status,
        err.code or err.type,
        text,
    )


def _printable(text: str) -> str:
    """Returns `text` with control characters escaped, so a client cannot forge log lines."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _log_answer(
    request_id: str, scope: Scope, headers: Mapping[str, str], outcome: str, started: float
) -> None:
    """Logs a served answer at DEBUG (`--debug`); errors are logged at INFO by `_failed`.

    An INFO line for every answer cost about 7% of the proxy's CPU per request; every request
    is in the usage store, the dashboard and /llmproxy/events anyway.
    """
    fallback = headers.get("x-llmproxy-fallback")
    log.debug(
        "%s: %s %s -> %s via %s (%s), attempts %s, cache %s%s, %.0f ms",
        request_id,
        scope["method"],
        scope["path"],
        outcome,
        headers.get("x-llmproxy-deployment", "-"),
        headers.get("x-llmproxy-provider", "-"),
        headers.get("x-llmproxy-attempts", "-"),
        headers.get("x-llmproxy-cache", "-"),
        f", fallback {fallback}" if fallback else "",
        (time.monotonic() - started) * 1000,
    )
