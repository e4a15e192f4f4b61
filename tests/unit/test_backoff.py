"""The one backoff rule every retry loop uses."""

from __future__ import annotations

import random

from proxy.backoff import Backoff


def test_doubles_from_the_floor_to_the_cap_and_starts_over_after_reset() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


def test_jitter_stays_within_half_to_one_and_a_half_of_the_delay() -> None:
    backoff = Backoff(1.0, 8.0, jitter=random.Random(7))
    for base in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert backoff.peek() == base
        assert 0.5 * base <= backoff.next() < 1.5 * base
