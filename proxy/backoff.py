"""One backoff rule for every retry loop: a delay that doubles from a floor to a cap, with
optional jitter, and starts over after a success."""

from __future__ import annotations

import random


class Backoff:
    """Doubling delays: `low`, `2·low`, `4·low` … capped at `high`; `reset()` after a success.

    With `jitter`, each delay is scaled by a random factor in [0.5, 1.5) (spreads retries of
    many clients so they do not arrive together).
    """

    __slots__ = ("low", "high", "_next", "_rng")

    def __init__(self, low: float, high: float, *, jitter: random.Random | None = None) -> None:
        self.low = low
        self.high = high
        self._next = low
        self._rng = jitter

    def next(self) -> float:
        """Returns the delay to wait now and doubles the one after it."""
        delay = self._next
        self._next = min(self._next * 2, self.high)
        return delay * (0.5 + self._rng.random()) if self._rng is not None else delay

    def peek(self) -> float:
        """Returns the delay `next()` would give (without jitter), changing nothing."""
        return self._next

    def reset(self) -> None:
        """Starts over at `low` (call after a success)."""
        self._next = self.low
