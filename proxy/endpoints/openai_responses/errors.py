"""Any `ProxyError` in OpenAI's error shape, as an HTTP body or a Response's `error` object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.endpoints import openai_chat
from proxy.errors import ProxyError

# Codes a client acts on when a response fails: Codex maps context_length_exceeded and
# insufficient_quota to their own errors and retries rate_limit_exceeded after a delay.
_KEPT_CODES = frozenset(
    {"context_length_exceeded", "insufficient_quota", "rate_limit_exceeded", "server_error"}
)
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "rate_limit_error": 429,
    "timeout": 504,
}


def render_error(err: ProxyError, message: str | None = None) -> tuple[int, bytes]:
    """Renders an error for the Responses routes (the front door's `WireFormat`): OpenAI's
    shape, as the chat routes render it.

    Args:
        err: the error.
        message: its text as the client may read it (keys scrubbed); `err.message` if None.

    Returns:
        (HTTP status, JSON body `{"error": {"message", "type", "param", "code"}}`).
        `err.headers` (Retry-After, x-should-retry) still go on the response.
    """
    return openai_chat.render_error(err, err.message if message is None else message)


def response_error(err: ProxyError, message: str | None = None) -> dict[str, str]:
    """Returns the `error` object of a failed response: `{"code", "message"}`."""
    if err.code in _KEPT_CODES:
        code = str(err.code)
    elif err.status == 429:
        code = "rate_limit_exceeded"
    elif 400 <= err.status < 500:
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": err.message if message is None else message}


def error_from_document(doc: Mapping[str, Any]) -> ProxyError:
    """Returns the error an OpenAI `{"error": {...}}` document (a failed stream) stands for."""
    error = doc.get("error")
    error = error if isinstance(error, dict) else {}
    kind = _text(error.get("type")) or "api_error"
    code = _text(error.get("code")) or None
    message = _text(error.get("message")) or "Upstream error."
    return ProxyError(message, status=_STATUS_BY_TYPE.get(kind, 502), type=kind, code=code)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
