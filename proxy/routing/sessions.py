"""Sticky sessions: which deployment last served each agent session, per group.

A bounded LRU of (group, session) -> deployment id, each entry living `ttl` seconds after its
last use; this instance's map is asked first, the shared state (Redis) only when it has no
usable answer, and every change is shared in the background.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proxy.scale.state import LocalState, SharedState

SESSION_TTL = 3600.0
"""A session not seen for this long is forgotten (agents pause; prompt caches last minutes)."""
MAX_SESSIONS = 10_000
"""At most this many (group, session) entries; the least recently used goes first."""
MAX_SESSION_CHARS = 128
"""A longer session id is kept as its digest, so a client cannot make entries large."""
SHARE_REFRESH = 0.1
"""An unchanged entry is shared again after this share of `ttl` (to renew the Redis TTL)."""


@dataclass(slots=True)
class _Entry:
    dep_id: str
    expires: float
    shared_at: float


class SessionMap:
    """(group, session) -> the deployment serving that session, bounded and expiring."""

    def __init__(
        self,
        shared: SharedState | None = None,
        *,
        ttl: float = SESSION_TTL,
        max_entries: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared: SharedState = shared or LocalState()
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # Every write moves its entry to the end with a fresh expiry, so the order is both
        # least recently used first and soonest to expire first.
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._per_dep: Counter[str] = Counter()

    def get(self, group: str, session: str) -> str | None:
        """Returns: the deployment id this instance last served the session on, if not expired."""
        self._expire(self._clock())
        entry = self._entries.get((group, _bounded(session)))
        return None if entry is None else entry.dep_id

    async def lookup(self, group: str, session: str, usable: Callable[[str], bool]) -> str | None:
        """Returns: the deployment the session should stay on, or None to choose as usual.

        This instance's answer when `usable` says it may take a request; else the shared
        state's (another instance may already have moved the session), bounded and never
        raising; else the unusable one, which the pool then passes over.
        """
        local = self.get(group, session)
        if local is not None and usable(local):
            return local
        remote = await self._fetch(group, session)
        return remote if remote is not None else local

    def remember(self, group: str, session: str, dep_id: str) -> None:
        """Records that `dep_id` served the session; shares it when it changed or is due."""
        now = self._clock()
        key = (group, _bounded(session))
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = entry = _Entry(dep_id, now + self.ttl, now)
            self._per_dep[dep_id] += 1
            self._share(key, dep_id)
            self._expire(now)
            return
        self._entries.move_to_end(key)
        entry.expires = now + self.ttl
        if entry.dep_id != dep_id:
            self._count_off(entry.dep_id)
            self._per_dep[dep_id] += 1
            entry.dep_id = dep_id
        elif now - entry.shared_at < self.ttl * SHARE_REFRESH:
            return
        entry.shared_at = now
        self._share(key, dep_id)

    def count(self, dep_id: str) -> int:
        """Returns: how many live sessions this instance keeps on `dep_id`."""
        self._expire(self._clock())
        return self._per_dep.get(dep_id, 0)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.expires > now and len(entries) <= self.max_entries:
                return
            del entries[key]
            self._count_off(entry.dep_id)

    def _count_off(self, dep_id: str) -> None:
        left = self._per_dep[dep_id] - 1
        if left > 0:
            self._per_dep[dep_id] = left
        else:
            del self._per_dep[dep_id]

    def _share(self, key: tuple[str, str], dep_id: str) -> None:
        self._shared.put_session(_shared_key(*key), dep_id, self.ttl)

    def _fetch(self, group: str, session: str) -> Awaitable[str | None]:
        return self._shared.get_session(_shared_key(group, _bounded(session)))


def _bounded(session: str) -> str:
    if len(session) <= MAX_SESSION_CHARS:
        return session
    return "#" + hashlib.blake2b(session.encode(), digest_size=16).hexdigest()


def _shared_key(group: str, session: str) -> str:
    """A fixed-length key naming (group, session) in the shared state."""
    return hashlib.blake2b(f"{group}\0{session}".encode(), digest_size=16).hexdigest()
