"""The Anthropic Messages adapter: OpenAI chat ⇄ `POST /v1/messages`, streaming and tools.

The translation itself lives beside it: `messages` and `request` (the request), `response`
(the answer), `stream` (the stream), `errors` (what an error means). Anthropic's headers
(`anthropic-version`, `x-api-key`) are written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.config.model_limits import known_max_output, output_limit
from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers.anthropic import errors as anthropic_errors
from proxy.providers.anthropic import response as anthropic_response
from proxy.providers.anthropic.request import MIN_THINKING_BUDGET, build_body
from proxy.providers.anthropic.stream import AnthropicStreamDecoder
from proxy.providers.base import native_bytes, passes_through
from proxy.providers.defaults import (
    drops_params,
    with_defaults,
    with_extra_body,
    with_native_defaults,
)
from proxy.schema import ChatRequest, ChatResponse, UpstreamRequest, dumps

DEFAULT_VERSION = "2023-06-01"
"""The `anthropic-version` sent when the client named none."""
DEFAULT_BASE = "https://api.anthropic.com"
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
"""Client headers passed on upstream: a client may pin the API version or opt into betas."""


class AnthropicProvider:
    """Speaks Anthropic's Messages API for an OpenAI client. Pure: no I/O, no clock."""

    wire = "anthropic"
    forwarded_headers = FORWARDED_HEADERS
    native_wire = "anthropic_messages"
    local = None

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Returns the `POST …/v1/messages` request for `req` on `dep`.

        Raises:
            BadRequest: a parameter Anthropic lacks that changes the answer's shape (unless
                drop_params), or content that cannot be translated.
            NotImplementedByProvider: embeddings or legacy completions.
        """
        if req.kind != "chat":
            raise NotImplementedByProvider(f"Anthropic does not serve /{req.kind}.")
        model = dep.upstream_model(req.model)
        limit = output_limit(dep, model)
        if req.native is not None and passes_through(self, req):
            native = with_native_defaults(req.native.body, dep, "anthropic_messages")
            body = passthrough_body(native, model, limit)
            content = native_bytes(req.native, body)
        else:
            body = build_body(
                with_defaults(req.body, dep),
                model,
                stream=req.stream,
                drop_params=drops_params(req.drop_params, dep),
                max_output=limit,
            )
            with_extra_body(body, dep)
            content = dumps(body)
        return UpstreamRequest("POST", messages_url(dep.api_base), self._headers(req, dep), content)

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the OpenAI `chat.completion` for a 2xx Messages body (`created` from `req`).

        Raises:
            UpstreamError: the body is not a Messages answer (502, retryable).
        """
        resp = anthropic_response.parse_response(dep, body, created=req.created)
        if passes_through(self, req):
            resp.native = body
        return resp

    def open_stream(self, req: ChatRequest, dep: Deployment) -> AnthropicStreamDecoder:
        """Returns a fresh decoder for one Messages stream."""
        lean = not req.neutral_chunks and passes_through(self, req)
        return AnthropicStreamDecoder(dep, created=req.created, lean=lean)

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what a non-2xx Anthropic answer means (see `anthropic_errors`)."""
        return anthropic_errors.classify_error(dep, status, headers, body)

    def count_tokens_request(
        self, body: Mapping[str, Any], headers: Mapping[str, str], dep: Deployment
    ) -> UpstreamRequest:
        """Returns `POST …/v1/messages/count_tokens` for a Messages client's count_tokens body,
        only `model` replaced (the client's `anthropic-version` and `anthropic-beta` kept)."""
        upstream = {**body, "model": dep.upstream_model(str(body.get("model", "")))}
        url = messages_url(dep.api_base) + "/count_tokens"
        return UpstreamRequest(
            "POST",
            url,
            _headers(dep, {"content-type": "application/json"}, headers),
            dumps(upstream),
        )

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns `GET …/v1/models`: free, and answered 401 when the key is wrong."""
        return UpstreamRequest("GET", _v1(dep.api_base) + "/models", _headers(dep, {}, {}))

    def _headers(self, req: ChatRequest, dep: Deployment) -> dict[str, str]:
        return _headers(dep, {"content-type": "application/json"}, req.headers)


def _headers(dep: Deployment, headers: dict[str, str], client: Mapping[str, str]) -> dict[str, str]:
    """Adds the API version (the client's, if it sent one), the key, then extra_headers."""
    headers["anthropic-version"] = DEFAULT_VERSION
    for name in FORWARDED_HEADERS:
        if client.get(name):
            headers[name] = client[name]
    if dep.key is not None:
        headers["x-api-key"] = dep.key.reveal()
    headers.update(dep.extra_headers)
    return headers


def passthrough_body(
    client: dict[str, Any], model: str, max_output: int | None = None
) -> dict[str, Any]:
    """Returns a Messages client's body for the upstream: only `model` replaced.

    Two exceptions, each for what Anthropic would refuse with a 400: thinking blocks without a
    signature (which a translated answer from another provider carried back into the
    conversation) are left out; a `max_tokens` above `max_output` (the deployment's limit, or
    the model's known maximum) is clamped to it, with an enabled thinking budget that no
    longer fits under it halved to fit.
    """
    body = dict(client)
    body["model"] = model
    messages = body.get("messages")
    if isinstance(messages, list) and _any_unsigned_thinking(messages):
        body["messages"] = [_without_unsigned_thinking(m) for m in messages]
    limit = max_output or known_max_output(model)
    asked = body.get("max_tokens")
    if limit and isinstance(asked, int) and not isinstance(asked, bool) and asked > limit:
        body["max_tokens"] = limit
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(thinking, dict) and isinstance(budget, int) and budget >= limit:
            if limit // 2 >= MIN_THINKING_BUDGET:
                body["thinking"] = {**thinking, "budget_tokens": limit // 2}
            else:
                body.pop("thinking")
    return body


def _any_unsigned_thinking(messages: list[Any]) -> bool:
    """`_unsigned_thinking` of any message, in plain loops (an agent's 40-message body made
    some 140 generator calls per request)."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for block in content:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "thinking"
                    and not block.get("signature")
                ):
                    return True
    return False


def _unsigned_thinking(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_is_unsigned(b) for b in content)


def _is_unsigned(block: Any) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


def _without_unsigned_thinking(message: Any) -> Any:
    if not _unsigned_thinking(message):
        return message
    kept = [b for b in message["content"] if not _is_unsigned(b)]
    return {**message, "content": kept or [{"type": "text", "text": ""}]}


def messages_url(api_base: str) -> str:
    """Returns the Messages endpoint for a base given with or without its `/v1`."""
    return _v1(api_base) + "/messages"


def _v1(api_base: str) -> str:
    base = api_base.rstrip("/") or DEFAULT_BASE
    return base if base.endswith("/v1") else base + "/v1"
