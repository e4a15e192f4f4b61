"""Router state shared by several proxy instances: the `SharedState` interface the key pool and
router call, `LocalState` (the default: shares nothing) and the choice between it and Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class LocalStats:
    """This instance's counts for one deployment, as the pool pushes them."""

    in_flight: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    fails: int = 0


@dataclass(frozen=True)
class RemoteStats:
    """The other instances' counts for one deployment (summed; latency as a mean)."""

    in_flight: int = 0
    latency_ms: float | None = None
    samples: int = 0
    fails: int = 0


NO_REMOTE = RemoteStats()


class PoolView(Protocol):
    """What shared state needs from the key pool."""

    def apply_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None:
        """Cools a deployment because another instance did (never re-shared)."""

    def clear_cooldown(self, dep_id: str) -> None:
        """Clears a cooldown because an operator reset it on another instance."""

    def local_stats(self) -> dict[str, LocalStats]:
        """Returns: this instance's counts per deployment id (zeros may be left out)."""
        ...


class SharedState(Protocol):
    """The hooks the key pool and router call; see the module docstring."""

    kind: str

    def bind(self, pool: PoolView) -> None: ...
    async def start(self) -> None: ...
    async def wait_live(self) -> None: ...
    async def close(self) -> None: ...
    def on_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None: ...
    def on_clear(self, dep_id: str) -> None: ...
    async def reserve(self, dep_id: str, rpm: int | None, tpm: int | None) -> float | None: ...
    def on_tokens(self, dep_id: str, tokens: int) -> None: ...
    def remote(self, dep_id: str) -> RemoteStats: ...
    async def get_session(self, key: str) -> str | None: ...
    def put_session(self, key: str, dep_id: str, ttl: float) -> None: ...
    def status(self) -> dict[str, Any]: ...


class LocalState:
    """Shares nothing: every hook is a no-op, every reservation is granted."""

    kind = "local"

    def bind(self, pool: PoolView) -> None:
        """Nothing to bind."""

    async def start(self) -> None:
        """Nothing to start."""

    async def wait_live(self) -> None:
        """Local state is always ready."""

    async def close(self) -> None:
        """Nothing to close."""

    def on_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None:
        """Not shared."""

    def on_clear(self, dep_id: str) -> None:
        """Not shared."""

    async def reserve(self, dep_id: str, rpm: int | None, tpm: int | None) -> float | None:
        """Returns: None (granted); the pool's own windows are the only limit."""
        return None

    def on_tokens(self, dep_id: str, tokens: int) -> None:
        """Not shared."""

    def remote(self, dep_id: str) -> RemoteStats:
        """Returns: zeros (there are no other instances)."""
        return NO_REMOTE

    async def get_session(self, key: str) -> str | None:
        """Returns: None (no other instance could have served the session)."""
        return None

    def put_session(self, key: str, dep_id: str, ttl: float) -> None:
        """Not shared: the router's own session map is the only one."""

    def status(self) -> dict[str, Any]:
        """Returns: the `server.redis` object of the state document."""
        return {"configured": False, "ok": True, "error": None}
