"""The /health family (no key): healthy while any deployment is usable, alive, ready; and the
root probes (`HEAD /`, `HEAD /api/hello`) clients send at start to see the server answers.

`GET /health` with the master key answers LiteLLM's detailed shape instead (healthy and
unhealthy endpoints), from what the pool and the background health checks already know: it
sends nothing upstream. Without the key, or with a wrong one, it answers as it always did.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proxy.errors import AuthError
from proxy.http.auth import master_key_check
from proxy.runtime import Runtime
from proxy.secret import redact_url

USABLE = ("ok", "failing")
"""Pool health values under which a deployment still takes requests."""


class HealthHandlers:
    """The health handlers, served by FastAPI, around one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._check = master_key_check(runtime.config.master_key)
        self._scrub = runtime.scrubber.text  # it learns a reloaded config's keys

    async def health(self, request: Request) -> Response:
        """GET /health: 200 while any deployment is usable, else 503; with the master key,
        LiteLLM's detailed answer (always 200)."""
        if self._has_master_key(request):
            return JSONResponse(self.detailed())
        states = self.runtime.pool.snapshot()
        usable = [s for s in states if s["health"] in USABLE]
        body = {
            "status": "healthy" if usable else "unhealthy",
            "healthy_count": len(usable),
            "unhealthy_count": len(states) - len(usable),
        }
        return JSONResponse(body, status_code=200 if usable else 503)

    def _has_master_key(self, request: Request) -> bool:
        """Whether a master key is configured and the request carries it."""
        if self.runtime.config.master_key is None:
            return False
        try:
            self._check(request.headers)
        except AuthError:
            return False
        return True

    def detailed(self) -> dict[str, Any]:
        """LiteLLM's `{"healthy_endpoints", "unhealthy_endpoints", "healthy_count",
        "unhealthy_count"}`: a deployment is unhealthy while the pool will not use it or its
        latest background check failed."""
        healthy: list[dict[str, Any]] = []
        unhealthy: list[dict[str, Any]] = []
        for row in self.runtime.pool.snapshot():
            endpoint = {
                "model": row["group"],
                "id": row["id"],
                "provider": row["provider"],
                "api_base": redact_url(str(row["api_base"])) if row.get("api_base") else None,
                "last_probe_at": row["last_probe_at"],
            }
            if row["health"] in USABLE and row["last_probe_ok"] is not False:
                healthy.append(endpoint)
                continue
            if row["last_probe_ok"] is False:
                error = str(row["last_probe"])
            else:
                error = str(row["health_reason"] or row["health"])
            unhealthy.append({**endpoint, "health": row["health"], "error": self._scrub(error)})
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
        }

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
