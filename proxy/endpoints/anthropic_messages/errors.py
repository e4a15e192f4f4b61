"""Any `ProxyError` in Anthropic's error shape and statuses, as a body or a stream event.

400 invalid_request_error   401 authentication_error   402 billing_error
403 permission_error        404 not_found_error        413 request_too_large
429 rate_limit_error        500 api_error (and 501, 502) 504 timeout_error
529 overloaded_error: every 503 of ours and any upstream 529 (clients retry it)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ProxyError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OVERLOADED_CODES = frozenset({"upstream_overloaded", "overloaded", "overloaded_error"})
# An error document in a stream carries OpenAI's type, not the status: this is the status.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "timeout": 504,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def status_and_type(err: ProxyError) -> tuple[int, str]:
    """Returns the HTTP status and Anthropic error type for `err`."""
    status = err.status
    if status in (503, 529) or err.code in _OVERLOADED_CODES:
        return 529, "overloaded_error"
    if status == 422:
        status = 400
    if status in _TYPES:
        return status, _TYPES[status]
    return status, "api_error" if status >= 500 else "invalid_request_error"


def error_body(err: ProxyError, message: str | None = None) -> dict[str, Any]:
    """Returns `{"type": "error", "error": {"type", "message"}}` for `err`; `message`
    (the scrubbed text) replaces `err.message` when given."""
    text = err.message if message is None else message
    return {"type": "error", "error": {"type": status_and_type(err)[1], "message": text}}


def render_error(err: ProxyError, message: str | None = None) -> tuple[int, bytes]:
    """Renders an error for the Messages routes (the front door's `WireFormat`).

    Args:
        err: the error.
        message: its text as the client may read it (keys scrubbed); `err.message` if None.

    Returns:
        (HTTP status, JSON body) in Anthropic's shape. `err.headers` (Retry-After,
        x-should-retry) still go on the response.
    """
    return status_and_type(err)[0], orjson.dumps(error_body(err, message))


def error_from_document(doc: Mapping[str, Any]) -> ProxyError:
    """Returns the error an OpenAI `{"error": {...}}` document (a failed stream) stands for."""
    error = doc.get("error")
    error = error if isinstance(error, dict) else {}
    kind = _text(error.get("type")) or "api_error"
    code = _text(error.get("code")) or None
    message = _text(error.get("message")) or "Upstream error."
    status = 529 if code in _OVERLOADED_CODES else _STATUS_BY_TYPE.get(kind, 500)
    return ProxyError(message, status=status, type=kind, code=code)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
