"""The /health family (no key): healthy while any deployment is usable, alive, ready; and the
root probes (`HEAD /`, `HEAD /api/hello`) clients send at start to see the server answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proxy.runtime import Runtime


class HealthHandlers:
    """The health handlers, served by FastAPI, around one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def health(self, _request: Request) -> Response:
        """GET /health: 200 while any deployment is usable, else 503."""
        states = self.runtime.pool.snapshot()
        usable = [s for s in states if s["health"] in ("ok", "failing")]
        body = {
            "status": "healthy" if usable else "unhealthy",
            "healthy_count": len(usable),
            "unhealthy_count": len(states) - len(usable),
        }
        return JSONResponse(body, status_code=200 if usable else 503)

    async def alive(self, _request: Request) -> Response:
        """GET /health/liveliness and /health/liveness."""
        return JSONResponse({"status": "alive"})

    async def ready(self, _request: Request) -> Response:
        """GET /health/readiness: 503 before start and while shutting down."""
        if self.runtime.draining or self.runtime.pipeline is None:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def root_probe(self, _request: Request) -> Response:
        """HEAD / and HEAD /api/hello (no key): an empty 200 at once. Claude Code sends
        `HEAD /api/hello` when it starts, to see that its base URL answers."""
        return Response(status_code=200, media_type="text/plain")

    async def root(self, _request: Request) -> Response:
        """GET / and GET /api/hello: 200 with what this server is (the routes need a key)."""
        return JSONResponse({"status": "ok", "service": "llmproxy-tui"})
