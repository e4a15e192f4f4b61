"""Cooldowns: a 429 cools for its Retry-After, a rejected key at once, other failures after
`allowed_fails` in a minute, for `cooldown_time`; the fake clock moves time, nothing waits.
"""

from __future__ import annotations

import pytest

from proxy.providers.anthropic.errors import classify_error as anthropic_error
from proxy.providers.openai import OpenAIProvider
from proxy.routing.keys import KEY_REJECTED_COOLDOWN
from proxy.routing.transport import ConnectError
from tests.unit.parts import anthropic_dep, chat, openai_dep
from tests.unit.scripted import Reply, error


def config(*deps, **router):
    settings = {"num_retries": 2, "cooldown_time": 5, "allowed_fails": 2, **router}
    return {"model_list": list(deps), "router_settings": settings}


def two_keys(make, **router):
    return make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), **router))


def primary_and_backup(make, **router):
    """`a` is always tried first (order 1), `b` only when `a` is not usable."""
    deps = openai_dep("gpt", "a", order=1), openai_dep("gpt", "b", order=2)
    return make(config(*deps, **router))


def fail(parts, dep_id, reply):
    """Reports one failed attempt at `dep_id`, the error read from the upstream's reply."""
    dep = parts.dep(dep_id)
    err = OpenAIProvider().classify_error(dep, reply.status, reply.headers, reply.body)
    st = parts.pool.states[dep_id]
    parts.pool.begin(st)
    parts.pool.fail(st, err)
    return err


# ---- 429 ----


async def test_429_moves_on_and_cools_for_retry_after(make, upstream, clock) -> None:
    parts = primary_and_backup(make)
    upstream.script("a", error(429, "error_rate_limit.json", retry_after="7"))
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "b" and [a.deployment for a in trace.attempts] == ["a", "b"]
    assert clock.sleeps == []  # another deployment was free: no wait
    row = parts.state("a")
    assert row["health"] == "cooling_down" and row["health_reason"] == "429"
    assert row["cooldown_remaining_s"] == pytest.approx(7, abs=0.05)
    _, dep, _ = await parts.complete(chat())
    assert dep.id == "b"  # still cooling
    clock.advance(6.9)
    assert not parts.usable("a")
    clock.advance(0.2)
    assert parts.usable("a")
    assert parts.state("a")["health"] == "ok"
    _, dep, _ = await parts.complete(chat())
    assert dep.id == "a"
    assert upstream.hosts() == ["a", "b", "b", "a"]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry_after_ms": "2500"}, 2.5),
        ({"retry_after": "12"}, 12.0),
        ({"x_ratelimit_reset_requests": "1m30s"}, 90.0),
    ],
)
def test_each_retry_after_form_sets_the_cooldown(make, clock, headers, seconds) -> None:
    parts = two_keys(make)
    fail(parts, "a", error(429, "error_rate_limit.json", **headers))
    clock.advance(seconds - 0.01)
    assert not parts.usable("a")
    clock.advance(0.02)
    assert parts.usable("a")


def test_429_without_retry_after_cools_for_cooldown_time(make, clock) -> None:
    parts = two_keys(make, cooldown_time=3)
    fail(parts, "a", error(429, "error_rate_limit.json"))
    clock.advance(2.99)
    assert not parts.usable("a")
    clock.advance(0.02)
    assert parts.usable("a")


def test_a_huge_retry_after_is_capped(make, clock) -> None:
    parts = two_keys(make)
    fail(parts, "a", error(429, "error_rate_limit.json", retry_after="86400"))
    clock.advance(300.01)
    assert parts.usable("a")


def test_anthropic_429_retry_after_cools_the_same_way(make, clock) -> None:
    parts = make(config(anthropic_dep("claude", "c1"), anthropic_dep("claude", "c2")))
    dep = parts.dep("c1")
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    err = anthropic_error(dep, 429, {"retry-after": "4"}, body)
    st = parts.pool.states["c1"]
    parts.pool.begin(st)
    parts.pool.fail(st, err)
    assert not parts.usable("c1", "claude")
    clock.advance(4.01)
    assert parts.usable("c1", "claude")


# ---- rejected keys ----


