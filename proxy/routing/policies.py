"""LiteLLM's `retry_policy` and `allowed_fails_policy`: retries and allowed failures per error
kind, the kinds being LiteLLM's exception names read from an upstream error.

    router_settings:
      retry_policy: {RateLimitErrorRetries: 3, AuthenticationErrorRetries: 0}
      allowed_fails_policy: {InternalServerErrorAllowedFails: 20}
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.config.compat import POLICY_KINDS as KINDS
from proxy.errors import UpstreamError, UpstreamTimeout

__all__ = ["KINDS", "allowed_fails_for", "error_kind", "retries_for", "spent"]

_CONTENT_CODES = ("content_filter", "content_policy_violation")


def error_kind(err: UpstreamError) -> str:
    """Returns LiteLLM's kind for an upstream error (one of `KINDS`)."""
    if isinstance(err, UpstreamTimeout) or err.status in (408, 504):
        return "TimeoutError"
    if err.key_rejected or err.status in (401, 403):
        return "AuthenticationError"
    if err.status == 429:
        return "RateLimitError"
    if err.code in _CONTENT_CODES:
        return "ContentPolicyViolationError"
    if err.status >= 500:
        return "InternalServerError"
    return "BadRequestError"


def retries_for(policy: Mapping[str, int] | None, err: UpstreamError) -> int | None:
    """Returns the retries `retry_policy` allows after an error of `err`'s kind, or None when
    the policy does not name that kind (num_retries decides)."""
    return None if not policy else policy.get(f"{error_kind(err)}Retries")


def spent(policy: Mapping[str, int] | None, err: UpstreamError, seen: dict[str, int]) -> bool:
    """Counts `err` in `seen` (failures per kind in one request) and returns whether
    `retry_policy` allows no further try after it."""
    kind = error_kind(err)
    seen[kind] = seen.get(kind, 0) + 1
    allowed = retries_for(policy, err)
    return allowed is not None and seen[kind] > allowed


def allowed_fails_for(policy: Mapping[str, int] | None, err: UpstreamError, default: int) -> int:
    """Returns the failures in a minute a deployment may have, ending with `err`, before it
    cools down: `allowed_fails_policy` for `err`'s kind, else `default` (allowed_fails)."""
    value = None if not policy else policy.get(f"{error_kind(err)}AllowedFails")
    return default if value is None else value
