"""Provider keys and the master key: held so they cannot be printed by accident, and scrubbed
from any text that might echo them (an upstream error message, a log line)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


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
