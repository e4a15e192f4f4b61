"""Routing strategies and `order` tiers, on KeyPool.choose with a seeded rng and a fake clock.

Random strategies are checked as bands over a few hundred picks (the seed makes each run the
same; the bands are wide enough to hold for any seed); deterministic ones exactly.
"""

from __future__ import annotations

from collections import Counter

import pytest

from proxy.providers.openai import OpenAIProvider
from tests.unit.parts import chat, openai_dep
from tests.unit.scripted import error, ok

PICKS = 400


def config(*deps, strategy="simple-shuffle", **router):
    return {"model_list": list(deps), "router_settings": {"routing_strategy": strategy, **router}}


def picks(parts, count=PICKS, *, begin=False, group="gpt"):
    """Asks the pool `count` times; with `begin`, each pick starts a request (counted by rpm)."""
    seen: Counter[str] = Counter()
    deps = parts.deps(group)
    for _ in range(count):
        st = parts.pool.choose(deps)
        assert st is not None
        if begin:
            parts.pool.begin(st)
            parts.pool.succeed(st, 10.0)
        seen[st.dep.id] += 1
    return seen


def rate_limit(parts, dep_id, seconds):
    """Cools `dep_id` with a 429 carrying Retry-After, as OpenAI sends it."""
    dep = parts.dep(dep_id)
    reply = error(429, "error_rate_limit.json", retry_after=str(seconds))
    err = OpenAIProvider().classify_error(dep, 429, reply.headers, reply.body)
    st = parts.pool.states[dep_id]
    parts.pool.begin(st)
    parts.pool.fail(st, err)


# ---- simple-shuffle ----


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_shuffle_spreads_equal_deployments_evenly(make, seed) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b")), seed=seed)
    seen = picks(parts)
    assert 160 <= seen["a"] <= 240 and seen["a"] + seen["b"] == PICKS


def test_shuffle_is_the_default_strategy(make) -> None:
    parts = make({"model_list": [openai_dep("gpt", "a"), openai_dep("gpt", "b")]})
    assert parts.config.router.routing_strategy == "simple-shuffle"
    assert 160 <= picks(parts)["a"] <= 240


def test_shuffle_follows_weights(make) -> None:
    parts = make(config(openai_dep("gpt", "a", weight=3), openai_dep("gpt", "b", weight=1)))
    assert 260 <= picks(parts)["a"] <= 340  # 3/4 of 400 = 300


def test_a_zero_weight_deployment_is_never_picked(make) -> None:
    parts = make(config(openai_dep("gpt", "a", weight=1), openai_dep("gpt", "b", weight=0)))
    assert picks(parts) == {"a": PICKS}


def test_shuffle_weighs_by_rpm_when_no_weight_is_set(make) -> None:
    deps = openai_dep("gpt", "a", rpm=30_000), openai_dep("gpt", "b", rpm=10_000)
    parts = make(config(*deps))
    assert 260 <= picks(parts)["a"] <= 340


def test_shuffle_weighs_by_tpm_when_no_weight_or_rpm_is_set(make) -> None:
    deps = openai_dep("gpt", "a", tpm=1_000), openai_dep("gpt", "b", tpm=4_000)
    parts = make(config(*deps))
    assert 40 <= picks(parts)["a"] <= 120  # 1/5 of 400 = 80


async def test_shuffle_through_the_router_spreads_requests(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a", weight=1), openai_dep("gpt", "b", weight=1)))
    served: Counter[str] = Counter()
    for _ in range(200):
        _, dep, _ = await parts.complete(chat())
        served[dep.id] += 1
    assert 75 <= served["a"] <= 125
    assert Counter(upstream.hosts()) == served
    assert parts.state("a")["in_flight"] == parts.state("b")["in_flight"] == 0


# ---- least-busy ----


def test_least_busy_sends_to_the_fewest_in_flight(make) -> None:
    deps = [openai_dep("gpt", name) for name in ("a", "b", "c")]
    parts = make(config(*deps, strategy="least-busy"))
    st = parts.pool.states
    parts.pool.begin(st["a"])
    parts.pool.begin(st["a"])
    parts.pool.begin(st["b"])
    assert picks(parts, 50) == {"c": 50}
    parts.pool.begin(st["c"])
    parts.pool.begin(st["c"])
    assert picks(parts, 50) == {"b": 50}


def test_least_busy_breaks_ties_at_random(make) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), strategy="least-busy"))
    assert 160 <= picks(parts)["a"] <= 240


def test_least_busy_counts_a_finished_request_as_free_again(make) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), strategy="least-busy"))
    a = parts.pool.states["a"]
    parts.pool.begin(a)
    assert picks(parts, 20) == {"b": 20}
    parts.pool.succeed(a, 12.0)
    assert set(picks(parts, 50)) == {"a", "b"}


# ---- latency-based-routing ----


def measure(parts, dep_id, latency_ms):
    st = parts.pool.states[dep_id]
    parts.pool.begin(st)
    parts.pool.succeed(st, latency_ms)


def test_latency_tries_an_unmeasured_deployment_first(make) -> None:
    deps = openai_dep("gpt", "fast"), openai_dep("gpt", "new")
    parts = make(config(*deps, strategy="latency-based-routing"))
    measure(parts, "fast", 5.0)
    assert picks(parts, 20) == {"new": 20}


