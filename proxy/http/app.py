"""The HTTP surface: the app factory, the health family, /v1/models and the error renderer.

The OpenAI routes (chat, embeddings, completions) live in `proxy/hot_path.py`, in front of
this FastAPI app. Every error, ours or an upstream's, leaves in OpenAI's
`{"error": {...}}` shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from proxy.errors import BadRequest, ProxyError
from proxy.http.admin import add_admin_routes
from proxy.http.front import ASGIApp, OpenAIRoutes, master_key_check
from proxy.runtime import Runtime
from proxy.secret import Scrubber

log = logging.getLogger("llmproxy")


def create_app(runtime: Runtime) -> ASGIApp:
    """Builds the ASGI app around one runtime (no module-level state).

    The OpenAI routes are served by the lean front in `proxy/hot_path.py`; health, models,
    admin routes and every error on other paths by FastAPI behind it.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            runtime.draining = True
            await runtime.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    scrubber = Scrubber(runtime.config.secrets)
    _add_error_handlers(app, scrubber)
    check_headers = master_key_check(runtime.config.master_key)

    def check(request: Request) -> None:
        check_headers(request.headers)

    async def models(request: Request) -> Response:
        check(request)
        created = int(runtime.started_at)
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "llmproxy-tui"}
            for name in runtime.config.groups
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    for prefix in ("/v1", ""):
        app.add_api_route(prefix + "/models", models, methods=["GET"])
    _add_health_routes(app, runtime)
    add_admin_routes(app, runtime, check)
    return OpenAIRoutes(runtime, app, check_headers, scrubber)


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


def _add_error_handlers(app: FastAPI, scrubber: Scrubber) -> None:
    async def proxy_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProxyError)
        return _error_response(request, exc, scrubber)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = {404: "Not found.", 405: "Method not allowed."}.get(status, str(exc.detail))
        err = ProxyError(message, status=status, type="invalid_request_error")
        return _error_response(request, err, scrubber)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return _error_response(request, BadRequest(f"Invalid request: {exc}"), scrubber)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("internal error: %s: %s", type(exc).__name__, scrubber.text(str(exc)))
        err = ProxyError("Internal error in the proxy.", status=500)
        return _error_response(request, err, scrubber)

    app.add_exception_handler(ProxyError, proxy_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _error_response(request: Request, err: ProxyError, scrubber: Scrubber) -> Response:
    headers: dict[str, Any] = dict(err.headers)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers.setdefault("x-request-id", request_id)
    message = scrubber.text(err.message)
    level = logging.WARNING if err.status >= 500 else logging.INFO
    log.log(
        level,
        "%s: %s %s -> %d %s: %s",
        request_id or "-",
        request.method,
        request.url.path,
        err.status,
        err.code or err.type,
        message,
    )
    body = err.body()
    body["error"]["message"] = message
    return Response(
        orjson.dumps(body),
        status_code=err.status,
        headers=headers,
        media_type="application/json",
    )
