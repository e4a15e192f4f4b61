"""Unit-test fixtures: a fake clock whose sleep advances it and returns at once, the scripted
upstream, and `build(config_dict)` for the pool, router and pipeline on both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.parts import Parts, build
from tests.unit.scripted import ScriptedUpstream

WALL_EPOCH = 1_700_000_000.0


class FakeClock:
    """Monotonic seconds under the test's control; `sleep` records the wait and jumps ahead."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_EPOCH + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, like the real one


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def upstream(clock: FakeClock) -> ScriptedUpstream:
    return ScriptedUpstream(clock)


@pytest.fixture
def make(clock: FakeClock, upstream: ScriptedUpstream) -> Callable[..., Parts]:
    """Returns `make(config_dict, seed=7) -> Parts` on the test's clock and upstream."""

    def make_parts(doc: dict[str, Any], *, seed: int = 7) -> Parts:
        return build(doc, upstream, clock, seed=seed)

    return make_parts
