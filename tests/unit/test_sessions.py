"""Sticky sessions: a request naming an agent session stays on the deployment that served the
session while that one is usable, per group; the map is bounded (LRU, TTL on the fake clock).
"""

from __future__ import annotations

from collections import Counter

import pytest

from proxy.providers.openai import OpenAIProvider
from proxy.routing.sessions import MAX_SESSION_CHARS, SESSION_TTL, SessionMap
from tests.unit.parts import chat, openai_dep
from tests.unit.scripted import error, ok_stream

DEPS = ("a", "b", "c", "d")


def config(*deps, strategy="simple-shuffle", **router):
    deps = deps or tuple(openai_dep("gpt", d) for d in DEPS)
    settings = {"routing_strategy": strategy, "num_retries": 2, **router}
    return {"model_list": list(deps), "router_settings": settings}


def in_session(session, model="gpt", **kw):
    req = chat(model, **kw)
    req.session = session
    return req


async def served(parts, count, session=None, model="gpt"):
    """Sends `count` requests one after another; returns the deployment ids in order."""
    out = []
    for _ in range(count):
        _, dep, _ = await parts.complete(in_session(session, model))
        out.append(dep.id)
    return out


def rate_limit(parts, dep_id, seconds):
    """Cools `dep_id` with a 429 carrying Retry-After, as OpenAI sends it."""
    reply = error(429, "error_rate_limit.json", retry_after=str(seconds))
    err = OpenAIProvider().classify_error(parts.dep(dep_id), 429, reply.headers, reply.body)
    st = parts.pool.states[dep_id]
    parts.pool.begin(st)
    parts.pool.fail(st, err)


class FakeShared:
    """The two SharedState hooks sessions use, as another instance's Redis would answer."""

    kind = "fake"

    def __init__(self, known=None):
        self.known = dict(known or {})
        self.puts = []
        self.gets = 0

    async def get_session(self, key):
        self.gets += 1
        return self.known.get(key)

    def put_session(self, key, dep_id, ttl):
        self.puts.append((key, dep_id, ttl))
        self.known[key] = dep_id


# ---- staying ----


@pytest.mark.parametrize("seed", [1, 7, 42])
async def test_a_session_stays_on_one_deployment_under_shuffle(make, seed) -> None:
    parts = make(config(), seed=seed)
    first, *rest = await served(parts, 50, "sess-1")
    assert rest == [first] * 49
    assert len(set(await served(parts, 50))) > 1  # no session: the shuffle spreads as before


async def test_sessions_spread_but_each_sticks(make) -> None:
    parts = make(config())
    homes = {}
    for i in range(40):
        homes[f"s{i}"] = (await served(parts, 1, f"s{i}"))[0]
    assert len(set(homes.values())) > 1  # new sessions are placed by the strategy
    for session, home in homes.items():
        assert await served(parts, 3, session) == [home] * 3
    placed = Counter(homes.values())
    assert {d: parts.state(d)["sessions"] for d in DEPS} == {d: placed[d] for d in DEPS}
    assert len(parts.pool.sessions) == 40


@pytest.mark.parametrize("strategy", ["least-busy", "latency-based-routing", "usage-based-routing"])
async def test_a_session_sticks_under_other_strategies(make, strategy) -> None:
    parts = make(config(strategy=strategy))
    first, *rest = await served(parts, 30, "sess-1")
    assert rest == [first] * 29


async def test_a_stream_keeps_its_session(make, upstream) -> None:
    parts = make(config())
    homes = []
    for _ in range(10):
        for dep in DEPS:
            upstream.script(dep, ok_stream())
        answer = await parts.handle(in_session("sess-s", stream=True))
        _ = [piece async for piece in answer.stream]
        homes.append(answer.headers["x-llmproxy-deployment"])
    assert homes == [homes[0]] * 10


# ---- moving ----


async def test_a_cooled_sticky_deployment_moves_the_session_which_then_stays(
    make, upstream, clock
) -> None:
    parts = make(config())
    (home,) = await served(parts, 1, "sess-1")
    upstream.script(home, error(429, "error_rate_limit.json", retry_after="30"))
    _, dep, trace = await parts.complete(in_session("sess-1"))
    assert [a.deployment for a in trace.attempts] == [home, dep.id] and dep.id != home
    moved = dep.id
    assert parts.state(home)["health"] == "cooling_down"
    assert await served(parts, 20, "sess-1") == [moved] * 20
    clock.advance(31)  # the old home is usable again; the session stays where its cache is
    assert parts.state(home)["health"] == "ok"
    assert await served(parts, 20, "sess-1") == [moved] * 20


