"""The response cache through the real proxy: hit, miss, bypass, TTL (injected clock), streamed
replay parsed by the openai SDK, errors and partial streams never stored, the LRU bound, and a
hit logged as usage with cost 0 and the cost it saved."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import error, reply, stream_cut, stream_error_first

KEY = "sk-upstream-cache-0000aaaa"
MSG = [{"role": "user", "content": "What is the capital of France?"}]


class Clock:
    """A monotonic clock the test moves by hand (replaces `ResponseCache.clock`)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def cache_config(fake: Any, **params: Any) -> dict[str, Any]:
    return {
        "model_list": [
            openai_deployment("gpt-4", fake, KEY, id="gpt4-a"),
            openai_deployment("other", fake, KEY, id="other-a"),
        ],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", **params}},
    }


def chat(
    client: httpx.Client, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    doc = {"model": "gpt-4", "messages": MSG, **body}
    return client.post("/v1/chat/completions", json=doc, headers=headers or {})


def test_miss_then_hit_and_key_fields(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    with proxy.client() as c:
        first = chat(c)
        assert first.status_code == 200
        assert first.headers["x-llmproxy-cache"] == "miss"
        second = chat(c, user="bob", metadata={"run": 1}, headers={"x-trace": "1"})
        assert second.headers["x-llmproxy-cache"] == "hit"
        assert second.json() == first.json()
        assert second.headers["x-llmproxy-deployment"] == "gpt4-a"
        assert second.headers["x-llmproxy-cost"] == "0"
        assert len(fake.requests) == 1
        # Fields that change the answer, and the group, are part of the key.
        assert chat(c, temperature=0.5).headers["x-llmproxy-cache"] == "miss"
        assert chat(c, model="other").headers["x-llmproxy-cache"] == "miss"
        assert chat(c, temperature=0.5).headers["x-llmproxy-cache"] == "hit"
        assert len(fake.requests) == 3


def test_cache_off_when_not_configured(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("gpt-4", fake, KEY)]})
    with proxy.client() as c:
        assert chat(c).headers["x-llmproxy-cache"] == "off"
        assert chat(c).headers["x-llmproxy-cache"] == "off"
    assert len(fake.requests) == 2
    assert proxy.state()["cache"]["enabled"] is False


