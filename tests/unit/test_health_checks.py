"""Background health checks (routing/health_checks.py) on the fake clock and the scripted
upstream: a dead key is cooled before any request, a passing probe ends a cooldown, probes are
spread over the interval with a bounded number in flight, and stop() ends everything."""

from __future__ import annotations

import asyncio

from proxy.errors import UpstreamError
from proxy.providers import registry
from proxy.routing.health_checks import HealthChecker
from proxy.routing.transport import ConnectError
from tests.unit.parts import chat, mock_dep, openai_dep
from tests.unit.scripted import Hang, error

INTERVAL = 30.0


def config(*deps: dict) -> dict:
    return {"model_list": list(deps) or [openai_dep("gpt", "a"), openai_dep("gpt", "b")]}


def checker(parts, clock, upstream, **kw) -> HealthChecker:
    return HealthChecker(parts.pool, registry.build(), upstream, INTERVAL, sleep=clock.sleep, **kw)


async def one_round(check: HealthChecker) -> None:
    await check.round()
    await check.drain()


async def test_a_dead_key_is_cooled_before_any_request(make, clock, upstream):
    parts = make(config())
    upstream.script("a", error(401))
    await one_round(checker(parts, clock, upstream))
    assert [c.url for c in upstream.calls] == ["http://a.test/v1/models", "http://b.test/v1/models"]
    dead, alive = parts.state("a"), parts.state("b")
    assert dead["health"] == "key_rejected"
    assert dead["last_probe"] == "key rejected" and dead["last_probe_ok"] is False
    assert dead["cooldown_until"] - dead["last_probe_at"] >= 60
    assert (alive["health"], alive["last_probe"], alive["last_probe_ok"]) == ("ok", "ok", True)
    assert not parts.usable("a") and parts.usable("b")
    _resp, dep, _trace = await parts.complete(chat())
    assert dep.id == "b"
    assert [c.host for c in upstream.calls[2:]] == ["b"]  # the user never met the dead key


async def test_a_passing_probe_ends_a_cooldown_early(make, clock, upstream):
    parts = make(config())
    check = checker(parts, clock, upstream)
    upstream.script("a", error(401))
    await one_round(check)
    assert parts.state("a")["health"] == "key_rejected"
    await one_round(check)  # the key works again (fixed upstream): well before 60 s
    row = parts.state("a")
    assert (row["health"], row["cooldown_until"], row["last_probe"]) == ("ok", None, "ok")
    assert parts.usable("a")


async def test_a_passing_probe_keeps_a_rate_limit_cooldown(make, clock, upstream):
    parts = make(config())
    st = parts.pool.states["a"]
    limited = UpstreamError(
        "slow down", provider="openai", key_id="a", status=429, retryable=True, retry_after=300
    )
    parts.pool.begin(st)
    parts.pool.fail(st, limited)
    await one_round(checker(parts, clock, upstream))
    assert parts.state("a")["health"] == "cooling_down"  # listing models proves no rpm room


async def test_5xx_connection_error_and_timeout_count_as_failures(make, clock, upstream):
    parts = make(
        config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), openai_dep("gpt", "c", timeout=0.05))
    )
    upstream.script("a", error(503))
    upstream.script("b", ConnectError("refused"))
    upstream.script("c", Hang())
    await one_round(checker(parts, clock, upstream))
    rows = {d: parts.state(d) for d in "abc"}
    assert rows["a"]["last_probe"] == "openai answered 503: upstream failed (503)"
    assert rows["b"]["last_probe"] == "connection failed (ConnectError)"
    assert rows["c"]["last_probe"] == "timed out"
    for row in rows.values():
        assert row["last_probe_ok"] is False and row["errors"] == 1
        assert row["fails_this_minute"] == 1 and row["last_error"]


async def test_probes_are_spread_over_the_interval(make, clock, upstream):
    parts = make(config(*(openai_dep("gpt", f"d{i}") for i in range(3))))
    await one_round(checker(parts, clock, upstream))
    assert clock.sleeps == [INTERVAL / 3] * 3


async def test_disabled_and_keyless_deployments_are_not_probed(make, clock, upstream):
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), mock_dep("m", "m1")))
    parts.pool.set_disabled("b", True)
    check = checker(parts, clock, upstream)
    assert [d.id for d in check.targets()] == ["a", "m1"]
    await one_round(check)
    assert upstream.hosts() == ["a"]
    assert parts.state("m1")["last_probe"] == "ok"  # nothing to prove: counted as ok
    assert parts.state("b")["last_probe_at"] is None


async def test_in_flight_probes_are_bounded_and_stop_ends_them(make, clock, upstream):
    parts = make(config(*(openai_dep("gpt", f"d{i}") for i in range(4))))
    for i in range(4):
        upstream.script(f"d{i}", Hang())
    check = checker(parts, clock, upstream, max_in_flight=2)
    check.start()
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(upstream.calls) == 2  # the third waits for a slot
    await check.stop()
    assert check._task is None and not check._probes
    assert all(parts.state(f"d{i}")["last_probe_at"] is None for i in range(4))
