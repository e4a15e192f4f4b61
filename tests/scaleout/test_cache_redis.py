"""The response cache on Redis: shared between two caches (two instances), the same keys as
the local cache, TTLs, clearing the namespace, and a down or stopped Redis as a plain miss."""

from __future__ import annotations

import asyncio

import redis

from proxy.config.settings import CacheParams
from proxy.scale.connection import RedisTarget
from proxy.schema import Usage
from proxy.store.cache import CachedAnswer, ResponseCache
from proxy.store.cache_redis import RedisCacheStore, decode, encode
from tests.conftest import free_port
from tests.scaleout.conftest import REDIS_HOST, RedisServer

ANSWER = CachedAnswer(
    b'{"id":"x","choices":[{"message":{"content":"hi\\nthere"}}]}',
    Usage(10, 5, 15, cached_tokens=2),
    0.25,
    "openai-1",
    "openai",
    "hi\nthere",
)


def redis_cache(ns: str, port: int, **params: object) -> ResponseCache:
    cp = CacheParams(type="redis", namespace=f"llmproxy:{ns}:cache", **params)  # type: ignore[arg-type]
    store = RedisCacheStore(RedisTarget(host=REDIS_HOST, port=port), cp.namespace)
    return ResponseCache(cp, shared=store)


async def close(*caches: ResponseCache) -> None:
    for cache in caches:
        assert cache.shared is not None
        await cache.shared.close()


def test_encoding_round_trip() -> None:
    assert decode(encode(ANSWER)) == ANSWER
    bare = CachedAnswer(b"{}", None, None, "d", "p", "")
    assert decode(encode(bare)) == bare


async def test_a_put_through_one_is_a_hit_through_the_other(redis_ns: str, redis_port: int) -> None:
    a, b = redis_cache(redis_ns, redis_port), redis_cache(redis_ns, redis_port)
    try:
        assert await b.get("k1") is None
        await a.put("k1", ANSWER)
        assert await b.get("k1") == ANSWER
        snap_a, snap_b = a.snapshot(), b.snapshot()
        assert snap_b["type"] == "redis" and snap_b["hits"] == 1 and snap_b["misses"] == 1
        assert snap_b["tokens_saved"] == 15 and snap_b["cost_saved"] == 0.25
        assert snap_a["hits"] == 0 and snap_a["misses"] == 0  # stats are per instance
        with redis.Redis(host=REDIS_HOST, port=redis_port) as raw:
            ttl = raw.pttl(f"llmproxy:{redis_ns}:cache:k1")
        assert 3_500_000 < ttl <= 3_600_000
    finally:
        await close(a, b)


async def test_ttl_and_clear(redis_ns: str, redis_port: int) -> None:
    a, b = redis_cache(redis_ns, redis_port), redis_cache(redis_ns, redis_port)
    try:
        await a.put("short", ANSWER, ttl=0.05)
        await a.put("k2", ANSWER)
        await a.put("k3", ANSWER)
        await asyncio.sleep(0.1)
        assert await b.get("short") is None
        assert await b.aclear() == 2
        assert await a.get("k2") is None
    finally:
        await close(a, b)


async def test_redis_down_is_a_miss(redis_ns: str) -> None:
    cache = redis_cache(redis_ns, port=free_port())
    try:
        await cache.put("k", ANSWER)
        assert await cache.get("k") is None
        assert cache.snapshot()["misses"] == 1
        assert cache.shared is not None
        status = cache.shared.status()
        assert status["ok"] is False and status["error"]
        assert await cache.aclear() == 0
    finally:
        await close(cache)


async def test_redis_stopped_then_back(redis_server: RedisServer, redis_ns: str) -> None:
    a = redis_cache(redis_ns, port=redis_server.port)
    try:
        await a.put("k", ANSWER)
        assert await a.get("k") == ANSWER
        redis_server.stop()
        assert await a.get("k") is None
        assert a.shared is not None and a.shared.status()["ok"] is False
        redis_server.start()  # an empty Redis (no persistence): the answer is gone
        for _ in range(100):  # tried again after a backoff
            await a.put("k", ANSWER)
            if await a.get("k") == ANSWER:
                break
            await asyncio.sleep(0.05)
        assert await a.get("k") == ANSWER
        assert a.shared.status() == {
            "configured": True, "ok": True, "error": None,
            "url": f"127.0.0.1:{redis_server.port}",
        }  # fmt: skip
    finally:
        await close(a)


async def test_a_slow_redis_is_a_miss(redis_server: RedisServer, redis_ns: str) -> None:
    a = redis_cache(redis_ns, port=redis_server.port)
    try:
        await a.put("k", ANSWER)
        with redis.Redis(host="127.0.0.1", port=redis_server.port) as admin:
            admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
            assert await a.get("k") is None  # bounded by the op timeout
            assert a.shared is not None and a.shared.status()["ok"] is False
            admin.execute_command("CLIENT", "UNPAUSE")
    finally:
        await close(a)
