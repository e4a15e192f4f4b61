"""Every failure the proxy can report, as one tree rendered in OpenAI's error shape.

    ProxyError                       status, type, message, param, code
    ├── BadRequest                   400 (and 413, 422): the client's request is wrong
    │   └── ContextWindowExceeded    400: prompt longer than the model takes
    ├── AuthError                    401: missing or wrong master key
    ├── UnknownModel                 404 model_not_found
    ├── NotImplementedByProvider     501: the provider cannot serve this route
    ├── UpstreamError                an upstream answered with an error (provider, key_id,
    │   │                            status, retryable, retry_after)
    │   └── UpstreamTimeout          the upstream did not answer in time (504)
    └── AllTargetsFailed             every deployment and fallback failed (attempts)

ConfigError is not a ProxyError: it is a start-up failure, reported once and exit 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_ECHO = 120
"""The most characters of a client's string (a model name, a field) an error message echoes."""


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """Returns: `text`, or its first `limit` characters and how long it was, so an error never
    echoes a client's megabyte back (or into the log)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class ProxyError(Exception):
    """An error the client sees, with OpenAI's error fields."""

    status: int = 500
    type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Returns OpenAI's `{"error": {...}}` document for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(ProxyError):  # noqa: N818 - names from the design (STYLE §4)
    status = 400
    type = "invalid_request_error"


class ContextWindowExceeded(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="context_length_exceeded", param="messages")


class AuthError(ProxyError):
    status = 401
    type = "authentication_error"

    def __init__(self, message: str = "Invalid or missing API key.") -> None:
        super().__init__(message, code="invalid_api_key")


class UnknownModel(ProxyError):  # noqa: N818 - names from the design (STYLE §4)
    status = 404
    type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{clip(model)}' does not exist on this proxy. "
            "GET /v1/models lists the groups.",
            param="model",
            code="model_not_found",
        )


class NotImplementedByProvider(ProxyError):  # noqa: N818 - names from the design (STYLE §4)
    status = 501
    type = "not_implemented"


class UpstreamError(ProxyError):
    """An upstream answered with an error, or could not be reached.

    `retryable` is decided by the provider adapter's classify_error; the router obeys it.
    `counts_against` says whether the failure is the deployment's fault (and so counts toward
    its cooldown) rather than the request's.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        key_id: str,
        status: int,
        retryable: bool,
        retry_after: float | None = None,
        counts_against: bool | None = None,
        key_rejected: bool = False,
        context_window: bool = False,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(
            message, status=status, type=type or _type_for(status), code=code, param=param
        )
        self.provider = provider
        self.key_id = key_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.counts_against = retryable if counts_against is None else counts_against
        self.key_rejected = key_rejected
        self.context_window = context_window

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


class UpstreamTimeout(UpstreamError):  # noqa: N818 - names from the design (STYLE §4)
    def __init__(self, message: str, *, provider: str, key_id: str) -> None:
        super().__init__(
            message,
            provider=provider,
            key_id=key_id,
            status=504,
            retryable=True,
            type="timeout",
            code="upstream_timeout",
        )


@dataclass(frozen=True)
class Attempt:
    """One try at one deployment, as reported to the client and the dashboard (never a key)."""

    deployment: str
    group: str
    status: int
    reason: str
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "group": self.group,
            "status": self.status,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 1),
        }


class AllTargetsFailed(ProxyError):  # noqa: N818 - names from the design (STYLE §4)
    """Every deployment of the group and of its fallbacks failed; lists each attempt."""

    def __init__(
        self,
        group: str,
        attempts: Sequence[Attempt],
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
        last: ProxyError | None = None,
        unusable: str | None = None,
    ) -> None:
        """`unusable`: why no deployment could be tried, when it is known (a spent budget)."""
        self.attempts = list(attempts)
        statuses = [a.status for a in self.attempts]
        if rate_limited:
            status, code = 429, "rate_limit_exceeded"
        elif not statuses:
            status, code = 503, "no_deployment_available"
        elif all(s == 504 for s in statuses):
            status, code = 504, "upstream_timeout"
        elif all(s in (503, 529) for s in statuses):
            status, code = 503, "upstream_overloaded"  # never Anthropic's 529 to a client
        else:
            status, code = 502, "upstream_error"
        tried = "; ".join(f"{a.deployment}: {a.status} {a.reason}" for a in self.attempts)
        message = f"All deployments for '{clip(group)}' failed"
        if tried:
            message += f" ({tried})"
        elif rate_limited:
            message += ": every deployment is at its rpm/tpm limit or rate limited"
        else:
            message += f": {unusable or 'none is usable right now (cooling down or disabled)'}"
        headers = {}
        if status in (429, 503) and retry_after is not None:
            headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
        elif status == 429:
            headers["Retry-After"] = "1"
        if self.attempts or unusable:
            # The proxy already retried: an SDK retrying on top would multiply the attempts.
            headers["x-should-retry"] = "false"
        super().__init__(message, status=status, type=_type_for(status), code=code, headers=headers)
        self.last = last


def _type_for(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status in (401, 403):
        return "authentication_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


class ConfigError(Exception):
    """The config file cannot be used; the message names file, YAML path and reason."""
