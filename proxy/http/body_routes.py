"""`GET /llmproxy/requests/{id}/bodies` and `GET /llmproxy/bodies` (master key): a request's
stored bodies (client, upstream, answer; see proxy/store/bodies.py) and whether bodies are
being stored. `POST /llmproxy/actions {"action": "bodies_on" | "bodies_off"}` flips that."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.responses import Response

from proxy.errors import ProxyError, clip
from proxy.runtime import Runtime

REQUESTS_PREFIX = "/llmproxy/requests/"
SUFFIX = "/bodies"


class BodyHandlers:
    """The body routes, served by FastAPI; the route table gives them the master key."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def bodies(self, request: Request) -> Response:
        """GET /llmproxy/requests/{id}/bodies: `{"id", "client", "upstream", "answer",
        "upstream_url", "sizes", "truncated", "storing"}`.

        Raises:
            ProxyError: 404 when the path is not such a route, or nothing is held for the id.
        """
        path = request.url.path
        rest = path[len(REQUESTS_PREFIX) :] if path.startswith(REQUESTS_PREFIX) else ""
        if not rest.endswith(SUFFIX) or len(rest) == len(SUFFIX):
            raise ProxyError(
                f"No such route: {clip(path)}", status=404, type="invalid_request_error"
            )
        request_id = rest[: -len(SUFFIX)]
        document = self.runtime.bodies.get(request_id)
        if document is None:
            state = "on" if self.runtime.bodies_on else "off"
            raise ProxyError(
                f"No bodies are stored for request '{clip(request_id)}' (storing is {state}; "
                "see general_settings.store_prompts_in_spend_logs).",
                status=404,
                type="invalid_request_error",
                param="id",
                code="bodies_not_stored",
            )
        document["storing"] = self.runtime.bodies_on
        return Response(orjson.dumps(document), media_type="application/json")

    async def status(self, _request: Request) -> Response:
        """GET /llmproxy/bodies: `{"storing", "requests", "max_requests", "max_body_bytes",
        "max_age_s"}`."""
        runtime = self.runtime
        document = {"storing": runtime.bodies_on, **runtime.bodies.status()}
        return Response(orjson.dumps(document), media_type="application/json")
