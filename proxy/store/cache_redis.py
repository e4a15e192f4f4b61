"""The response cache's store in Redis, shared by every instance: `{namespace}:{cache key}` ->
the serialized `CachedAnswer`, with a PX ttl. A slow or unreachable Redis is a miss, never a
failure; after a failure Redis is skipped for a backoff, then tried again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from redis.exceptions import RedisError

from proxy.backoff import Backoff
from proxy.scale.connection import Health, RedisTarget
from proxy.schema import Usage
from proxy.store.cache import CachedAnswer

OP_TIMEOUT = 0.1
"""Bound of one get or put; beyond it the lookup is a miss (or the answer is not stored)."""
BACKOFF_MIN, BACKOFF_MAX = 0.2, 5.0
DEFAULT_NAMESPACE = "llmproxy:cache"
_CLEAR_BATCH = 500


def encode(answer: CachedAnswer) -> bytes:
    """Returns: a JSON header line (usage, cost, deployment, provider, preview, finish), then
    the body."""
    usage = answer.usage
    head = {
        "usage": None if usage is None else usage.__dict__,
        "cost": answer.cost,
        "deployment": answer.deployment,
        "provider": answer.provider,
        "preview": answer.preview,
        "finish": answer.finish,
    }
    return orjson.dumps(head) + b"\n" + answer.body


def decode(raw: bytes) -> CachedAnswer:
    """Returns: the answer `encode` wrote (an older entry without `finish` has None).
    Raises: ValueError on a malformed value."""
    line, sep, body = raw.partition(b"\n")
    if not sep:
        raise ValueError("not a cached answer")
    head = orjson.loads(line)
    usage = Usage(**head["usage"]) if head.get("usage") else None
    finish = head.get("finish")
    return CachedAnswer(
        body, usage, head.get("cost"), str(head["deployment"]), str(head["provider"]),
        str(head.get("preview", "")), finish if isinstance(finish, str) else None,
    )  # fmt: skip


class RedisCacheStore:
    """Async get/put/clear of cached answers in Redis, bounded by short timeouts."""

    kind = "redis"

    def __init__(
        self, target: RedisTarget, namespace: str | None = None, *, timeout: float = OP_TIMEOUT
    ) -> None:
        self.target = target
        self.prefix = f"{namespace or DEFAULT_NAMESPACE}:"
        self.health = Health(f"redis cache {target.describe()}", fallback="lookups are misses")
        self._timeout = timeout
        self._client = target.client()
        self._skip_until = 0.0
        self._backoff = Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self.stored = 0
        """Answers this instance stored (entries are shared; their count is not tracked)."""

    async def get(self, key: str) -> CachedAnswer | None:
        """Returns: the answer stored under `key`, or None (absent, Redis down or slow)."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._client.get(self.prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._ok()
        if raw is None:
            return None
        try:
            return decode(raw if isinstance(raw, bytes) else raw.encode())
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        """Stores `answer` for `ttl` seconds; a failure only means it is not stored."""
        if time.monotonic() < self._skip_until:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.set(
                    self.prefix + key, encode(answer), px=max(1, int(ttl * 1000))
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return
        self.stored += 1
        self._ok()

    async def clear(self) -> int:
        """Removes every answer in the namespace. Returns: how many (0 when Redis is down)."""
        count = 0
        try:
            async with asyncio.timeout(30):
                batch: list[bytes] = []
                async for k in self._client.scan_iter(match=self.prefix + "*", count=_CLEAR_BATCH):
                    batch.append(k)
                    if len(batch) >= _CLEAR_BATCH:
                        count += int(await self._client.unlink(*batch))
                        batch.clear()
                if batch:
                    count += int(await self._client.unlink(*batch))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
        return count

    async def close(self) -> None:
        """Closes the connections."""
        await self._client.aclose()

    def status(self) -> dict[str, Any]:
        """Returns: {"configured", "ok", "error", "url"} of the cache's Redis."""
        return {**self.health.as_dict(), "url": self.target.describe()}

    def _failed(self, exc: BaseException) -> None:
        self.health.down(exc)
        self._skip_until = time.monotonic() + self._backoff.next()

    def _ok(self) -> None:
        self._backoff.reset()
        if not self.health.ok:
            self.health.up()
