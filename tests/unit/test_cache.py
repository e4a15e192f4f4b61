"""ResponseCache: key fields, hit/miss/bypass accounting, TTL with a fake clock, LRU bounds."""

from __future__ import annotations

import pytest

from proxy.config.settings import CacheParams
from proxy.schema import ChatRequest, Usage
from proxy.store.cache import CachedAnswer, ResponseCache, entry_size


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def answer(body: bytes = b'{"id":"x"}', tokens: tuple[int, int] = (10, 5), cost=0.01):
    return CachedAnswer(
        body=body, usage=Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1]),
        cost=cost, deployment="openai-1", provider="openai", preview="hi",
    )  # fmt: skip


def make(clock: Clock | None = None, wall: Clock | None = None, **params) -> ResponseCache:
    return ResponseCache(
        CacheParams(**params), clock=clock or Clock(), now=wall or Clock(1_700_000_000.0)
    )


BASE = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


def key_of(body: dict, model: str = "g", kind: str = "chat") -> str:
    return ResponseCache.key(ChatRequest(model=model, body=body, kind=kind))  # type: ignore[arg-type]


def test_key_ignores_non_answer_fields():
    k = key_of(BASE)
    assert len(k) == 64
    noisy = {**BASE, "stream": True, "stream_options": {"include_usage": True}, "user": "bob",
             "metadata": {"a": 1}, "store": True}  # fmt: skip
    assert key_of(noisy) == k
    req = ChatRequest(model="g", body=dict(BASE), headers={"x-trace": "1"}, stream=True)
    assert ResponseCache.key(req) == k


def test_key_is_order_independent():
    reordered = {"temperature": 0.2, "messages": [{"content": "hi", "role": "user"}]}
    assert key_of(reordered) == key_of(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"messages": [{"role": "user", "content": "hello"}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"max_tokens": 10},
        {"seed": 1},
        {"response_format": {"type": "json_object"}},
        {"some_future_field": True},  # unknown fields are in the key, on purpose
    ],
)
def test_key_changes_with_answer_fields(change):
    assert key_of({**BASE, **change}) != key_of(BASE)


def test_key_of_a_body_orjson_cannot_encode():
    big = {**BASE, "seed": 2**70}
    assert key_of(big) == key_of(dict(big)) != key_of({**BASE, "seed": 2**71})


def test_key_changes_with_group_and_kind():
    assert key_of(BASE, model="other") != key_of(BASE)
    assert key_of(BASE, kind="completions") != key_of(BASE)


async def test_miss_then_hit_counts_savings():
    cache = make()
    assert await cache.get("k") is None
    await cache.put("k", answer(tokens=(100, 20), cost=0.5))
    got = await cache.get("k")
    assert got is not None and got.body == b'{"id":"x"}'
    await cache.get("k")
    snap = cache.snapshot()
    assert (snap["hits"], snap["misses"]) == (2, 1)
    assert snap["hit_rate"] == pytest.approx(2 / 3)
    assert snap["hit_rate_5m"] == pytest.approx(2 / 3)
    assert snap["tokens_saved"] == 240
    assert snap["cost_saved"] == pytest.approx(1.0)
    assert snap["entries"] == 1


async def test_unknown_cost_saves_nothing():
    cache = make()
    await cache.put("k", answer(cost=None))
    await cache.get("k")
    assert cache.snapshot()["cost_saved"] == 0.0


async def test_bypass_is_not_a_miss():
    cache = make()
    cache.record_bypass()
    snap = cache.snapshot()
    assert (snap["hits"], snap["misses"], snap["hit_rate"]) == (0, 0, None)
    assert cache.bypassed == 1


async def test_ttl_expiry_with_fake_clock():
    clock = Clock()
    cache = make(clock, ttl=60)
    await cache.put("default", answer())
    await cache.put("short", answer(), ttl=5)
    clock.t += 5
    assert await cache.get("short") is None  # expired exactly at its ttl
    assert await cache.get("default") is not None
    clock.t += 55
    assert await cache.get("default") is None
    snap = cache.snapshot()
    assert snap["entries"] == 0 and snap["bytes"] == 0
    assert (snap["hits"], snap["misses"]) == (1, 2)


async def test_zero_ttl_not_stored():
    cache = make()
    await cache.put("k", answer(), ttl=0)
    assert cache.snapshot()["entries"] == 0


async def test_lru_bound_by_entries():
    cache = make(max_entries=3)
    for k in "abc":
        await cache.put(k, answer())
    await cache.get("a")  # a is now the most recent; b is the oldest
    await cache.put("d", answer())
    assert await cache.get("b") is None
    for k in "acd":
        assert await cache.get(k) is not None
    assert cache.snapshot()["entries"] == 3


async def test_lru_bound_by_bytes():
    one = answer(body=b"x" * 100)
    size = entry_size("a", one)
    cache = make(max_bytes=size * 2 + 10)
    for k in "abc":
        await cache.put(k, one)
    snap = cache.snapshot()
    assert snap["entries"] == 2
    assert snap["bytes"] == 2 * size <= snap["max_bytes"]
    assert await cache.get("a") is None
    assert await cache.get("c") is not None


async def test_entry_larger_than_max_bytes_not_stored():
    cache = make(max_bytes=50)
    await cache.put("small", answer(body=b"{}"))
    await cache.put("big", answer(body=b"x" * 100))
    assert await cache.get("big") is None
    assert await cache.get("small") is not None


async def test_replacing_a_key_keeps_bytes_right():
    cache = make()
    await cache.put("k", answer(body=b"x" * 100))
    await cache.put("k", answer(body=b"y" * 10))
    snap = cache.snapshot()
    assert snap["entries"] == 1
    assert snap["bytes"] == entry_size("k", answer(body=b"y" * 10))


async def test_clear():
    cache = make()
    for k in "ab":
        await cache.put(k, answer())
    assert cache.clear() == 2
    assert cache.snapshot()["entries"] == 0
    assert cache.clear() == 0


async def test_history_by_wall_clock_minute():
    wall = Clock(1_700_000_000.0)  # 1_699_999_980 is its minute
    cache = make(wall=wall)
    await cache.put("k", answer())
    await cache.get("k")
    await cache.get("nope")
    wall.t += 120
    await cache.get("k")
    snap = cache.snapshot()
    history = snap["history"]
    assert len(history) == 30
    assert history[-1] == [1_699_999_980 + 120, 1, 0]
    assert history[-3] == [1_699_999_980, 1, 1]
    assert [row[0] for row in history] == sorted(row[0] for row in history)
    wall.t += 10 * 60  # the first minute leaves the 5-minute window
    assert cache.snapshot()["hit_rate_5m"] is None
    assert cache.snapshot()["hit_rate"] == pytest.approx(2 / 3)


def test_snapshot_shape():
    snap = make().snapshot()
    assert set(snap) == {
        "enabled", "type", "entries", "bytes", "max_entries", "max_bytes", "hits", "misses",
        "hit_rate", "hit_rate_5m", "tokens_saved", "cost_saved", "history",
    }  # fmt: skip
    assert snap["type"] == "local" and snap["enabled"] is True
