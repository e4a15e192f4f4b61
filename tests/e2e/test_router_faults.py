"""Issue 3 end to end: deployment health, retries, fallbacks, timeouts and stream failures.

Each test runs a real proxy in-process against the scripted fake upstream and drives it with
the openai SDK (or httpx when the raw answer matters). Cooldowns and timeouts are short.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, anthropic_deployment, openai_deployment
from tests.fakes.upstream import (
    drop,
    error,
    hang,
    overloaded,
    rate_limit,
    reply,
    stream_cut,
    stream_error_first,
)

KEY_A = "sk-upstream-key-aaaa"
KEY_B = "sk-upstream-key-bbbb"
KEY_C = "sk-anthropic-key-cccc"
HELLO = [{"role": "user", "content": "Hello there"}]


def pair(fake: Any, *, a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> list:
    """Two deployments of group `gpt`: `a` (tier 1, tried first) and `b` (tier 2)."""
    return [
        openai_deployment("gpt", fake, KEY_A, id="a", order=1, **(a or {})),
        openai_deployment("gpt", fake, KEY_B, id="b", order=2, **(b or {})),
    ]


def config(deps: list, **router: Any) -> dict[str, Any]:
    settings = {"num_retries": 2, "cooldown_time": 1, "allowed_fails": 3, **router}
    return {"model_list": deps, "router_settings": settings}


def chat(proxy: Any, model: str = "gpt", **kw: Any) -> httpx.Response:
    with proxy.client() as c:
        return c.post(
            "/v1/chat/completions", json={"model": model, "messages": HELLO, **kw}, timeout=30
        )


def served_by(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-llmproxy-deployment"]


# ---- the seed's paragraph ----


def test_429_moves_to_the_other_key_and_cools_for_retry_after(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake)), master_key=MASTER_KEY)
    fake.script(rate_limit(2), key=KEY_A)
    first = chat(proxy)
    assert served_by(first) == "b"
    assert first.headers["x-llmproxy-attempts"] == "2"
    a = proxy.deployment("a")
    assert a["health"] == "cooling_down"
    assert 1.0 < a["cooldown_remaining_s"] <= 2.0
    assert a["key"].endswith("aaaa") and KEY_A not in str(proxy.state())
    assert served_by(chat(proxy)) == "b"  # still cooling: not even tried
    assert len(fake.calls(key=KEY_A)) == 1
    time.sleep(2.1)
    assert served_by(chat(proxy)) == "a"  # the cooldown ran out: back in tier 1
    assert proxy.deployment("a")["health"] == "ok"


def test_retry_after_ms_and_reset_headers_set_the_cooldown(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake), cooldown_time=30), master_key=MASTER_KEY)
    fake.script(rate_limit(0.4, ms=True), key=KEY_A)
    assert served_by(chat(proxy)) == "b"
    assert proxy.deployment("a")["cooldown_remaining_s"] <= 0.4
    time.sleep(0.5)
    fake.script(rate_limit(3, reset_headers=True), key=KEY_A)
    assert served_by(chat(proxy)) == "b"
    assert 2.0 < proxy.deployment("a")["cooldown_remaining_s"] <= 3.0


def test_both_keys_fail_then_the_fallback_provider_serves(fake, start_proxy) -> None:
    deps = [*pair(fake), anthropic_deployment("claude", fake, KEY_C, id="c")]
    proxy = start_proxy(
        config(deps, num_retries=1, fallbacks=[{"gpt": ["claude"]}]), master_key=MASTER_KEY
    )
    fake.script(error(500), key=KEY_A)
    fake.script(rate_limit(5), key=KEY_B)
    started = time.monotonic()
    with proxy.openai() as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    assert time.monotonic() - started < 1.5  # moved on without sleeping
    assert raw.headers["x-llmproxy-fallback"] == "claude"
    assert raw.headers["x-llmproxy-deployment"] == "c"
    assert raw.headers["x-llmproxy-provider"] == "anthropic"
    assert raw.parse().choices[0].message.content
    assert [s.key for s in fake.requests] == [KEY_A, KEY_B, KEY_C]


def test_everything_fails_502_lists_every_attempt(fake, start_proxy) -> None:
    deps = [*pair(fake), anthropic_deployment("claude", fake, KEY_C, id="c")]
    proxy = start_proxy(
        config(deps, num_retries=1, fallbacks=[{"gpt": ["claude"]}]), master_key=MASTER_KEY
    )
    fake.script(error(500), key=KEY_A)
    fake.script(error(503), key=KEY_B)
    fake.script(overloaded(), overloaded(), key=KEY_C)
    response = chat(proxy)
    assert response.status_code in (502, 503)
    err = response.json()["error"]
    for dep_id in ("a: 500", "b: 503", "c: 529"):
        assert dep_id in err["message"]
    for key in (KEY_A, KEY_B, KEY_C):
        assert key not in response.text and key[-8:] not in response.text
    assert set(err) == {"message", "type", "param", "code"}


def test_everything_rate_limited_is_429_with_retry_after(fake, start_proxy) -> None:
    deps = [*pair(fake), anthropic_deployment("claude", fake, KEY_C, id="c")]
    proxy = start_proxy(
        config(deps, num_retries=1, fallbacks=[{"gpt": ["claude"]}]), master_key=MASTER_KEY
    )
    fake.script(rate_limit(20), key=KEY_A)
    fake.script(rate_limit(20), key=KEY_B)
    fake.script(rate_limit(15), key=KEY_C)  # longer than the router would wait to retry
    started = time.monotonic()
    response = chat(proxy)
    assert time.monotonic() - started < 3.0  # no 15 s wait before giving up
    assert response.status_code == 429
    assert 15 <= int(response.headers["retry-after"]) <= 20
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert len(fake.requests) == 3


def test_anthropic_overload_everywhere_is_503_never_529(fake, start_proxy) -> None:
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="c1"),
        anthropic_deployment("claude", fake, KEY_B, id="c2"),
    ]
    proxy = start_proxy(config(deps, num_retries=1), master_key=MASTER_KEY)
    fake.script(overloaded(), key=KEY_A)
    fake.script(overloaded(), key=KEY_B)
    response = chat(proxy, "claude")
    assert response.status_code == 503
    assert "529" in response.json()["error"]["message"]


def test_sdk_retries_are_not_multiplied(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake), num_retries=1), master_key=MASTER_KEY)
    fake.set_default(error(500))
    client = openai.OpenAI(base_url=proxy.base, api_key=MASTER_KEY, max_retries=3)
    with client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt", messages=HELLO)
    assert len(fake.requests) == 2  # our 1 retry; the SDK's 3 did not multiply them


# ---- health rules ----


def test_allowed_fails_are_counted_per_minute_then_cooldown_expires(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake), allowed_fails=1), master_key=MASTER_KEY)
    fake.script(error(500), error(502), key=KEY_A)
    assert served_by(chat(proxy)) == "b"
    a = proxy.deployment("a")
    assert (a["health"], a["fails_this_minute"]) == ("failing", 1)
    assert a["last_error"].startswith("500")
    assert served_by(chat(proxy)) == "b"
    assert proxy.deployment("a")["health"] == "cooling_down"
    assert served_by(chat(proxy)) == "b"
    assert len(fake.calls(key=KEY_A)) == 2
    time.sleep(1.1)
    assert served_by(chat(proxy)) == "a"
    a = proxy.deployment("a")
    assert (a["health"], a["fails_this_minute"]) == ("ok", 0)


def test_request_errors_do_not_count_and_are_not_retried(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake), allowed_fails=0), master_key=MASTER_KEY)
    for status in (400, 404, 413, 422):
        fake.script(error(status, "bad request from the client"), key=KEY_A)
        response = chat(proxy)
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
    fake.script(error(400, "This model's maximum context length is 8192 tokens"), key=KEY_A)
    assert chat(proxy).status_code == 400
    assert fake.calls(key=KEY_B) == []
    a = proxy.deployment("a")
    assert (a["health"], a["fails_this_minute"]) == ("ok", 0)
    assert served_by(chat(proxy)) == "a"


def test_rejected_key_cools_at_once_and_is_shown(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake), allowed_fails=5), master_key=MASTER_KEY)
    fake.rejected_keys.add(KEY_A)
    assert served_by(chat(proxy)) == "b"
    a = proxy.deployment("a")
    assert a["health"] == "key_rejected"
    assert KEY_A not in str(a)
    assert served_by(chat(proxy)) == "b"
    assert len(fake.calls(key=KEY_A)) == 1


def test_context_window_fallback_and_max_input_tokens(fake, start_proxy) -> None:
    deps = [
        openai_deployment("small", fake, KEY_A, id="small"),
        openai_deployment("big", fake, KEY_B, id="big"),
    ]
    deps[0]["model_info"]["max_input_tokens"] = 1000
    cfg = config(deps, context_window_fallbacks=[{"small": ["big"]}])
    proxy = start_proxy(cfg, master_key=MASTER_KEY)
    # the upstream says so
    fake.script(error(400, "This model's maximum context length is 8192 tokens."), key=KEY_A)
    response = chat(proxy, "small")
    assert served_by(response) == "big"
    assert response.headers["x-llmproxy-fallback"] == "big"
    # the prompt is longer than model_info.max_input_tokens: not even sent to `small`
    fake.reset()
    long = [{"role": "user", "content": "word " * 2000}]
    with proxy.client() as c:
        response = c.post("/v1/chat/completions", json={"model": "small", "messages": long})
    assert served_by(response) == "big"
    assert fake.calls(key=KEY_A) == []
    assert proxy.deployment("small")["health"] == "ok"


def test_fallback_chains_never_loop(fake, start_proxy) -> None:
    deps = [
        openai_deployment("x", fake, KEY_A, id="x"),
        openai_deployment("y", fake, KEY_B, id="y"),
    ]
    cfg = config(deps, num_retries=0, fallbacks=[{"x": ["y"]}, {"y": ["x"]}])
    proxy = start_proxy(cfg, master_key=MASTER_KEY)
    fake.set_default(error(500))
    response = chat(proxy, "x")
    assert response.status_code == 502
    assert [s.key for s in fake.requests] == [KEY_A, KEY_B]


def test_per_deployment_max_retries_does_not_spin(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo", max_retries=0)]
    proxy = start_proxy(config(deps, num_retries=3, allowed_fails=10), master_key=MASTER_KEY)
    fake.set_default(error(500))
    started = time.monotonic()
    response = chat(proxy, "solo")
    assert response.status_code == 502
    assert len(fake.requests) == 1
    assert time.monotonic() - started < 3.0  # no backoff rounds for nothing


def test_retry_waits_with_backoff_when_no_other_deployment(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo")]
    proxy = start_proxy(config(deps, num_retries=2, allowed_fails=10), master_key=MASTER_KEY)
    fake.script(error(500), error(500), key=KEY_A)
    response = chat(proxy, "solo")
    assert served_by(response) == "solo"
    assert response.headers["x-llmproxy-attempts"] == "3"
    times = [s.time for s in fake.requests]
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # backoff grows


# ---- timeouts ----


def test_hanging_upstream_with_timeout_2_moves_on_in_about_2s(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake, a={"timeout": 2})), master_key=MASTER_KEY)
    fake.script(hang(), key=KEY_A)
    started = time.monotonic()
    response = chat(proxy)
    elapsed = time.monotonic() - started
    assert served_by(response) == "b"
    assert 1.9 <= elapsed < 4.0
    assert proxy.deployment("a")["fails_this_minute"] == 1


def test_hanging_only_deployment_gives_504_within_the_timeout(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo")]
    proxy = start_proxy(config(deps, timeout=1), master_key=MASTER_KEY)
    fake.set_default(hang())
    started = time.monotonic()
    response = chat(proxy, "solo")
    assert time.monotonic() - started < 3.0
    assert response.status_code == 504
    assert "solo" in response.json()["error"]["message"]


def test_stream_timeout_bounds_the_first_chunk(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake, a={"stream_timeout": 0.5})), master_key=MASTER_KEY)
    fake.script(hang(), key=KEY_A)
    started = time.monotonic()
    with proxy.openai() as client:
        chunks = list(client.chat.completions.create(model="gpt", messages=HELLO, stream=True))
    assert time.monotonic() - started < 3.0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_stream_gap_between_chunks_ends_with_an_error_event(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo", stream_timeout=0.3)]
    proxy = start_proxy(config(deps), master_key=MASTER_KEY)
    fake.script(reply("one two three four", chunk_delay=1.0), key=KEY_A)
    started = time.monotonic()
    with proxy.openai() as client, pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="solo", messages=HELLO, stream=True):
            pass
    assert time.monotonic() - started < 3.0


# ---- streams ----


@pytest.mark.parametrize("failure", [stream_error_first(), drop(), error(503), rate_limit(1)])
def test_stream_failing_before_its_first_byte_is_retried(fake, start_proxy, failure) -> None:
    proxy = start_proxy(config(pair(fake)), master_key=MASTER_KEY)
    fake.script(failure, key=KEY_A)
    with proxy.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt", messages=HELLO, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert raw.headers["x-llmproxy-deployment"] == "b"
    assert text == "Hello! This is the fake upstream."
    assert proxy.deployment("a")["errors"] == 1


def test_stream_first_event_error_falls_back_to_another_group(fake, start_proxy) -> None:
    deps = [
        anthropic_deployment("claude", fake, KEY_C, id="c"),
        openai_deployment("gpt", fake, KEY_A, id="g"),
    ]
    proxy = start_proxy(config(deps, num_retries=0, fallbacks=[{"claude": ["gpt"]}]))
    fake.script(stream_error_first(), key=KEY_C)
    with proxy.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="claude", messages=HELLO, stream=True
        )
        list(raw.parse())
    assert raw.headers["x-llmproxy-fallback"] == "gpt"


def test_stream_cut_after_bytes_ends_with_an_error_event(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake)), master_key=MASTER_KEY)
    fake.script(stream_cut(3), key=KEY_A)
    with proxy.client() as c:
        body = {"model": "gpt", "messages": HELLO, "stream": True}
        with c.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"error"' in lines[-2] and lines[-1] == "data: [DONE]"
    assert any('"content"' in line for line in lines[:-2])
    assert fake.calls(key=KEY_B) == []  # bytes were sent: no retry elsewhere
    a = proxy.deployment("a")
    assert (a["errors"], a["in_flight"]) == (1, 0)


# ---- many at once ----


async def test_100_concurrent_requests_with_one_flaky_key(fake, start_proxy) -> None:
    deps = [
        openai_deployment("gpt", fake, KEY_A, id="a"),
        openai_deployment("gpt", fake, KEY_B, id="b"),
    ]
    proxy = start_proxy(config(deps, allowed_fails=1000), master_key=MASTER_KEY)
    fake.script(*[error(500)] * 20, key=KEY_A)
    fake.set_default(reply(delay=0.02))

    async def one(client: Any, i: int) -> str:
        msgs = [{"role": "user", "content": f"request {i}"}]
        answer = await client.chat.completions.create(model="gpt", messages=msgs)
        return str(answer.choices[0].message.content)

    async with proxy.async_openai() as client:
        answers = await asyncio.gather(*(one(client, i) for i in range(100)))
    assert len(answers) == 100 and all(answers)
    seen = fake.requests
    per_request: dict[str, int] = {}
    for s in seen:
        text = s.body["messages"][0]["content"]
        per_request[text] = per_request.get(text, 0) + 1
    assert len(per_request) == 100
    assert max(per_request.values()) <= 3  # num_retries 2: at most 3 tries each
    failed = len(seen) - 100
    assert 0 < failed <= 20
    state = await asyncio.to_thread(proxy.state)
    deps_state = state["deployments"]
    assert sum(d["requests"] for d in deps_state) == len(seen)
    assert sum(d["errors"] for d in deps_state) == failed
    assert sum(d["in_flight"] for d in deps_state) == 0
    assert state["server"]["requests_total"] == 100
    assert sum(r["attempts"] for r in state["recent"][-100:]) == len(seen)


# ---- state ----


def test_health_changes_are_published_on_the_bus(fake, start_proxy) -> None:
    proxy = start_proxy(config(pair(fake)), master_key=MASTER_KEY)
    sub = proxy.runtime.bus.subscribe()
    fake.script(rate_limit(0.3, ms=True), key=KEY_A)
    assert served_by(chat(proxy)) == "b"
    time.sleep(0.35)
    assert served_by(chat(proxy)) == "a"
    changes = [e.as_dict() for e in sub.drain() if e.as_dict()["type"] == "deployment_changed"]
    assert [(c["deployment"], c["health"]) for c in changes] == [
        ("a", "cooling_down"),
        ("a", "ok"),
    ]
    assert changes[0]["cooldown_until"] > time.time() - 1
    assert KEY_A not in str(changes)
    proxy.runtime.bus.unsubscribe(sub)


def test_deployment_with_missing_key_is_disabled_and_skipped(
    fake, start_proxy, monkeypatch
) -> None:
    monkeypatch.delenv("LLMPROXY_TEST_MISSING_KEY", raising=False)
    deps = pair(fake, a={"api_key": "os.environ/LLMPROXY_TEST_MISSING_KEY"})
    proxy = start_proxy(config(deps), master_key=MASTER_KEY)
    a = proxy.deployment("a")
    assert a["health"] == "key_missing"
    assert "LLMPROXY_TEST_MISSING_KEY" in a["health_reason"]
    assert [served_by(chat(proxy)) for _ in range(3)] == ["b"] * 3


def test_client_leaving_mid_stream_frees_the_in_flight_slot(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo")]
    proxy = start_proxy(config(deps), master_key=MASTER_KEY)
    fake.script(reply("one two three four five six", chunk_delay=0.3), key=KEY_A)
    body = {"model": "solo", "messages": HELLO, "stream": True}
    with proxy.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert proxy.deployment("solo")["in_flight"] == 1
    deadline = time.monotonic() + 3
    while proxy.deployment("solo")["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    solo = proxy.deployment("solo")
    assert (solo["in_flight"], solo["health"]) == (0, "ok")
    recent = proxy.state()["recent"]
    assert recent[-1]["status"] == 499


# ---- settings from litellm_settings ----


def test_litellm_settings_num_retries_and_fallbacks(fake, start_proxy) -> None:
    deps = [*pair(fake), openai_deployment("backup", fake, KEY_C, id="c")]
    cfg = {
        "model_list": deps,
        "litellm_settings": {"num_retries": 0, "fallbacks": [{"gpt": ["backup"]}]},
    }
    proxy = start_proxy(cfg)
    fake.script(error(500), key=KEY_A)
    response = chat(proxy)
    assert served_by(response) == "c"  # no retry on b: num_retries 0, straight to the fallback
    assert response.headers["x-llmproxy-fallback"] == "backup"
    assert [s.key for s in fake.requests] == [KEY_A, KEY_C]


def test_request_timeout_bounds_the_whole_request(fake, start_proxy) -> None:
    deps = pair(fake, a={"timeout": 5}, b={"timeout": 5})
    cfg = {"model_list": deps, "litellm_settings": {"request_timeout": 1}}
    proxy = start_proxy(cfg)
    fake.set_default(hang())
    started = time.monotonic()
    response = chat(proxy)
    assert time.monotonic() - started < 3.0
    assert response.status_code == 504


def test_retry_after_setting_is_the_least_wait_before_a_retry(fake, start_proxy) -> None:
    deps = [openai_deployment("solo", fake, KEY_A, id="solo")]
    proxy = start_proxy(config(deps, retry_after=0.6), master_key=MASTER_KEY)
    fake.script(error(500), key=KEY_A)
    assert served_by(chat(proxy, "solo")) == "solo"
    first, second = (s.time for s in fake.requests)
    assert second - first >= 0.6