def test_latency_prefers_the_fast_deployment_and_still_explores(make) -> None:
    deps = openai_dep("gpt", "fast"), openai_dep("gpt", "slow")
    parts = make(config(*deps, strategy="latency-based-routing"))
    measure(parts, "fast", 20.0)
    measure(parts, "slow", 400.0)
    seen = picks(parts)
    # 10% explore at random between the two: about 5% of picks go to the slow one.
    assert 4 <= seen["slow"] <= 40
    assert seen["fast"] + seen["slow"] == PICKS


def test_latency_measures_again_after_a_minute_without_samples(make, clock) -> None:
    deps = openai_dep("gpt", "fast"), openai_dep("gpt", "slow")
    parts = make(config(*deps, strategy="latency-based-routing"))
    measure(parts, "slow", 400.0)
    clock.advance(61)
    measure(parts, "fast", 20.0)
    # slow's only sample is over a minute old: it is measured again before being judged.
    assert picks(parts, 10) == {"slow": 10}


# ---- usage-based-routing ----


def test_usage_based_fills_by_share_of_rpm(make) -> None:
    deps = openai_dep("gpt", "small", rpm=10), openai_dep("gpt", "big", rpm=20)
    parts = make(config(*deps, strategy="usage-based-routing"))
    seen = picks(parts, 30, begin=True)
    assert seen == {"small": 10, "big": 20}
    assert parts.pool.choose(parts.deps()) is None  # both windows are full now
    assert parts.state("small")["rpm_used"] == 10 and parts.state("big")["rpm_used"] == 20


def test_usage_based_v2_fills_by_share_of_tpm(make) -> None:
    deps = openai_dep("gpt", "big", tpm=10_000), openai_dep("gpt", "small", tpm=1_000, weight=50)
    parts = make(config(*deps, strategy="usage-based-routing-v2"))
    pool = parts.pool
    pool.add_tokens(pool.states["big"], 2_000)  # 20% used
    pool.add_tokens(pool.states["small"], 100)  # 10% used
    assert picks(parts, 5) == {"small": 5}
    pool.add_tokens(pool.states["small"], 200)  # 30% used
    assert picks(parts, 5) == {"big": 5}
    assert parts.state("small")["tpm_used"] == 300


# ---- cost-based-routing ----


def priced(dep_id, per_million_in, per_million_out):
    return openai_dep(
        "gpt",
        dep_id,
        model_info={
            "input_cost_per_token": per_million_in / 1e6,
            "output_cost_per_token": per_million_out / 1e6,
        },
    )


def test_cost_based_uses_the_cheapest_until_it_is_unusable(make, clock) -> None:
    deps = priced("dear", 5.0, 15.0), priced("cheap", 0.1, 0.4), priced("mid", 1.0, 2.0)
    parts = make(config(*deps, strategy="cost-based-routing"))
    assert picks(parts, 50) == {"cheap": 50}
    rate_limit(parts, "cheap", 10)
    assert picks(parts, 50) == {"mid": 50}
    clock.advance(10.01)
    assert picks(parts, 50) == {"cheap": 50}


def test_cost_based_puts_unknown_prices_last(make) -> None:
    unknown = openai_dep("gpt", "unknown", model="openai/some-private-model")
    parts = make(config(unknown, priced("known", 9.0, 9.0), strategy="cost-based-routing"))
    assert picks(parts, 20) == {"known": 20}


# ---- order tiers ----


@pytest.mark.parametrize("strategy", ["simple-shuffle", "least-busy", "cost-based-routing"])
def test_order_uses_tier_one_until_none_is_usable(make, clock, strategy) -> None:
    deps = (
        openai_dep("gpt", "a", order=1),
        openai_dep("gpt", "backup", order=2),
        openai_dep("gpt", "c", order=1),
    )
    parts = make(config(*deps, strategy=strategy))
    assert set(picks(parts, 100)) <= {"a", "c"}
    rate_limit(parts, "a", 5)
    assert set(picks(parts, 20)) == {"c"}
    rate_limit(parts, "c", 8)
    assert picks(parts, 20) == {"backup": 20}
    clock.advance(5.01)  # a is back: tier 1 wins again
    assert picks(parts, 20) == {"a": 20}


async def test_order_tier_two_serves_through_the_router_when_tier_one_fails(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a", order=1), openai_dep("gpt", "backup", order=2)))
    upstream.script("a", error(500))
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "backup"
    assert [(a.deployment, a.status) for a in trace.attempts] == [("a", 500), ("backup", 200)]


async def test_latency_routing_learns_from_measured_answers(make, upstream) -> None:
    deps = openai_dep("gpt", "fast"), openai_dep("gpt", "slow")
    parts = make(config(*deps, strategy="latency-based-routing"))
    upstream.answer_always("fast", ok_taking(0.05))
    upstream.answer_always("slow", ok_taking(0.8))
    served: Counter[str] = Counter()
    for _ in range(200):
        _, dep, _ = await parts.complete(chat())
        served[dep.id] += 1
    assert served["fast"] >= 170
    assert parts.state("fast")["latency_p50_ms"] == pytest.approx(50)
    assert parts.state("slow")["latency_p50_ms"] == pytest.approx(800)


def ok_taking(seconds):
    reply = ok()
    reply.takes = seconds
    return reply
