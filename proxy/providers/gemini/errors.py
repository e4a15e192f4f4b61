"""What a Google API error (`{"error": {"code", "message", "status", "details"}}`) means for
the router: HTTP answers and errors sent inside a stream alike.

A 429 `RESOURCE_EXHAUSTED` names its wait in a `google.rpc.RetryInfo` detail (`retryDelay`,
a protobuf Duration such as `"37s"` or `"0.5s"`); it is honoured like a Retry-After header.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.retry_after import MAX_WAIT, retry_after

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
STATUS_BY_NAME = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""Google's canonical error names → HTTP status (for an error that carries no code)."""
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED"})
_CONTEXT = re.compile(r"input token count.*exceeds|exceeds the maximum number of tokens", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_RETRYABLE_4XX = frozenset({408, 409, 429})


def classify_error(
    dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    """Returns what a non-2xx Google answer means, with `retryable` decided.

    429, 408, 409 and 5xx are retryable (the wait from Retry-After, else RetryInfo); 401,
    403 and an invalid API key (a 400 with reason API_KEY_INVALID) reject the key, which
    another key may not share; other 4xx are the request's fault and go back as they are.
    The message never contains the deployment's key.
    """
    error = _error_of(body)
    name = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = dep.scrub(message or _text(body) or f"Gemini answered HTTP {status}")
    common: dict[str, Any] = {"provider": dep.provider, "key_id": dep.id, "status": status}
    if status in (401, 403) or _reasons(error) & _KEY_REASONS:
        return UpstreamError(
            message, **common, retryable=True, counts_against=True, key_rejected=True, code=name
        )
    if status >= 500 or status in _RETRYABLE_4XX:
        wait = retry_after(headers)
        return UpstreamError(
            message,
            **common,
            retryable=True,
            counts_against=True,
            retry_after=wait if wait is not None else retry_delay(error),
            code=name,
        )
    context = status in (400, 413) and _CONTEXT.search(message) is not None
    return UpstreamError(
        message,
        **common,
        retryable=False,
        counts_against=False,
        context_window=context,
        code="context_length_exceeded" if context else name,
        param="messages" if context else None,
    )


def stream_error(dep: Deployment, doc: Mapping[str, Any]) -> UpstreamError:
    """Returns the error an `{"error": ...}` event inside a 200 stream stands for."""
    error = doc.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    if status is None:
        status = STATUS_BY_NAME.get(str(error.get("status")), 500)
    return classify_error(dep, status, {}, orjson.dumps(doc))


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """Returns the seconds a RetryInfo detail asks for, or None (absent or unreadable)."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                seconds = float(match[1])
                return min(seconds, MAX_WAIT) if math.isfinite(seconds) else None
    return None


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}
    if isinstance(doc, list) and doc:  # a stream request's error comes as a JSON array
        doc = doc[0]
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _reasons(error: Mapping[str, Any]) -> set[str]:
    details = error.get("details")
    return {
        str(d.get("reason"))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("@type") == ERROR_INFO
    }


def _text(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()
