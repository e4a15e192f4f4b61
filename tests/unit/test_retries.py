"""Retries, backoff, fallbacks and the exhaustion error, through Router.complete/open_stream.

The fake sleep records every wait the router makes, so a wait is asserted, never waited for.
"""

from __future__ import annotations

import pytest

from proxy.errors import AllTargetsFailed, ContextWindowExceeded, UpstreamError
from proxy.routing.router import MAX_GROUPS, MAX_RETRY_WAIT
from tests.unit.parts import anthropic_dep, chat, openai_dep
from tests.unit.scripted import Hang, Reply, error, sse_from_jsonl


def config(*deps, fallbacks=None, context=None, litellm=None, **router):
    settings = {"num_retries": 2, "allowed_fails": 10, "cooldown_time": 5, **router}
    if fallbacks:
        settings["fallbacks"] = [{k: v} for k, v in fallbacks.items()]
    if context:
        settings["context_window_fallbacks"] = [{k: v} for k, v in context.items()]
    doc = {"model_list": list(deps), "router_settings": settings}
    if litellm:
        doc["litellm_settings"] = litellm
    return doc


def primary_and_backup(**router):
    return config(openai_dep("gpt", "a", order=1), openai_dep("gpt", "b", order=2), **router)


def tried(trace_or_error):
    return [(a.deployment, a.status) for a in trace_or_error.attempts]


# ---- moving on, and waiting ----


async def test_a_retryable_failure_moves_to_another_deployment_at_once(
    make, upstream, clock
) -> None:
    parts = make(primary_and_backup())
    upstream.script("a", error(500))
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "b"
    assert tried(trace) == [("a", 500), ("b", 200)]
    assert clock.sleeps == []


