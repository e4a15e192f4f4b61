"""RedisState against a real Redis: two states in one test are two proxy instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import redis

from proxy.config.settings import RouterSettings
from proxy.runtime import shared_state_for
from proxy.scale.connection import RedisTarget
from proxy.scale.redis_state import RedisState
from proxy.scale.state import LocalState, LocalStats, RemoteStats
from tests.conftest import free_port
from tests.scaleout.conftest import REDIS_HOST, RedisServer, wait_until


@dataclass
class Pool:
    """A PoolView that records what Redis applied to it and reports fixed local counts."""

    cooled: dict[str, tuple[float, str, bool]] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)
    stats: dict[str, LocalStats] = field(default_factory=dict)

    def apply_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None:
        self.cooled[dep_id] = (seconds, reason, key_rejected)

    def clear_cooldown(self, dep_id: str) -> None:
        self.cleared.append(dep_id)

    def local_stats(self) -> dict[str, LocalStats]:
        return dict(self.stats)


@pytest.fixture
async def instances(redis_ns: str, redis_port: int) -> AsyncIterator[Callable[..., object]]:
    started: list[RedisState] = []

    async def make(port: int = redis_port, *, live: bool = True) -> tuple[RedisState, Pool]:
        state = RedisState(
            RedisTarget(host=REDIS_HOST, port=port), namespace=redis_ns, sync_interval=0.05
        )
        pool = Pool()
        state.bind(pool)
        await state.start()
        started.append(state)
        if live:
            async with asyncio.timeout(5):
                await state.wait_live()
        return state, pool

    yield make
    for state in started:
        await state.close()


async def test_cooldown_reaches_the_other_instance(instances) -> None:
    a, _pool_a = await instances()
    b, pool_b = await instances()
    a.on_cooldown("dep-1", 30.0, "429", False)
    await wait_until(lambda: "dep-1" in pool_b.cooled)
    seconds, reason, rejected = pool_b.cooled["dep-1"]
    assert 25 < seconds <= 30 and reason == "429" and rejected is False
    a.on_clear("dep-1")
    await wait_until(lambda: pool_b.cleared == ["dep-1"])


async def test_an_instance_started_later_loads_live_cooldowns(instances) -> None:
    a, _ = await instances()
    b, pool_b = await instances()
    a.on_cooldown("dep-2", 20.0, "key rejected", True)
    await wait_until(lambda: "dep-2" in pool_b.cooled)  # stored and published by now
    _c, pool_c = await instances()
    seconds, reason, rejected = pool_c.cooled["dep-2"]
    assert 0 < seconds <= 20 and reason == "key rejected" and rejected is True


async def test_own_cooldowns_are_not_applied_back(instances) -> None:
    a, pool_a = await instances()
    b, pool_b = await instances()
    a.on_cooldown("dep-3", 5.0, "429", False)
    await wait_until(lambda: "dep-3" in pool_b.cooled)
    assert pool_a.cooled == {}


async def test_rpm_is_counted_across_instances(instances) -> None:
    a, _ = await instances()
    b, _ = await instances()
    granted = [await s.reserve("dep-rpm", 5, None) for s in (a, b, a, b, a)]
    assert granted == [None] * 5
    wait = await b.reserve("dep-rpm", 5, None)
    assert wait is not None and 0 < wait <= 60
    assert await a.reserve("dep-rpm", 5, None) is not None
    assert await a.reserve("other-dep", 5, None) is None


async def test_rpm_zero_never_grants(instances) -> None:
    a, _ = await instances()
    assert await a.reserve("dep-zero", 0, None) == 60.0


async def test_tpm_is_counted_across_instances(instances) -> None:
    a, _ = await instances()
    b, _ = await instances()
    assert await b.reserve("dep-tpm", None, 100) is None
    a.on_tokens("dep-tpm", 60)
    a.on_tokens("dep-tpm", 40)

    async def full() -> bool:
        return await b.reserve("dep-tpm", None, 100) is not None

    await wait_until(full)
    wait = await b.reserve("dep-tpm", None, 100)
    assert wait is not None and 0 < wait <= 61


async def test_unlimited_deployments_never_ask_redis(instances) -> None:
    a, _ = await instances()
    await a.close()
    assert await a.reserve("dep", None, None) is None


async def test_in_flight_latency_and_failures_are_summed(instances) -> None:
    a, pool_a = await instances()
    b, pool_b = await instances()
    c, _ = await instances()
    pool_a.stats = {"d": LocalStats(in_flight=3, latency_sum=300.0, latency_n=3, fails=1)}
    pool_b.stats = {"d": LocalStats(in_flight=2, latency_sum=500.0, latency_n=1, fails=2)}
    want = RemoteStats(in_flight=5, latency_ms=200.0, samples=4, fails=3)
    await wait_until(lambda: c.remote("d") == want)
    await wait_until(lambda: a.remote("d") == RemoteStats(2, 500.0, 1, 2))
    assert c.status()["peers"] == 2
    pool_a.stats = {}
    await wait_until(lambda: c.remote("d") == RemoteStats(2, 500.0, 1, 2))


async def test_redis_down_at_start_allows_everything(instances) -> None:
    state, _ = await instances(port=free_port(), live=False)
    await wait_until(lambda: state.status()["ok"] is False)
    status = state.status()
    assert status["configured"] is True and "Error" in status["error"]
    assert await state.reserve("dep", 1, 1) is None
    state.on_cooldown("dep", 5, "429", False)
    state.on_tokens("dep", 5)
    assert state.remote("dep") == RemoteStats()


async def test_redis_stopped_and_restarted(redis_server: RedisServer, instances) -> None:
    a, _ = await instances(port=redis_server.port)
    b, pool_b = await instances(port=redis_server.port)
    assert await a.reserve("dep", 1, None) is None
    assert await b.reserve("dep", 1, None) is not None
    redis_server.stop()
    await wait_until(lambda: not a.status()["ok"] or not a.live)
    for _ in range(5):  # down: granted at once, by local state
        assert await a.reserve("dep", 1, None) is None
    await wait_until(lambda: not a.live and not b.live)
    a.on_cooldown("lost", 5, "429", False)  # dropped while down
    redis_server.start()
    await wait_until(lambda: a.live and b.live, within=15)
    assert a.status()["ok"] is True and a.status()["error"] is None
    a.on_cooldown("dep-after", 5, "429", False)
    await wait_until(lambda: "dep-after" in pool_b.cooled)
    assert "lost" not in pool_b.cooled


def test_local_state_and_the_choice_by_settings() -> None:
    assert isinstance(shared_state_for(RouterSettings()), LocalState)
    chosen = shared_state_for(RouterSettings(redis_url="redis://:pw@127.0.0.1:6379/0"))
    assert isinstance(chosen, RedisState)
    assert chosen.status()["url"] == "redis://:***@127.0.0.1:6379/0"
    assert LocalState().status() == {"configured": False, "ok": True, "error": None}


async def test_a_slow_redis_never_stalls_a_reservation(
    redis_server: RedisServer, instances
) -> None:
    a, _ = await instances(port=redis_server.port)
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as admin:
        admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        results = [await a.reserve("dep", 5, None) for _ in range(4)]
        assert results == [None] * 4  # each bounded by op_timeout, then granted locally
        assert a.status()["ok"] is False and "TimeoutError" in a.status()["error"]
        admin.execute_command("CLIENT", "UNPAUSE")
    await wait_until(lambda: a.live, within=15)
    assert await a.reserve("dep", 5, None) is None


async def test_close_never_hangs_on_a_cancel_redis_swallows(redis_ns, redis_port) -> None:
    # redis-py can lose a cancel that lands inside a pipeline's execute(); close() used to
    # wait for that task forever (about one parallel run in four hung a fixture's teardown).
    for i in range(40):
        states = [
            RedisState(RedisTarget(host="127.0.0.1", port=redis_port), namespace=redis_ns,
                       sync_interval=0.05)
            for _ in range(3)
        ]  # fmt: skip
        for state in states:
            await state.start()
        for state in states:
            async with asyncio.timeout(5):
                await state.wait_live()
        states[0].on_cooldown("d", 5, "429", False)
        await asyncio.sleep(0.01 * (i % 7))
        for state in states:
            async with asyncio.timeout(5):  # CLOSE_TRIES x CLOSE_WAIT is 2.5 s at most
                await state.close()