async def test_a_sticky_deployment_cooled_before_the_request_is_not_tried(make, upstream) -> None:
    parts = make(config())
    (home,) = await served(parts, 1, "sess-1")
    rate_limit(parts, home, 30)
    _, dep, trace = await parts.complete(in_session("sess-1"))
    assert dep.id != home and [a.deployment for a in trace.attempts] == [dep.id]
    assert await served(parts, 10, "sess-1") == [dep.id] * 10


async def test_a_failed_sticky_attempt_is_retried_elsewhere_and_moves(make, upstream) -> None:
    parts = make(config())
    (home,) = await served(parts, 1, "sess-1")
    upstream.script(home, error(500))  # one failure: not cooled (allowed_fails), but excluded
    _, dep, trace = await parts.complete(in_session("sess-1"))
    assert [a.deployment for a in trace.attempts] == [home, dep.id]
    assert parts.state(home)["health"] == "failing"
    assert await served(parts, 10, "sess-1") == [dep.id] * 10


async def test_a_disabled_or_rejected_sticky_deployment_moves(make, upstream) -> None:
    parts = make(config())
    (home,) = await served(parts, 1, "sess-1")
    parts.pool.set_disabled(home, True)
    (second,) = await served(parts, 1, "sess-1")
    assert second != home
    upstream.script(second, error(401, "error_invalid_api_key.json"))
    _, dep, trace = await parts.complete(in_session("sess-1"))
    assert dep.id not in (home, second) and trace.attempts[0].deployment == second
    assert parts.state(second)["health"] == "key_rejected"


async def test_a_sticky_deployment_at_its_rpm_limit_moves(make) -> None:
    deps = [openai_dep("gpt", d, rpm=5) for d in DEPS]
    parts = make(config(*deps))
    first = await served(parts, 5, "sess-1")
    assert first == [first[0]] * 5
    (sixth,) = await served(parts, 1, "sess-1")
    assert sixth != first[0]


async def test_order_tiers_win_over_a_session(make, clock) -> None:
    deps = [openai_dep("gpt", "a", order=1), openai_dep("gpt", "b", order=2)]
    parts = make(config(*deps, cooldown_time=5))
    assert await served(parts, 2, "sess-1") == ["a", "a"]
    rate_limit(parts, "a", 10)
    assert await served(parts, 2, "sess-1") == ["b", "b"]
    clock.advance(11)  # the primary is back: its tier comes first, and the session follows
    assert await served(parts, 2, "sess-1") == ["a", "a"]


async def test_each_group_keeps_its_own_deployment_for_a_session(make, upstream) -> None:
    deps = [openai_dep("gpt", "a"), openai_dep("gpt", "b"),
            openai_dep("backup", "x"), openai_dep("backup", "y")]  # fmt: skip
    parts = make(config(*deps, fallbacks=[{"gpt": ["backup"]}]))
    gpt = await served(parts, 5, "sess-1")
    backup = await served(parts, 5, "sess-1", model="backup")
    assert gpt == [gpt[0]] * 5 and backup == [backup[0]] * 5
    for dep in ("a", "b"):
        rate_limit(parts, dep, 30)
    _, dep, trace = await parts.complete(in_session("sess-1"))
    assert dep.id == backup[0] and trace.fallback == "backup"  # the fallback's own sticky one
    assert parts.pool.sessions.get("gpt", "sess-1") == gpt[0]


# ---- off, or no session ----


async def test_sticky_sessions_false_spreads_a_session(make) -> None:
    parts = make(config(sticky_sessions=False))
    assert parts.pool.sessions is None
    seen = Counter(await served(parts, 200, "sess-1"))
    assert set(seen) == set(DEPS) and all(30 <= n <= 70 for n in seen.values())
    assert {parts.state(d)["sessions"] for d in DEPS} == {0}


async def test_no_session_picks_exactly_as_with_sticky_sessions_off(make) -> None:
    on = make(config(), seed=11)
    off = make(config(sticky_sessions=False), seed=11)
    picks_on = await served(on, 100)
    assert picks_on == await served(off, 100)
    assert len(on.pool.sessions) == 0


