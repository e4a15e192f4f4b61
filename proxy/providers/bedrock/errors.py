"""What a Bedrock error means: its HTTP answers (`x-amzn-ErrorType` and `{"message"}`) and the
exception events that end a ConverseStream, with `retryable` decided.

Throttling, a model not ready, timeouts and 5xx are retryable; a refused signature or
credentials reject the key; a ValidationException is the request's fault (its context-window
form is flagged for `context_window_fallbacks`); a model this region or account lacks
(404, 403 AccessDenied) may be served by another deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.retry_after import retry_after

_KEY_REJECTED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "AccessDeniedException",
    }
)
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ModelNotReadyException",
        "ServiceQuotaExceededException",
        "ModelStreamErrorException",
        "ResourceNotFoundException",
    }
)
_STREAM_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "ModelStreamErrorException": 424,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
}
_CONTEXT = (
    "too long",
    "too many input tokens",
    "input length",
    "context window",
    "maximum context length",
    "prompt is too long",
)


def classify_error(
    dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    """Returns what a non-2xx Bedrock answer means."""
    kind = _header(headers, "x-amzn-errortype").split(":", 1)[0] or None
    doc = _json(body)
    kind = kind or _type(doc)
    message = _message(doc) or body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return _error(dep, status, kind, message, retry_after(headers))


def stream_exception(dep: Deployment, headers: Mapping[str, Any], payload: bytes) -> UpstreamError:
    """Returns the error an exception (or error) message in a ConverseStream stands for."""
    raw = headers.get(":exception-type") or headers.get(":error-code") or "InternalServerException"
    kind = str(raw)[:1].upper() + str(raw)[1:]  # events name them in camelCase
    doc = _json(payload)
    message = _message(doc) or str(headers.get(":error-message") or kind)
    return _error(dep, _STREAM_STATUS.get(kind, 502), kind, message, None)


def _error(
    dep: Deployment, status: int, kind: str | None, message: str, wait: float | None
) -> UpstreamError:
    rejected = kind in _KEY_REJECTED or status in (401, 403)
    retryable = rejected or kind in _RETRYABLE or status in (408, 429) or status >= 500
    context = status == 400 and any(p in message.lower() for p in _CONTEXT)
    message = dep.scrub(message)
    return UpstreamError(
        f"bedrock answered {status} {kind or 'error'}: {message}",
        provider=dep.provider,
        key_id=dep.id,
        status=status,
        retryable=retryable and not context,
        retry_after=wait,
        key_rejected=rejected,
        context_window=context,
        code=kind,
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _type(doc: dict[str, Any]) -> str | None:
    value = doc.get("__type")
    return value.rsplit("#", 1)[-1] if isinstance(value, str) else None


def _message(doc: dict[str, Any]) -> str:
    value = doc.get("message") or doc.get("Message")
    return value if isinstance(value, str) else ""
