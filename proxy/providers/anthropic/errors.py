"""What an Anthropic error answer (HTTP or a streamed `error` event) means for the router."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.retry_after import retry_after

# A streamed `error` event carries only Anthropic's error type; this is its HTTP status.
STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_CONTEXT_MARKERS = (
    "prompt is too long",
    "context window",
    "context limit",
    "maximum context length",
    "too many tokens",
)
_BILLING_MARKERS = ("credit balance", "billing")
_RETRYABLE_4XX = frozenset({408, 409, 429})


def classify_error(
    dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    """Returns what a non-2xx Anthropic answer means, with `retryable` decided.

    429, 529, 408, 409 and 5xx are retryable; 401/403 (and a spent credit balance) reject the
    key, which another key may not share; other 4xx are the request's fault and go back to the
    client as they are. The message never contains the deployment's key.
    """
    kind, message = _read_error(body)
    message = dep.scrub(message or f"Anthropic answered HTTP {status}")
    lowered = message.lower()
    common: dict[str, Any] = {"provider": dep.provider, "key_id": dep.id, "status": status}
    if status in (401, 403) or status == 402 or any(m in lowered for m in _BILLING_MARKERS):
        return UpstreamError(
            message, **common, retryable=True, counts_against=True, key_rejected=True, code=kind
        )
    if status >= 500 or status in _RETRYABLE_4XX:
        return UpstreamError(
            message,
            **common,
            retryable=True,
            counts_against=True,
            retry_after=retry_after(headers),
            code=_code(status, kind),
        )
    context = status in (400, 413) and any(m in lowered for m in _CONTEXT_MARKERS)
    return UpstreamError(
        message,
        **common,
        retryable=False,
        counts_against=False,
        context_window=context,
        code="context_length_exceeded" if context else kind,
        param="messages" if context else None,
    )


def stream_error(dep: Deployment, data: Mapping[str, Any]) -> UpstreamError:
    """Returns the error a streamed `error` event stands for (status from its error type)."""
    error = data.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    status = STATUS_BY_TYPE.get(kind if isinstance(kind, str) else "", 500)
    return classify_error(dep, status, {}, orjson.dumps(data))


def _read_error(body: bytes) -> tuple[str | None, str]:
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace").strip()
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None, ""
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None, message if isinstance(message, str) else "")


def _code(status: int, kind: str | None) -> str | None:
    if status == 529 or kind == "overloaded_error":
        return "overloaded"
    return kind
