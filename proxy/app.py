"""The HTTP surface: OpenAI-compatible routes, the health family, auth and the one error renderer.

Routes stay thin: parse and check the body, hand a ChatRequest to the pipeline, write the
answer back. Every error, ours or an upstream's, leaves in OpenAI's `{"error": {...}}` shape.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from proxy.admin import add_admin_routes
from proxy.errors import AuthError, BadRequest, ProxyError
from proxy.pipeline import CacheControl
from proxy.request_body import parse_request
from proxy.runtime import Runtime

log = logging.getLogger("llmproxy")
MAX_BODY = 32 * 1024 * 1024
"""Bodies above this size get 413 (images in base64 make real requests large)."""
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def create_app(runtime: Runtime) -> FastAPI:
    """Builds the FastAPI app around one runtime (no module-level state)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            runtime.draining = True
            await runtime.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    _add_error_handlers(app)
    auth = Authenticator(runtime)

    async def chat(request: Request) -> Response:
        return await _serve(runtime, auth, request, "chat")

    async def embeddings(request: Request) -> Response:
        return await _serve(runtime, auth, request, "embeddings")

    async def completions(request: Request) -> Response:
        return await _serve(runtime, auth, request, "completions")

    async def models(request: Request) -> Response:
        auth.check(request)
        created = int(runtime.started_at)
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "llmproxy-tui"}
            for name in runtime.config.groups
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    for prefix in ("/v1", ""):
        app.add_api_route(prefix + "/chat/completions", chat, methods=["POST"])
        app.add_api_route(prefix + "/embeddings", embeddings, methods=["POST"])
        app.add_api_route(prefix + "/completions", completions, methods=["POST"])
        app.add_api_route(prefix + "/models", models, methods=["GET"])
    _add_health_routes(app, runtime)
    add_admin_routes(app, runtime, auth.check)
    return app


class Authenticator:
    """Checks the master key in `Authorization: Bearer`, `x-api-key` or `api-key`."""

    def __init__(self, runtime: Runtime) -> None:
        self._key = runtime.config.master_key

    def check(self, request: Request) -> None:
        """Raises: AuthError when a master key is set and the request lacks it."""
        if self._key is None:
            return
        headers = request.headers
        given = headers.get("authorization")
        if given is not None:
            scheme, _, token = given.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else given.strip()
        else:
            given = headers.get("x-api-key") or headers.get("api-key")
        if not given or not self._key.matches(given):
            raise AuthError()


async def _serve(runtime: Runtime, auth: Authenticator, request: Request, kind: str) -> Response:
    auth.check(request)
    if runtime.draining:
        raise ProxyError(
            "The proxy is shutting down.", status=503, type="api_error", code="shutting_down"
        )
    body = await _read_body(request)
    headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
    req, ctl = parse_request(body, kind, headers, drop_params=runtime.config.litellm.drop_params)
    req.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    if "no-cache" in request.headers.get("cache-control", "").lower():
        ctl = CacheControl(no_cache=True, ttl=ctl.ttl)
    assert runtime.pipeline is not None
    try:
        answer = await runtime.pipeline.handle(req, ctl)
    except ProxyError as err:
        err.headers.setdefault("x-request-id", req.request_id)
        raise
    if answer.stream is not None:
        return StreamingResponse(
            answer.stream, media_type="text/event-stream", headers={**answer.headers, **SSE_HEADERS}
        )
    return Response(answer.body, media_type="application/json", headers=answer.headers)


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest("Invalid Content-Length header.")
        if int(length) > MAX_BODY:
            raise _too_large()
        return await request.body()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> ProxyError:
    return ProxyError(
        f"Request body larger than {MAX_BODY // (1024 * 1024)} MiB.",
        status=413,
        type="invalid_request_error",
        code="request_too_large",
    )


def _add_health_routes(app: FastAPI, runtime: Runtime) -> None:
    async def health(_request: Request) -> Response:
        states = runtime.pool.snapshot()
        usable = [s for s in states if s["health"] in ("ok", "failing")]
        body = {
            "status": "healthy" if usable else "unhealthy",
            "healthy_count": len(usable),
            "unhealthy_count": len(states) - len(usable),
        }
        return JSONResponse(body, status_code=200 if usable else 503)

    async def alive(_request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready(_request: Request) -> Response:
        if runtime.draining or runtime.pipeline is None:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/health/liveliness", alive, methods=["GET"])
    app.add_api_route("/health/liveness", alive, methods=["GET"])
    app.add_api_route("/health/readiness", ready, methods=["GET"])


def _add_error_handlers(app: FastAPI) -> None:
    async def proxy_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProxyError)
        return _error_response(exc)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = {404: "Not found.", 405: "Method not allowed."}.get(status, str(exc.detail))
        return _error_response(ProxyError(message, status=status, type="invalid_request_error"))

    async def validation_error(_request: Request, exc: Exception) -> Response:
        return _error_response(BadRequest(f"Invalid request: {exc}"))

    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return _error_response(ProxyError("Internal error in the proxy.", status=500))

    app.add_exception_handler(ProxyError, proxy_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _error_response(err: ProxyError) -> Response:
    headers: dict[str, Any] = dict(err.headers)
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        headers=headers,
        media_type="application/json",
    )
