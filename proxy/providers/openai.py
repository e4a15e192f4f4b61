"""The OpenAI wire format, spoken by OpenAI and every OpenAI-compatible vendor in the catalog.

Requests pass through with the group name replaced by the upstream model; answers pass back
byte for byte (only parsed for usage), so `usage` reaches the client unchanged.

A Responses request (`POST /v1/responses`) to an `openai/` deployment goes to its
`/responses` as the client sent it (only `model` replaced), and the answer is read into the
neutral chat form by `openai_responses`; one whose upstream turns out not to serve
`/responses` is remembered as Chat-only and translated to Chat Completions from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers import openai_responses
from proxy.providers.base import StreamDecoder, native_bytes, passes_through
from proxy.providers.defaults import with_defaults, with_native_defaults
from proxy.providers.openai_params import fit_body, fit_responses_body
from proxy.providers.retry_after import retry_after
from proxy.schema import (
    PREVIEW_CHARS,
    ChatRequest,
    ChatResponse,
    Chunk,
    SSEEvent,
    UpstreamRequest,
    Usage,
    text_preview,
)

_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "completions": "/completions"}
# Phrases upstreams use when the prompt is longer than the model's window.
_CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "maximum context",
)


NATIVE_PROVIDER = "openai"
"""The one provider whose Responses requests pass through (see `passes_through_on`)."""
# A 404 to /responses that names a missing model, not a missing route (OpenAI's own answer
# for an unknown model): that deployment does serve /responses.
_MISSING_MODEL = "model_not_found"


class OpenAIProvider:
    """Adapter for OpenAI's Chat Completions, Embeddings and Completions endpoints, and for
    OpenAI's Responses API when a Responses client calls an `openai/` deployment."""

    wire = "openai"
    forwarded_headers: tuple[str, ...] = ()
    native_wire: str | None = "openai_responses"
    local = None

    def __init__(self) -> None:
        self.chat_only: set[tuple[str, str]] = set()
        """(deployment id, api_base) of `openai/` deployments whose upstream answered 404 or
        405 for `/responses`: their Responses requests are translated to Chat Completions
        from then on. The adapter's only state, kept for the life of the instance (the
        registry's one per process); keyed by base too, so a reload pointing the deployment
        elsewhere asks again. Only ever added to (one atomic `set.add`): concurrent first
        requests each get their 404 and each fall back."""

    def passes_through_on(self, req: ChatRequest, dep: Deployment) -> bool:
        """Whether `req` goes to `dep` as the client's own Responses request (only `model`
        replaced) rather than translated to Chat Completions."""
        return (
            passes_through(self, req)
            # Only OpenAI itself: the OpenAI-compatible vendors (groq, openrouter, deepseek,
            # ollama, ...) share this adapter, but most serve no /responses, or a partial one,
            # so their requests are translated.
            and dep.provider == NATIVE_PROVIDER
            and (dep.id, dep.api_base) not in self.chat_only
        )

    def lacks_native(self, req: ChatRequest, dep: Deployment, status: int, body: bytes) -> bool:
        """Whether an error answer to `req`, sent to `dep` as a Responses request, means the
        upstream has no `/responses` (404 or 405, but not a 404 naming a missing model); if
        so, `dep` is remembered as Chat-only, so `build_request` now translates: the caller
        retries at once, and the 404 counts against nothing.

        Ask it only about an answer to a request that went to `/responses` (the attempt
        does): a concurrent request may have marked `dep` already, which must not turn this
        one's 404 into an error.
        """
        if status not in (404, 405) or not passes_through(self, req):
            return False
        if dep.provider != NATIVE_PROVIDER:
            return False
        if status == 404 and _error_fields(body, status)[2] == _MISSING_MODEL:
            return False
        self.chat_only.add((dep.id, dep.api_base))
        return True

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        if req.native is not None and self.passes_through_on(req, dep):
            native = with_native_defaults(req.native.body, dep, "openai_responses")
            native = {**native, "model": dep.upstream_model(req.model)}
            fit_responses_body(native, dep)
            headers = {"content-type": "application/json", **_auth_headers(dep)}
            content = native_bytes(req.native, native)
            return UpstreamRequest("POST", dep.api_base + "/responses", headers, content)
        body = dict(with_defaults(req.body, dep))
        body["model"] = dep.upstream_model(req.model)
        fit_body(body, dep)
        if req.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True  # usage is always collected for cost
            body["stream_options"] = options
        headers = {"content-type": "application/json", **_auth_headers(dep)}
        return UpstreamRequest("POST", dep.api_base + _PATHS[req.kind], headers, orjson.dumps(body))

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns `GET …/models`: free, and answered 401 when the key is wrong."""
        return UpstreamRequest("GET", dep.api_base + "/models", _auth_headers(dep))

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the answer for a 2xx body; a Response object (a pass-through) is read into
        the neutral chat form, with `native` the upstream's bytes.

        Raises:
            UpstreamError: the body is not a valid answer, or is an error document.
        """
        if req.native is not None and self.passes_through_on(req, dep):
            return openai_responses.parse_response(dep, body, self._classifier(dep))
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _bad_body(dep, "the upstream answered with invalid JSON") from None
        if not isinstance(doc, dict):
            raise _bad_body(dep, "the upstream answer is not a JSON object")
        if "error" in doc and "choices" not in doc and "data" not in doc:
            raise self.classify_error(dep, 502, {}, body)
        preview = ""
        finish = None
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            first = choices[0]
            message = first.get("message")
            text = message.get("content") if isinstance(message, dict) else first.get("text")
            preview = text_preview(text) if isinstance(text, str) else ""
            reason = first.get("finish_reason")
            finish = reason if isinstance(reason, str) else None
        return ChatResponse(
            body=body,
            usage=Usage.from_openai(doc.get("usage")),
            preview=preview,
            model=str(doc.get("model") or ""),
            finish=finish,
        )

    def open_stream(self, req: ChatRequest, dep: Deployment) -> StreamDecoder:
        """Returns a decoder for one stream: Responses events for a pass-through, else chat
        chunks relayed as they are."""
        if req.native is not None and self.passes_through_on(req, dep):
            classify = self._classifier(dep)
            lean = not req.neutral_chunks
            return openai_responses.ResponsesStreamDecoder(
                dep, classify, created=req.created, lean=lean
            )
        return OpenAIStream(self, dep)

    def _classifier(self, dep: Deployment) -> openai_responses.Classify:
        def classify(status: int, body: bytes) -> UpstreamError:
            return self.classify_error(dep, status, {}, body)

        return classify

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        message, etype, code, param = _error_fields(body, status)
        message = dep.scrub(message)  # some upstreams echo the key they were sent
        lower = message.lower()
        context = status in (400, 413) and (
            code == "context_length_exceeded" or any(p in lower for p in _CONTEXT_PHRASES)
        )
        retryable = status in (408, 409, 429) or status >= 500 or status in (401, 403)
        return UpstreamError(
            f"{dep.provider} answered {status}: {message}",
            provider=dep.provider,
            key_id=dep.id,
            status=status,
            retryable=retryable,
            retry_after=retry_after(headers),
            key_rejected=status in (401, 403),
            context_window=context,
            type=etype,
            code=code,
            param=param,
        )


