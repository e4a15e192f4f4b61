"""OpenAI's client routes: chat completions, embeddings and completions (lean handlers, the hot
path) and the model list (FastAPI). Bodies are parsed by `proxy.endpoints.openai_chat`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.endpoints.openai_chat import parse_request
from proxy.errors import ProxyError
from proxy.http.clients import MAX_SESSION, client_name, header_session
from proxy.http.routes import Call
from proxy.pipeline import Answer
from proxy.providers.registry import FORWARDED_CLIENT_HEADERS
from proxy.runtime import Runtime
from proxy.schema import CacheControl, Kind

log = logging.getLogger("llmproxy")


class OpenAIHandlers:
    """The handlers of OpenAI's routes, around one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # Plain functions returning the coroutine: an `async def` here would add a coroutine
    # layer to every request of the hot path.
    def chat(self, call: Call) -> Awaitable[Answer]:
        """POST /v1/chat/completions (lean)."""
        return self._serve(call, "chat")

    def embeddings(self, call: Call) -> Awaitable[Answer]:
        """POST /v1/embeddings (lean)."""
        return self._serve(call, "embeddings")

    def completions(self, call: Call) -> Awaitable[Answer]:
        """POST /v1/completions (lean)."""
        return self._serve(call, "completions")

    async def models(self, _request: Request) -> Response:
        """GET /v1/models: the group names in OpenAI's list shape."""
        created = int(self.runtime.started_at)
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "llmproxy-tui"}
            for name in self.runtime.config.groups
        ]
        body = orjson.dumps({"object": "list", "data": data})
        return Response(body, media_type="application/json")

    async def _serve(self, call: Call, kind: Kind) -> Answer:
        """Parses the body and hands it to the pipeline.

        Raises:
            ProxyError: 503 while shutting down; the body's 400; whatever the pipeline raises.
        """
        runtime = self.runtime
        if runtime.draining:
            raise ProxyError(
                "The proxy is shutting down.", status=503, type="api_error", code="shutting_down"
            )
        headers = call.headers
        passed = {name: headers[name] for name in FORWARDED_CLIENT_HEADERS if name in headers}
        req, ctl = parse_request(
            call.body, kind, passed, drop_params=runtime.config.litellm.drop_params
        )
        req.request_id = call.request_id
        req.client = client_name(headers.get("user-agent", ""))
        session = header_session(headers) or req.body.get("prompt_cache_key")
        req.session = session[:MAX_SESSION] if isinstance(session, str) else None
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: POST %s model=%s stream=%s", call.request_id, call.path, req.model, req.stream
            )
        if "no-cache" in headers.get("cache-control", "").lower():
            ctl = CacheControl(no_cache=True, ttl=ctl.ttl)
        assert runtime.pipeline is not None
        return await runtime.pipeline.handle(req, ctl)
