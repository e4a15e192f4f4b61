"""OpenAI's client routes: chat completions, embeddings and completions (lean handlers, the hot
path) and the model list and model lookup (FastAPI), which Anthropic's clients read too.
Bodies are parsed by `proxy.endpoints.openai_chat`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.config.model_limits import output_limit
from proxy.config.types import Deployment
from proxy.endpoints import anthropic_messages, openai_chat
from proxy.endpoints.openai_chat import parse_request
from proxy.errors import BadRequest, NotImplementedByProvider, ProxyError, UnknownModel, clip
from proxy.http.clients import MAX_SESSION, client_name, header_session
from proxy.http.pin import checked_pin
from proxy.http.routes import Call
from proxy.pipeline import Answer
from proxy.providers.registry import FORWARDED_CLIENT_HEADERS
from proxy.runtime import Runtime
from proxy.schema import PIN_HEADER, CacheControl, Kind

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

    async def models(self, request: Request) -> Response:
        """GET /v1/models: the groups and the aliases not hidden, in one list that OpenAI's and
        Anthropic's SDKs both read (OpenAI's `object`/`created`/`owned_by` beside Anthropic's
        `type`/`display_name`/`created_at`, `has_more`, `first_id`, `last_id`).

        Anthropic's paging query (`limit`, `after_id`, `before_id`) is honoured; without
        `limit` every model is listed, as OpenAI does.
        """
        config = self.runtime.config
        groups = config.groups
        entries = [self._model(name, groups[name]) for name in config.listed_models]
        page, has_more = _page(entries, request.query_params)
        body = {
            "object": "list",
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def model(self, request: Request) -> Response:
        """GET /v1/models/{id}: one model in both shapes (hidden aliases too); an unknown id
        is a 404 `model_not_found`, in Anthropic's shape for a client that sends
        `anthropic-version` (the anthropic SDKs always do), else in OpenAI's."""
        name = request.url.path.split("/models/", 1)[-1]
        deps = self.runtime.config.groups.get(name)
        if deps is None:
            err = UnknownModel(name)
            wire = anthropic_messages if "anthropic-version" in request.headers else openai_chat
            status, body = wire.render_error(err, err.message)
            return Response(body, status_code=status, media_type="application/json")
        return Response(orjson.dumps(self._model(name, deps)), media_type="application/json")

    def _model(self, name: str, deps: list[Deployment]) -> dict[str, Any]:
        created = int(self.runtime.started_at)
        entry: dict[str, Any] = {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "llmproxy-tui",
            "type": "model",
            "display_name": name,
            "created_at": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lifecycle": "active",
        }
        # Anthropic's limits, when every deployment of the name has one: the smallest.
        inputs = [d.max_input_tokens for d in deps]
        outputs = [output_limit(d) for d in deps if "*" not in d.model]
        if deps and all(v is not None for v in inputs):
            entry["max_input_tokens"] = min(v for v in inputs if v is not None)
        if deps and len(outputs) == len(deps) and all(v is not None for v in outputs):
            entry["max_tokens"] = min(v for v in outputs if v is not None)
        return entry

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
        req.caller = call.caller
        pin = headers.get(PIN_HEADER)
        if pin is not None:
            req.pin = checked_pin(pin, call.caller)
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
        if kind == "chat":
            return await runtime.pipeline.handle(req, ctl)
        try:
            return await runtime.pipeline.handle(req, ctl)
        except NotImplementedByProvider as exc:
            # The group's provider serves chat only: the client's mistake, and a 5xx would be
            # retried by every SDK in vain.
            raise BadRequest(
                f"The model group '{clip(req.model)}' cannot serve /v1/{kind}: {exc.message}",
                param="model",
                code="unsupported_endpoint",
            ) from None


MAX_PAGE = 1000
"""The largest `limit` Anthropic's model list takes."""


def _page(
    entries: list[dict[str, Any]], query: Mapping[str, str]
) -> tuple[list[dict[str, Any]], bool]:
    """Returns the page of `entries` the query asks for and whether more follow it.

    `after_id` starts after that id, `before_id` ends before it (an unknown id: an empty
    page); `limit` (1 to 1000) bounds the page, from its end for `before_id`. A `limit` that
    is not a number is ignored.
    """
    ids = [e["id"] for e in entries]
    start, end = 0, len(entries)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None:
        start = ids.index(after) + 1 if after in ids else end
    if before is not None:
        end = ids.index(before) if before in ids else start
    raw = query.get("limit")
    limit = int(raw) if raw is not None and raw.strip().isdigit() else None
    if limit is None:
        return entries[start:end], False
    limit = min(max(limit, 1), MAX_PAGE)
    if before is not None and after is None:
        first = max(start, end - limit)
        return entries[first:end], first > start
    return entries[start : min(end, start + limit)], start + limit < end