# ---- the map: bounded, expiring ----


def test_the_map_forgets_the_least_recently_used_past_its_bound(clock) -> None:
    sessions = SessionMap(clock=clock, max_entries=3)
    for i in range(3):
        sessions.remember("gpt", f"s{i}", "a")
    sessions.remember("gpt", "s0", "a")  # used again: now the most recent
    sessions.remember("gpt", "s3", "b")
    assert len(sessions) == 3
    assert sessions.get("gpt", "s1") is None
    assert [sessions.get("gpt", s) for s in ("s0", "s2", "s3")] == ["a", "a", "b"]
    assert (sessions.count("a"), sessions.count("b")) == (2, 1)


def test_an_entry_expires_an_hour_after_its_last_use(clock) -> None:
    sessions = SessionMap(clock=clock)
    sessions.remember("gpt", "s1", "a")
    sessions.remember("gpt", "s2", "b")
    clock.advance(SESSION_TTL - 1)
    sessions.remember("gpt", "s1", "a")  # used: its hour starts again
    clock.advance(2)
    assert sessions.get("gpt", "s2") is None and sessions.count("b") == 0
    assert sessions.get("gpt", "s1") == "a"
    clock.advance(SESSION_TTL)
    assert sessions.get("gpt", "s1") is None and len(sessions) == 0


async def test_an_expired_session_is_placed_again(make, clock) -> None:
    parts = make(config())
    await served(parts, 3, "sess-1")
    assert len(parts.pool.sessions) == 1
    clock.advance(SESSION_TTL + 1)
    assert parts.pool.sessions.get("gpt", "sess-1") is None
    await served(parts, 1, "sess-1")
    assert len(parts.pool.sessions) == 1


def test_a_moved_session_counts_on_its_new_deployment(clock) -> None:
    sessions = SessionMap(clock=clock)
    sessions.remember("gpt", "s1", "a")
    sessions.remember("gpt", "s1", "b")
    assert (sessions.count("a"), sessions.count("b"), len(sessions)) == (0, 1, 1)


def test_a_long_session_id_is_kept_short(clock) -> None:
    sessions = SessionMap(clock=clock)
    long_id = "x" * 10_000
    sessions.remember("gpt", long_id, "a")
    assert sessions.get("gpt", long_id) == "a" and sessions.get("gpt", "x" * 9_999) is None
    ((_, session),) = sessions._entries
    assert len(session) <= MAX_SESSION_CHARS


# ---- shared with other instances ----


async def test_the_shared_state_is_asked_only_when_the_local_map_has_no_usable_answer(
    clock,
) -> None:
    shared = FakeShared()
    sessions = SessionMap(shared, clock=clock)
    assert await sessions.lookup("gpt", "s1", lambda _d: True) is None and shared.gets == 1
    sessions.remember("gpt", "s1", "a")
    ((key, dep, ttl),) = shared.puts
    assert (dep, ttl) == ("a", SESSION_TTL)
    assert await sessions.lookup("gpt", "s1", lambda _d: True) == "a" and shared.gets == 1
    shared.known[key] = "b"  # another instance moved the session when `a` cooled down
    assert await sessions.lookup("gpt", "s1", lambda d: d != "a") == "b" and shared.gets == 2


async def test_a_session_another_instance_placed_is_followed(make, clock) -> None:
    redis = FakeShared()
    SessionMap(redis, clock=clock).remember("gpt", "sess-1", "c")  # the other instance
    parts = make(config())
    parts.pool.sessions = SessionMap(redis, clock=clock)
    assert await served(parts, 5, "sess-1") == ["c"] * 5
    assert redis.gets == 1  # then this instance's own map answers


def test_an_unchanged_entry_is_shared_again_only_now_and_then(clock) -> None:
    shared = FakeShared()
    sessions = SessionMap(shared, clock=clock)
    for _ in range(100):
        sessions.remember("gpt", "s1", "a")
        clock.advance(1)
    assert len(shared.puts) == 1  # the first; the TTL in Redis is renewed every 6 minutes
    clock.advance(SESSION_TTL / 10)
    sessions.remember("gpt", "s1", "a")
    sessions.remember("gpt", "s1", "b")  # a move is shared at once
    assert [dep for _, dep, _ in shared.puts] == ["a", "a", "b"]