def test_bypass_by_body_and_header(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    with proxy.client() as c:
        assert chat(c).headers["x-llmproxy-cache"] == "miss"
        bypass = chat(c, cache={"no-cache": True})
        assert bypass.status_code == 200
        assert bypass.headers["x-llmproxy-cache"] == "off"
        header = chat(c, headers={"Cache-Control": "no-cache"})
        assert header.headers["x-llmproxy-cache"] == "off"
        assert len(fake.requests) == 3
        assert "cache" not in fake.requests[1].body  # proxy-only field, not sent upstream
        assert chat(c).headers["x-llmproxy-cache"] == "hit"
    stats = proxy.state()["cache"]
    assert (stats["hits"], stats["misses"]) == (1, 1)  # a bypass is neither


def test_ttl_expiry_default_and_per_request(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    assert proxy.runtime.cache is not None
    clock = Clock()
    proxy.runtime.cache.clock = clock
    with proxy.client() as c:
        assert chat(c).headers["x-llmproxy-cache"] == "miss"
        clock.t += 3599  # the seed's default ttl is 3600 s
        assert chat(c).headers["x-llmproxy-cache"] == "hit"
        clock.t += 2
        assert chat(c).headers["x-llmproxy-cache"] == "miss"
        # A per-request ttl applies to the answer it stores.
        assert chat(c, seed=7, cache={"ttl": 10}).headers["x-llmproxy-cache"] == "miss"
        clock.t += 9
        assert chat(c, seed=7).headers["x-llmproxy-cache"] == "hit"
        clock.t += 2
        assert chat(c, seed=7).headers["x-llmproxy-cache"] == "miss"
    assert len(fake.requests) == 4


def test_configured_ttl(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake, ttl=60), master_key=MASTER_KEY)
    assert proxy.runtime.cache is not None
    clock = Clock()
    proxy.runtime.cache.clock = clock
    with proxy.client() as c:
        chat(c)
        clock.t += 59
        assert chat(c).headers["x-llmproxy-cache"] == "hit"
        clock.t += 2
        assert chat(c).headers["x-llmproxy-cache"] == "miss"


def test_stream_stored_whole_and_replayed_to_the_sdk(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    fake.set_default(reply("Paris is the capital of France.", usage={"prompt_tokens": 12}))
    client = proxy.openai()
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=MSG, stream=True
    )
    assert first.headers["x-llmproxy-cache"] == "miss"
    text1 = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
    again = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=MSG, stream=True
    )
    assert again.headers["x-llmproxy-cache"] == "hit"
    chunks = list(again.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text1
    assert text1 == "Paris is the capital of France."
    assert all(c.usage is None for c in chunks)  # not asked for
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Asked for usage: the replay carries the upstream's counts in its last chunk.
    with_usage = list(
        client.chat.completions.create(
            model="gpt-4", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.prompt_tokens == 12
    # The non-stream form of the same request is the same entry.
    whole = client.chat.completions.with_raw_response.create(model="gpt-4", messages=MSG)
    assert whole.headers["x-llmproxy-cache"] == "hit"
    assert whole.parse().choices[0].message.content == text1
    assert len(fake.requests) == 1


def test_non_stream_answer_replayed_as_stream(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    fake.set_default(reply("Cached then streamed."))
    client = proxy.openai()
    whole = client.chat.completions.create(model="gpt-4", messages=MSG)
    chunks = list(client.chat.completions.create(model="gpt-4", messages=MSG, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "Cached then streamed."
    assert len(fake.requests) == 1


@pytest.mark.parametrize("failure", [error(500, "boom"), error(400, "bad request")])
def test_errors_are_not_cached(fake, start_proxy, failure) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    fake.script(failure)
    with proxy.client() as c:
        assert chat(c).status_code >= 400
        ok = chat(c)
        assert ok.status_code == 200
        assert ok.headers["x-llmproxy-cache"] == "miss"
    assert len(fake.requests) == 2
    assert proxy.state()["cache"]["entries"] == 1


@pytest.mark.parametrize("failure", [stream_cut(2), stream_error_first()])
def test_partial_and_failed_streams_are_not_cached(fake, start_proxy, failure) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    fake.script(failure)
    body = {"model": "gpt-4", "messages": MSG, "stream": True}
    with proxy.client() as c:
        first = c.post("/v1/chat/completions", json=body)
        assert b"[DONE]" not in first.content or b'"error"' in first.content
        assert proxy.state()["cache"]["entries"] == 0
        second = c.post("/v1/chat/completions", json=body)
        assert second.status_code == 200
        assert second.headers["x-llmproxy-cache"] == "miss"
        assert b'"error"' not in second.content
    assert len(fake.requests) == 2


def test_lru_bound_by_entries(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake, max_entries=3), master_key=MASTER_KEY)
    with proxy.client() as c:
        for seed in range(3):
            chat(c, seed=seed)
        assert chat(c, seed=0).headers["x-llmproxy-cache"] == "hit"  # 0 is now the newest
        chat(c, seed=3)  # evicts seed 1, the least recently used
        stats = proxy.state()["cache"]
        assert stats["entries"] == 3
        assert chat(c, seed=0).headers["x-llmproxy-cache"] == "hit"
        assert chat(c, seed=2).headers["x-llmproxy-cache"] == "hit"
        assert chat(c, seed=1).headers["x-llmproxy-cache"] == "miss"


def test_lru_bound_by_bytes(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake, max_bytes=4000), master_key=MASTER_KEY)
    with proxy.client() as c:
        for seed in range(20):
            assert chat(c, seed=seed).status_code == 200
        stats = proxy.state()["cache"]
    assert 0 < stats["bytes"] <= 4000
    assert 0 < stats["entries"] < 20


def test_hit_is_logged_with_cost_zero_and_saved_cost(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    fake.set_default(reply("Paris.", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    with proxy.client() as c:
        first = chat(c)
        cost = float(first.headers["x-llmproxy-cost"])
        assert cost > 0
        hit = chat(c)
        assert hit.headers["x-llmproxy-cache"] == "hit"
        state = proxy.state()
    stats = state["cache"]
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["hit_rate"] == 0.5
    assert stats["hit_rate_5m"] == 0.5
    assert stats["entries"] == 1
    assert stats["bytes"] > 0
    assert stats["tokens_saved"] == 1500
    assert stats["cost_saved"] == pytest.approx(cost)
    assert stats["history"][-1][1:] == [1, 1]
    finished = state["recent"][-1]
    assert finished["cache"] == "hit"
    assert finished["cost"] == 0
    assert finished["cost_saved"] == pytest.approx(cost)
    assert finished["prompt_tokens"] == 1000
    assert state["usage"]["totals"]["cache_hits"] == 1
    assert state["usage"]["totals"]["cost"] == pytest.approx(cost)
    assert proxy.runtime.ledger.flush(10)
    with sqlite3.connect(proxy.usage_db) as db:
        rows = db.execute(
            "SELECT cache, cost, cost_saved, deployment FROM requests ORDER BY time"
        ).fetchall()
    assert rows[0][:2] == ("miss", pytest.approx(cost))
    assert rows[1][:3] == ("hit", 0, pytest.approx(cost))
    assert rows[1][3] == "gpt4-a"


def test_clear_cache_action(fake, start_proxy) -> None:
    proxy = start_proxy(cache_config(fake), master_key=MASTER_KEY)
    with proxy.client() as c:
        chat(c)
        done = c.post("/llmproxy/actions", json={"action": "clear_cache"})
        assert done.json() == {"cleared": 1}
        assert chat(c).headers["x-llmproxy-cache"] == "miss"