async def test_the_only_deployment_is_retried_after_a_backoff(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo")))
    upstream.script("solo", error(500), error(502))
    _, dep, trace = await parts.complete(chat())
    assert tried(trace) == [("solo", 500), ("solo", 502), ("solo", 200)]
    assert len(clock.sleeps) == 2
    assert all(0 < wait <= MAX_RETRY_WAIT for wait in clock.sleeps)


async def test_the_retry_after_setting_is_the_least_wait(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo"), retry_after=1.5))
    upstream.script("solo", error(500))
    await parts.complete(chat())
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 1.5


async def test_a_retry_waits_out_the_upstream_retry_after(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo")))
    upstream.script("solo", error(429, "error_rate_limit.json", retry_after="3"))
    started = clock()
    _, _, trace = await parts.complete(chat())
    assert tried(trace) == [("solo", 429), ("solo", 200)]
    assert len(clock.sleeps) == 1 and 3 <= clock.sleeps[0] < 3.5
    assert clock() - started >= 3


async def test_no_wait_runs_past_the_deadline(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo"), timeout=2))
    upstream.script("solo", error(429, "error_rate_limit.json", retry_after="5"))
    err, trace = await parts.failure(chat())
    assert clock.sleeps == []
    assert isinstance(err, AllTargetsFailed) and err.status == 429
    assert err.headers["Retry-After"] == "5"
    assert tried(trace) == [("solo", 429)]


async def test_request_timeout_sets_the_deadline_too(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo"), litellm={"request_timeout": 1}, retry_after=2))
    upstream.script("solo", error(500))
    err, _ = await parts.failure(chat())
    assert clock.sleeps == [] and err.status == 502


async def test_a_wait_longer_than_the_retry_cap_is_not_made(make, upstream, clock) -> None:
    parts = make(config(openai_dep("gpt", "solo")))
    wait = str(int(MAX_RETRY_WAIT) + 20)
    upstream.script("solo", error(429, "error_rate_limit.json", retry_after=wait))
    err, _ = await parts.failure(chat())
    assert clock.sleeps == []
    assert err.status == 429 and err.headers["Retry-After"] == wait


# ---- how many tries ----


@pytest.mark.parametrize(("max_retries", "calls"), [(0, 1), (1, 2), (None, 4)])
async def test_per_deployment_max_retries(make, upstream, max_retries, calls) -> None:
    params = {} if max_retries is None else {"max_retries": max_retries}
    parts = make(config(openai_dep("gpt", "solo", **params), num_retries=3))
    upstream.answer_always("solo", error(500))
    err, trace = await parts.failure(chat())
    assert err.status == 502
    assert upstream.hosts() == ["solo"] * calls
    assert len(trace.attempts) == calls


async def test_num_retries_zero_tries_once_per_group(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b"), num_retries=0))
    upstream.answer_always("a", error(500))
    upstream.answer_always("b", error(500))
    err, trace = await parts.failure(chat())
    assert len(upstream.calls) == 1 and len(trace.attempts) == 1


async def test_litellm_settings_num_retries_is_used_when_the_router_has_none(
    make, upstream
) -> None:
    doc = {
        "model_list": [openai_dep("gpt", "solo")],
        "router_settings": {"allowed_fails": 10},
        "litellm_settings": {"num_retries": 1},
    }
    parts = make(doc)
    upstream.answer_always("solo", error(500))
    await parts.failure(chat())
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_request_error_is_not_retried(make, upstream, clock, status) -> None:
    parts = make(primary_and_backup())
    upstream.script("a", error(status))
    err, _ = await parts.failure(chat())
    assert isinstance(err, UpstreamError) and not err.retryable
    assert err.status == status
    assert upstream.hosts() == ["a"] and clock.sleeps == []
    assert parts.state("a")["in_flight"] == 0 and parts.state("a")["health"] == "ok"


async def test_a_timeout_is_not_retried_on_the_same_deployment(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "solo", timeout=0.01), num_retries=3))
    upstream.script("solo", Hang())
    err, trace = await parts.failure(chat())
    assert err.status == 504 and err.code == "upstream_timeout"
    assert tried(trace) == [("solo", 504)] and trace.attempts[0].reason == "timeout"


# ---- fallbacks ----


async def test_fallbacks_chain_and_never_loop(make, upstream) -> None:
    deps = openai_dep("gpt", "a"), openai_dep("claude", "c"), openai_dep("other", "o")
    fallbacks = {"gpt": ["claude"], "claude": ["gpt", "other"]}
    parts = make(config(*deps, fallbacks=fallbacks, num_retries=0))
    upstream.answer_always("a", error(500))
    upstream.answer_always("c", error(503))
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "o" and trace.fallback == "other"
    assert upstream.hosts() == ["a", "c", "o"]
    assert [a.group for a in trace.attempts] == ["gpt", "claude", "other"]


async def test_a_fallback_cycle_that_all_fails_tries_each_group_once(make, upstream) -> None:
    deps = openai_dep("gpt", "a"), openai_dep("claude", "c")
    parts = make(config(*deps, fallbacks={"gpt": ["claude"], "claude": ["gpt"]}, num_retries=0))
    upstream.answer_always("a", error(500))
    upstream.answer_always("c", error(500))
    err, _ = await parts.failure(chat())
    assert isinstance(err, AllTargetsFailed)
    assert upstream.hosts() == ["a", "c"]
    assert [(a.deployment, a.group) for a in err.attempts] == [("a", "gpt"), ("c", "claude")]


async def test_a_long_fallback_chain_stops_at_max_groups(make, upstream) -> None:
    names = [f"g{i}" for i in range(MAX_GROUPS + 3)]
    deps = [openai_dep(name, name) for name in names]
    chain = {name: [nxt] for name, nxt in zip(names, names[1:], strict=False)}
    parts = make(config(*deps, fallbacks=chain, num_retries=0))
    for name in names:
        upstream.answer_always(name, error(500))
    err, _ = await parts.failure(chat("g0"))
    assert upstream.hosts() == names[:MAX_GROUPS]
    assert err.status == 502


async def test_a_fallback_is_not_used_for_a_request_error(make, upstream) -> None:
    deps = openai_dep("gpt", "a"), openai_dep("other", "o")
    parts = make(config(*deps, fallbacks={"gpt": ["other"]}))
    upstream.script("a", error(400))
    err, _ = await parts.failure(chat())
    assert err.status == 400 and upstream.hosts() == ["a"]


async def test_a_context_error_switches_to_context_window_fallbacks(make, upstream) -> None:
    deps = openai_dep("gpt", "a"), openai_dep("long", "l"), openai_dep("other", "o")
    parts = make(config(*deps, fallbacks={"gpt": ["other"]}, context={"gpt": ["long"]}))
    upstream.script("a", error(400, "error_context_length.json"))
    _, dep, trace = await parts.complete(chat())
    assert dep.id == "l" and trace.fallback == "long"
    assert upstream.hosts() == ["a", "l"]
    assert parts.state("a")["health"] == "ok"  # the request's fault, not the deployment's


async def test_a_context_error_without_a_context_fallback_is_400(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b")))
    upstream.script("a", error(400, "error_context_length.json"))
    upstream.script("b", error(400, "error_context_length.json"))
    err, _ = await parts.failure(chat())
    assert isinstance(err, ContextWindowExceeded)
    assert err.status == 400 and err.code == "context_length_exceeded"
    assert len(upstream.calls) == 1  # not retried on the other deployment


async def test_max_input_tokens_skips_to_the_context_fallback_without_a_call(
    make, upstream
) -> None:
    small = openai_dep("gpt", "small", model_info={"max_input_tokens": 10})
    parts = make(config(small, openai_dep("long", "l"), context={"gpt": ["long"]}))
    _, dep, _ = await parts.complete(chat(text="word " * 100))
    assert dep.id == "l" and upstream.hosts() == ["l"]
    _, dep, _ = await parts.complete(chat(text="short"))
    assert dep.id == "small"


# ---- the exhaustion error ----


async def test_all_rate_limited_is_429_with_the_soonest_retry_after(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a"), openai_dep("gpt", "b")))
    upstream.script("a", error(429, "error_rate_limit.json", retry_after="20"))
    upstream.script("b", error(429, "error_rate_limit.json", retry_after="30"))
    err, _ = await parts.failure(chat())
    assert isinstance(err, AllTargetsFailed)
    assert (
        err.status == 429 and err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    )
    assert err.headers["Retry-After"] == "20"
    assert err.headers["x-should-retry"] == "false"
    assert sorted(tried(err)) == [("a", 429), ("b", 429)]
    assert {a.reason for a in err.attempts} == {"rate limited"}


@pytest.mark.parametrize(
    ("statuses", "status", "code"),
    [
        ((500, 500), 502, "upstream_error"),
        ((429, 500), 502, "upstream_error"),
        ((503, 503), 503, "upstream_overloaded"),
    ],
)
async def test_the_exhaustion_status(make, upstream, statuses, status, code) -> None:
    parts = make(primary_and_backup(num_retries=1))
    upstream.answer_always("a", error(statuses[0]))
    upstream.answer_always("b", error(statuses[1]))
    err, _ = await parts.failure(chat())
    assert isinstance(err, AllTargetsFailed)
    assert (err.status, err.code) == (status, code)
    assert tried(err) == [("a", statuses[0]), ("b", statuses[1])]
    message = f"a: {statuses[0]}"
    assert err.message.startswith("All deployments for 'gpt' failed (") and message in err.message


async def test_all_timed_out_is_504(make, upstream) -> None:
    deps = openai_dep("gpt", "a", timeout=0.01), openai_dep("gpt", "b", timeout=0.01)
    parts = make(config(*deps))
    upstream.script("a", Hang())
    upstream.script("b", Hang())
    err, _ = await parts.failure(chat())
    assert (err.status, err.code) == (504, "upstream_timeout")
    assert sorted(tried(err)) == [("a", 504), ("b", 504)]


async def test_anthropic_overload_everywhere_is_503_never_529(make, upstream) -> None:
    parts = make(
        config(anthropic_dep("claude", "c1"), anthropic_dep("claude", "c2"), num_retries=1)
    )
    overloaded = error(529, "error_overloaded.json", vendor="anthropic")
    upstream.answer_always("c1", overloaded)
    upstream.answer_always("c2", overloaded)
    err, _ = await parts.failure(chat("claude"))
    assert err.status == 503 and err.code == "upstream_overloaded"
    assert {a.status for a in err.attempts} == {529}


async def test_nothing_usable_before_any_attempt_is_503_without_a_call(make, upstream) -> None:
    parts = make(config(openai_dep("gpt", "a"), allowed_fails=0, num_retries=0))
    upstream.script("a", error(500))
    await parts.failure(chat())
    err, _ = await parts.failure(chat())  # a is cooling down (not a 429)
    assert isinstance(err, AllTargetsFailed) and err.attempts == []
    assert (err.status, err.code) == (503, "no_deployment_available")
    assert "none is usable right now" in err.message
    assert len(upstream.calls) == 1


async def test_attempts_are_listed_in_order_without_keys(make, upstream) -> None:
    parts = make(primary_and_backup(num_retries=1))
    upstream.answer_always("a", error(401, "error_invalid_api_key.json"))
    upstream.answer_always("b", error(500))
    err, _ = await parts.failure(chat())
    rows = [a.as_dict() for a in err.attempts]
    assert [(r["deployment"], r["status"], r["reason"]) for r in rows] == [
        ("a", 401, "key rejected"),
        ("b", 500, "server error"),
    ]
    assert set(rows[0]) == {"deployment", "group", "status", "reason", "latency_ms"}
    for dep in parts.config.deployments:
        assert dep.key.reveal() not in err.message


# ---- streams ----


async def test_a_stream_whose_first_event_is_an_error_moves_on(make, upstream) -> None:
    parts = make(primary_and_backup())
    first_error = Reply(200, events=sse_from_jsonl("openai", "stream_error_first.jsonl"))
    upstream.script("a", first_error)
    req = chat(stream=True)
    trace = parts.router.trace(req)
    opened = await parts.router.open_stream(req, trace)
    try:
        assert opened.dep.id == "b" and opened.first
        # The recorded error event carries no status: it reads as a bad gateway.
        assert tried(trace) == [("a", 502), ("b", 200)]
    finally:
        await opened.close()
    assert upstream.closed == upstream.opened == 2  # the failed response was closed too


async def test_a_stream_that_ends_before_any_chunk_is_retried(make, upstream) -> None:
    parts = make(primary_and_backup())
    upstream.script("a", Reply(200, events=[b": keep-alive\n\n"]))
    req = chat(stream=True)
    trace = parts.router.trace(req)
    opened = await parts.router.open_stream(req, trace)
    await opened.close()
    assert opened.dep.id == "b" and tried(trace) == [("a", 502), ("b", 200)]


async def test_a_stream_error_status_falls_back_to_another_group(make, upstream) -> None:
    deps = openai_dep("gpt", "a"), anthropic_dep("claude", "c")
    parts = make(config(*deps, fallbacks={"gpt": ["claude"]}, num_retries=0))
    upstream.script("a", error(503))
    req = chat(stream=True)
    trace = parts.router.trace(req)
    opened = await parts.router.open_stream(req, trace)
    await opened.close()
    assert opened.dep.id == "c" and trace.fallback == "claude"
    assert upstream.calls[1].url == "http://c.test/v1/messages" and upstream.calls[1].stream
