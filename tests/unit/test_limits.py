"""rpm/tpm limits over a sliding minute, on the fake clock: the request past the limit waits
briefly or gets 429 with Retry-After, and goes through once the minute has moved on.
"""

from __future__ import annotations

import pytest

from proxy.errors import AllTargetsFailed
from proxy.routing.router import LIMIT_WAIT
from tests.unit.parts import chat, openai_dep
from tests.unit.scripted import error


def config(*deps, **router):
    return {"model_list": list(deps), "router_settings": {"num_retries": 2, **router}}


async def serve(parts, count, *, every=0.0, clock=None):
    """Runs `count` requests through the router, `every` seconds apart; returns who served."""
    served = []
    for _ in range(count):
        _, dep, _ = await parts.complete(chat())
        served.append(dep.id)
        if every:
            clock.advance(every)
    return served


async def test_rpm_5_sixth_request_gets_429_until_the_minute_passes(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo", rpm=5)))
    await serve(parts, 5, every=2.0, clock=clock)  # at t+0, 2, .., 8; now t+10
    err, trace = await parts.failure(chat())
    assert isinstance(err, AllTargetsFailed) and err.status == 429
    assert err.headers["Retry-After"] == "50"  # the first request leaves the window at t+60
    assert trace.attempts == [] and clock.sleeps == []
    assert len(upstream.calls) == 5
    assert parts.state("solo")["rpm_used"] == 5
    clock.advance(50.01)
    await parts.complete(chat())  # the t+0 request has left the window
    again, _ = await parts.failure(chat())  # ... but t+2 .. t+8 and this one remain
    assert again.status == 429 and again.headers["Retry-After"] == "2"
    assert len(upstream.calls) == 6


async def test_the_request_past_the_limit_waits_when_the_window_frees_soon(
    make, upstream, clock
) -> None:
    parts = make(config(openai_dep("gpt", "solo", rpm=5)))
    await serve(parts, 5)
    clock.advance(60 - LIMIT_WAIT / 2)
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "solo" and len(trace.attempts) == 1
    assert clock.sleeps == [pytest.approx(LIMIT_WAIT / 2)]
    assert len(upstream.calls) == 6


async def test_rpm_5_on_two_deployments_lets_10_pass(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a", rpm=5), openai_dep("gpt", "b", rpm=5)))
    served = await serve(parts, 10)
    assert sorted(served) == ["a"] * 5 + ["b"] * 5
    err, _ = await parts.failure(chat())
    assert err.status == 429 and len(upstream.calls) == 10


@pytest.mark.parametrize("where", ["router", "entry", "params"])
async def test_rpm_is_read_from_each_config_level(make, where) -> None:
    dep = openai_dep("gpt", "solo")
    doc = config(dep)
    if where == "router":
        doc["router_settings"]["rpm"] = 2
    elif where == "entry":
        dep["rpm"] = 2
    else:
        dep["litellm_params"]["rpm"] = 2
    parts = make(doc)
    await serve(parts, 2)
    err, _ = await parts.failure(chat())
    assert err.status == 429 and parts.state("solo")["rpm_limit"] == 2


async def test_a_failed_attempt_counts_toward_rpm(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "solo", rpm=2), num_retries=0))
    upstream.script("solo", error(500))
    await parts.failure(chat())
    await parts.complete(chat())
    err, _ = await parts.failure(chat())
    assert err.status == 429


async def test_tpm_counts_the_answers_tokens_over_a_sliding_minute(make, upstream, clock) -> None:
    # The recorded answer uses 29 tokens: two fit under 50, the third finds the window full.
    parts = make(config(openai_dep("gpt", "solo", tpm=50)))
    await parts.handle(chat())
    clock.advance(10)
    await parts.handle(chat())
    assert parts.state("solo")["tpm_used"] == 58
    with pytest.raises(AllTargetsFailed) as info:
        await parts.handle(chat())
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "50"
    assert len(upstream.calls) == 2
    clock.advance(50.01)  # the first answer's tokens have left the window
    assert parts.state("solo")["tpm_used"] == 29
    await parts.handle(chat())
    assert len(upstream.calls) == 3


async def test_a_request_waits_briefly_for_a_429_cooldown_to_lift(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo"), num_retries=0))
    upstream.script("solo", error(429, "error_rate_limit.json", retry_after="0.8"))
    first, _ = await parts.failure(chat())
    assert first.status == 429 and clock.sleeps == []
    _, dep, _ = await parts.complete(chat())
    assert dep.id == "solo" and clock.sleeps == [pytest.approx(0.8)]


async def test_a_long_429_cooldown_is_not_waited_for(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo"), num_retries=0))
    upstream.script("solo", error(429, "error_rate_limit.json", retry_after="30"))
    await parts.failure(chat())
    clock.advance(1)
    err, trace = await parts.failure(chat())
    assert err.status == 429 and err.headers["Retry-After"] == "29"
    assert trace.attempts == [] and clock.sleeps == []
