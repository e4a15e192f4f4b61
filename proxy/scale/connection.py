"""One Redis connection target: the asyncio client built from the config (fail-fast: short
timeouts, no built-in retries) and its health (`ok`/`error`, one log line per change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.secret import redact_url

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("llmproxy")

CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 0.5
"""Bounds of one socket operation; hot-path calls are bounded tighter by their callers."""
DEFAULT_PREFIX = "llmproxy:"


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, or host/port/password (password never shown)."""

    url: str | None = None
    host: str | None = None
    port: int | None = None
    password: str | None = None

    def describe(self) -> str:
        """Returns: `host:port` or the URL with its password replaced by `***`."""
        if self.url:
            return hide_password(self.url)
        return f"{self.host or '127.0.0.1'}:{self.port or 6379}"

    def client(self, *, socket_timeout: float | None = SOCKET_TIMEOUT) -> aioredis.Redis:
        """Returns: a new client (lazy: it connects on first use). Fails fast, never retries:
        the callers decide what a failure means."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        opts: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
            "health_check_interval": 0,
        }
        if self.url:
            return aioredis.Redis.from_url(self.url, **opts)
        return aioredis.Redis(
            host=self.host or "127.0.0.1", port=self.port or 6379, password=self.password, **opts
        )


def hide_password(url: str) -> str:
    """Returns: `url` with its credentials replaced by `***` (see `proxy.secret.redact_url`)."""
    return redact_url(url)


def prefix_for(namespace: str | None) -> str:
    """Returns: the key prefix of a namespace (`llmproxy:` or `llmproxy:{namespace}:`)."""
    return f"{DEFAULT_PREFIX}{namespace}:" if namespace else DEFAULT_PREFIX


class Health:
    """Whether a store answers; logs a warning when it stops and an info line when it returns."""

    def __init__(
        self,
        what: str,
        *,
        fallback: str = "falling back to local state",
        configured: bool = True,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.what = what
        self.fallback = fallback
        self.configured = configured
        self.ok = configured
        self.error: str | None = None
        self.failures = 0
        self._on_change = on_change

    def up(self) -> None:
        """Marks the store reachable."""
        self.failures = 0
        if not self.ok:
            self.ok, self.error = True, None
            log.warning("%s is back", self.what)
            self._changed()

    def down(self, exc: BaseException | str) -> None:
        """Marks the store unreachable (logged once per change)."""
        self.failures += 1
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}".rstrip(": ")
        self.error = text[:300]
        if self.ok:
            self.ok = False
            log.warning("%s unavailable (%s); %s", self.what, self.error, self.fallback)
            self._changed()

    def as_dict(self) -> dict[str, Any]:
        """Returns: {"configured", "ok", "error"} for the state document."""
        return {"configured": self.configured, "ok": self.ok, "error": self.error}

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # a listener's failure is not ours
                log.exception("health listener failed")