class OpenAIStream:
    """Passes OpenAI chunks through as they are, reading only what the proxy needs from them.

    Every chunk is relayed byte for byte. A chunk is parsed only while the answer's first
    PREVIEW_CHARS characters are still being collected (time to first token and the preview)
    or when it may carry usage, a finish reason or an error; the rest are not decoded at all.
    """

    def __init__(self, provider: OpenAIProvider, dep: Deployment) -> None:
        self._provider = provider
        self._dep = dep
        self._done = False
        self._seen_chars = 0

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[Chunk]:
        data = event.data
        if data == "[DONE]":
            self._done = True
            return []
        raw = data.encode()
        if (
            self._seen_chars >= PREVIEW_CHARS
            and event.event != "error"
            and b'"error"' not in raw
            and b'"usage":{' not in raw
            and b'"usage": {' not in raw
            and b'"finish_reason":"' not in raw  # null on every chunk but the last
            and b'"finish_reason": "' not in raw
        ):
            return [Chunk(data=raw)]
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad_body(self._dep, "the upstream sent an invalid stream event") from None
        if not isinstance(doc, dict):
            return []
        if "error" in doc or event.event == "error":
            raise self._provider.classify_error(self._dep, _error_status(doc), {}, raw)
        usage = Usage.from_openai(doc.get("usage"))
        choices = doc.get("choices") or []
        text = ""
        finish = None
        if choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            text = content if isinstance(content, str) else ""
            self._seen_chars += len(text)
            reason = choices[0].get("finish_reason")
            finish = reason if isinstance(reason, str) else None
        usage_only = not choices and bool(usage)
        return [
            Chunk(data=raw, usage=usage, text=text, usage_only=usage_only, finish=finish, doc=doc)
        ]


def _auth_headers(dep: Deployment) -> dict[str, str]:
    """The key as a bearer token, then the deployment's extra_headers (which may override it)."""
    headers = {} if dep.key is None else {"authorization": "Bearer " + dep.key.reveal()}
    headers.update(dep.extra_headers)
    return headers


def _error_fields(body: bytes, status: int) -> tuple[str, str | None, str | None, str | None]:
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        return (
            str(err.get("message") or f"HTTP {status}"),
            _opt(err.get("type")),
            _opt(err.get("code")),
            _opt(err.get("param")),
        )
    if isinstance(err, str):
        return err, None, None, None
    text = body[:300].decode("utf-8", "replace").strip()
    return text or f"HTTP {status}", None, None, None


def _error_status(doc: dict[str, Any]) -> int:
    err = doc.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 502


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _bad_body(dep: Deployment, reason: str) -> UpstreamError:
    return UpstreamError(
        f"{dep.provider}: {reason}",
        provider=dep.provider,
        key_id=dep.id,
        status=502,
        retryable=True,
    )
