"""Provider keys and the master key: held so they cannot be printed by accident, and scrubbed
from any text that might echo them (an upstream error message, a log line); URLs with
credentials in them, redacted wherever one is shown."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Secret:
    """Holds a secret string; `repr`/`str` show only its last 4 characters."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Returns the secret itself; only for the outgoing request that needs it."""
        return self._value

    @property
    def redacted(self) -> str:
        return redact(self._value)

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison, for the master key."""
        return hmac.compare_digest(self._value.encode(), candidate.encode())

    def __repr__(self) -> str:
        return f"Secret({self.redacted})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


def redact(value: str) -> str:
    """Returns `…abcd` (the last 4 characters), or `…` for a short value."""
    return f"…{value[-4:]}" if len(value) >= 12 else "…"


class Scrubber:
    """Replaces every configured key (provider keys, the master key) with its redacted form."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        pairs = {(s.reveal(), s.redacted) for s in secrets if len(s.reveal()) >= 8}
        self._pairs = sorted(pairs, key=lambda pair: -len(pair[0]))

    def text(self, value: str) -> str:
        """Returns `value` with any key in it redacted to its last 4 characters."""
        for secret, redacted in self._pairs:
            if secret in value:
                value = value.replace(secret, redacted)
        return value


_SECRET_PARAM = re.compile(r"key|token|secret|pass|sig|auth|cred", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Returns `url` fit to show: a password in it (`user:***@`), a token given as the user
    name (`***@`) and the values of query parameters named like a secret (`?api_key=***`)
    replaced; a URL that cannot be parsed is not shown at all."""
    if "@" not in url and "?" not in url:
        return url  # the common case: nothing to hide
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(a URL that cannot be parsed)"
    netloc = parts.netloc
    if "@" in netloc:
        user, colon, _ = netloc.rpartition("@")[0].partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