@pytest.mark.parametrize("status", [401, 403])
async def test_a_rejected_key_cools_at_once(make, upstream, clock, status) -> None:
    parts = two_keys(make, allowed_fails=5)
    upstream.answer_always("a", error(status, "error_invalid_api_key.json"))
    served = set()
    for _ in range(10):
        _, dep, _ = await parts.complete(chat())
        served.add(dep.id)
    assert served == {"b"}
    assert upstream.hosts().count("a") == 1  # one rejection, then never again
    row = parts.state("a")
    assert row["health"] == "key_rejected" and row["health_reason"] == "key rejected"
    wait = max(parts.config.router.cooldown_time, KEY_REJECTED_COOLDOWN)
    clock.advance(wait - 0.01)
    assert not parts.usable("a")
    clock.advance(0.02)
    assert parts.usable("a") and parts.state("a")["health"] == "ok"


def test_a_rejected_key_echoed_by_the_upstream_never_reaches_the_state(make) -> None:
    parts = two_keys(make)
    key = parts.dep("a").key.reveal()
    body = ('{"error":{"message":"Incorrect API key provided: ' + key + '"}}').encode()
    err = fail(parts, "a", Reply(401, body))
    last_error = parts.state("a")["last_error"]
    assert "Incorrect API key provided" in last_error
    assert key not in err.message and key not in last_error


# ---- other failures: allowed_fails per minute, then cooldown_time ----


def test_failures_beyond_allowed_fails_cool_for_cooldown_time(make, clock) -> None:
    parts = two_keys(make, allowed_fails=2, cooldown_time=5)
    fail(parts, "a", error(500))
    fail(parts, "a", error(500))
    assert parts.usable("a") and parts.state("a")["health"] == "failing"
    assert parts.state("a")["fails_this_minute"] == 2
    fail(parts, "a", error(503))
    row = parts.state("a")
    assert not parts.usable("a")
    assert row["health"] == "cooling_down" and row["health_reason"] == "3 failures in a minute"
    clock.advance(5.01)
    assert parts.usable("a")
    assert parts.state("a")["fails_this_minute"] == 0  # the count starts over after a cooldown


def test_failures_older_than_a_minute_do_not_count(make, clock) -> None:
    parts = two_keys(make, allowed_fails=2)
    fail(parts, "a", error(500))
    fail(parts, "a", error(500))
    clock.advance(60.5)
    fail(parts, "a", error(500))
    fail(parts, "a", error(500))
    assert parts.usable("a")
    fail(parts, "a", error(500))
    assert not parts.usable("a")


def test_allowed_fails_zero_cools_on_the_first_failure(make) -> None:
    parts = two_keys(make, allowed_fails=0)
    fail(parts, "a", error(500))
    assert not parts.usable("a")


def test_cooldown_time_zero_never_keeps_a_failing_deployment_out(make) -> None:
    parts = two_keys(make, allowed_fails=0, cooldown_time=0)
    fail(parts, "a", error(500))
    assert parts.usable("a")


def test_request_errors_do_not_count_against_the_deployment(make) -> None:
    parts = two_keys(make, allowed_fails=0)
    for _ in range(5):
        fail(parts, "a", error(400, "error_context_length.json"))
    row = parts.state("a")
    assert parts.usable("a") and row["health"] == "ok"
    assert row["errors"] == 5 and row["fails_this_minute"] == 0


async def test_a_connection_failure_counts_toward_cooldown(make, upstream) -> None:
    parts = primary_and_backup(make, allowed_fails=0)
    upstream.script("a", ConnectError("ClientConnectorError"))
    _, dep, trace = await parts.complete(chat())
    first = trace.attempts[0]
    assert first.status == 502 and first.reason == "connection failed (ConnectError)"
    assert dep.id == "b" and not parts.usable("a")


def test_reset_clears_a_cooldown(make) -> None:
    parts = two_keys(make, allowed_fails=0)
    fail(parts, "a", error(500))
    parts.pool.reset("a")
    assert parts.usable("a") and parts.state("a")["health"] == "ok"


def test_snapshot_reports_cooldown_times_on_the_wall_clock(make, clock) -> None:
    parts = two_keys(make)
    fail(parts, "a", error(429, "error_rate_limit.json", retry_after="30"))
    row = parts.state("a")
    assert row["cooldown_until"] == pytest.approx(clock.wall() + 30)
    assert row["last_error_at"] == pytest.approx(clock.wall())
    assert row["last_error"].startswith("429 openai answered 429: Rate limit reached")
    assert row["requests"] == 1 and row["errors"] == 1 and row["in_flight"] == 0
