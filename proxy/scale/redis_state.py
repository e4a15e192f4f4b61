"""`RedisState`: the router state of several instances shared through Redis.

Cooldowns: SET with a TTL + PUBLISH, applied by every instance at once (and loaded at connect).
rpm/tpm: an atomic Lua reservation over a sliding minute, only for deployments with limits.
In-flight, latency and failure counts: pushed and read every `sync_interval` (small lag).
Sticky sessions: a key per (group, session) naming its deployment, SET with a TTL in the
background and read (GET) only when the instance's own session map has no usable answer.
Every call is bounded by a short timeout; when Redis is down or slow the pool runs on its local
state, and a background task reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from proxy.backoff import Backoff
from proxy.scale.connection import Health, RedisTarget, prefix_for
from proxy.scale.state import NO_REMOTE, PoolView, RemoteStats

log = logging.getLogger("llmproxy")

OP_TIMEOUT = 0.1
"""Bound of a hot-path Redis call (a reservation); beyond it the request goes on locally."""
BACKGROUND_TIMEOUT = 0.5
SYNC_INTERVAL = 0.5
"""How often in-flight, latency and failure counts are pushed to and read from Redis."""
PEER_TTL_MS = 3000
"""An instance whose counts are older than this is no longer counted."""
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0
CLOSE_TRIES, CLOSE_WAIT = 5, 0.5
"""close() cancels the background work up to this many times, waiting this long each."""
TIMEOUTS_TO_DOWN = 3
"""Consecutive timeouts of hot-path calls that count as Redis being down."""
MAX_QUEUED_OPS = 10_000

# Sliding-minute reservation. rpm: a sorted set of start times (exact). tpm: a hash of
# per-second token sums (one-second granularity). Redis's clock is the one clock.
# Returns -1 when reserved, else the milliseconds until the window may have room.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = -1
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    wait = 60000
    if first[2] then wait = math.max(1, tonumber(first[2]) + 60000 - now) end
  end
end
if tpm >= 0 then
  local sec = tonumber(t[1])
  local all = redis.call('HGETALL', KEYS[2])
  local used, oldest = 0, nil
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= sec - 60 then
      redis.call('HDEL', KEYS[2], all[i])
    else
      used = used + tonumber(all[i + 1])
      if oldest == nil or s < oldest then oldest = s end
    end
  end
  if used >= tpm then
    local until_ms = 60000
    if oldest then until_ms = math.max(1, (oldest + 61) * 1000 - now) end
    wait = math.max(wait, until_ms)
  end
end
if wait >= 0 then return wait end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
return -1
"""
TOKENS_LUA = """
local t = redis.call('TIME')
redis.call('HINCRBY', KEYS[1], t[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 62)
return 1
"""


Op = Callable[[aioredis.Redis], Awaitable[Any]]


class RedisState:
    """Shares the router state of every instance configured with the same Redis and namespace."""

    kind = "redis"

    def __init__(
        self,
        target: RedisTarget,
        *,
        namespace: str | None = None,
        op_timeout: float = OP_TIMEOUT,
        sync_interval: float = SYNC_INTERVAL,
        instance: str | None = None,
    ) -> None:
        self.target = target
        self.prefix = prefix_for(namespace)
        self.instance = instance or uuid.uuid4().hex[:12]
        self.health = Health(f"redis {target.describe()}")
        self._op_timeout = op_timeout
        self._interval = sync_interval
        self._channel = f"{self.prefix}events"
        self._pool: PoolView | None = None
        self._client: aioredis.Redis | None = None
        self._live = False
        self._ops: asyncio.Queue[Op] = asyncio.Queue(maxsize=MAX_QUEUED_OPS)
        self._remote: dict[str, RemoteStats] = {}
        self._peers = 0
        self._broken = asyncio.Event()
        self._up = asyncio.Event()
        self._seq = itertools.count()
        self._connected = False
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        """Whether Redis is connected and answering right now."""
        return self._live

    def bind(self, pool: PoolView) -> None:
        """Sets the pool that remote cooldowns are applied to and local counts read from."""
        self._pool = pool

    async def start(self) -> None:
        """Starts connecting in the background; never waits for Redis or raises."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="redis-state")

    async def wait_live(self) -> None:
        """Waits until connected to Redis (tests, start-up); bound it with asyncio.timeout."""
        await self._up.wait()

    async def close(self) -> None:
        """Stops the background work and closes the connections."""
        task, self._task = self._task, None
        if task is None:
            return
        # redis-py can swallow a cancel that lands inside a pipeline's execute(): cancel again
        # until the task ends, so a shutdown never hangs on it (bounded all the same).
        for _ in range(CLOSE_TRIES):
            task.cancel()
            done, _pending = await asyncio.wait({task}, timeout=CLOSE_WAIT)
            if done:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
                return
        log.warning("redis state: background work did not stop; leaving it to the loop")

    # ---- hooks ----
    def on_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None:
        """Shares a local cooldown: stored with its TTL and published to every instance."""
        ms = max(1, int(seconds * 1000))
        doc = {"by": self.instance, "op": "cool", "dep": dep_id, "ms": ms, "reason": reason,
               "key_rejected": key_rejected}  # fmt: skip
        payload = orjson.dumps(doc)
        key, channel = self._key("cd", dep_id), self._channel

        async def op(client: aioredis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.set(key, payload, px=ms)
            pipe.publish(channel, payload)
            await pipe.execute()

        self._enqueue(op)

    def on_clear(self, dep_id: str) -> None:
        """Shares an operator's reset: the stored cooldown is removed everywhere."""
        payload = orjson.dumps({"by": self.instance, "op": "clear", "dep": dep_id})
        key, channel = self._key("cd", dep_id), self._channel

        async def op(client: aioredis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.delete(key)
            pipe.publish(channel, payload)
            await pipe.execute()

        self._enqueue(op)

    async def reserve(self, dep_id: str, rpm: int | None, tpm: int | None) -> float | None:
        """Takes one request slot in the cluster-wide sliding minute of a limited deployment.

        Returns:
            None when the request may go (also when Redis is down or slow: local limits only),
            else the seconds until the cluster's window may have room.
        """
        if rpm is None and tpm is None:
            return None
        keys = [self._key("rpm", dep_id), self._key("tpm", dep_id)]
        args = [-1 if rpm is None else rpm, -1 if tpm is None else tpm]
        member = f"{self.instance}:{next(self._seq)}"
        wait_ms = await self._hot(lambda c: _run_script(c, RESERVE_LUA, keys, [*args, member]))
        return None if wait_ms is None or int(wait_ms) < 0 else int(wait_ms) / 1000

    async def get_session(self, key: str) -> str | None:
        """Returns: the deployment id some instance last served session `key` on, or None when
        there is none (also when Redis is down or slow)."""
        name = self._key("sess", key)
        raw = await self._hot(lambda c: c.get(name))
        return raw.decode() if isinstance(raw, bytes) else None

    def put_session(self, key: str, dep_id: str, ttl: float) -> None:
        """Stores the deployment serving session `key` for `ttl` seconds (in the background)."""
        name, ms = self._key("sess", key), max(1, int(ttl * 1000))

        async def op(client: aioredis.Redis) -> None:
            await client.set(name, dep_id, px=ms)

        self._enqueue(op)

    def on_tokens(self, dep_id: str, tokens: int) -> None:
        """Adds tokens to the deployment's cluster-wide tpm window (in the background)."""
        if tokens <= 0:
            return
        key = self._key("tpm", dep_id)

        async def op(client: aioredis.Redis) -> None:
            await _run_script(client, TOKENS_LUA, [key], [tokens])

        self._enqueue(op)

    def remote(self, dep_id: str) -> RemoteStats:
        """Returns: the other instances' counts, as of the last sync (zeros when down)."""
        return self._remote.get(dep_id, NO_REMOTE) if self._live else NO_REMOTE

    def status(self) -> dict[str, Any]:
        """Returns: the `server.redis` object of the state document."""
        return {**self.health.as_dict(), "url": self.target.describe(),
                "instance": self.instance, "peers": self._peers if self._live else 0}  # fmt: skip

    # ---- background ----
    def _key(self, kind: str, dep_id: str) -> str:
        return f"{self.prefix}{kind}:{dep_id}"

    def _enqueue(self, op: Op) -> None:
        if self._live:
            with contextlib.suppress(asyncio.QueueFull):
                self._ops.put_nowait(op)

    async def _hot(self, op: Op) -> Any:
        """Runs a request-path call under the short bound.

        Returns: its answer, or None when Redis is down, slow or failing (the caller goes on
        locally)."""
        client = self._client
        if not self._live or client is None:
            return None
        try:
            async with asyncio.timeout(self._op_timeout):
                answer = await op(client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._hot_failure(exc)
            return None
        self.health.failures = 0
        return answer

    def _hot_failure(self, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            self.health.failures += 1
            if self.health.failures < TIMEOUTS_TO_DOWN:
                return
            exc = TimeoutError(f"{TIMEOUTS_TO_DOWN} calls over {self._op_timeout * 1000:g} ms")
        self._live = False
        self.health.down(exc)
        self._broken.set()

    async def _supervise(self) -> None:
        backoff = Backoff(RECONNECT_MIN, RECONNECT_MAX)
        while True:
            self._connected = False
            try:
                await self._session()
            except Exception as exc:  # the edge: report, reconnect, never die
                self._live = False
                self.health.down(_first_cause(exc))
            if self._connected:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _session(self) -> None:
        """Connects, then serves until the link breaks (it always ends by raising)."""
        client = self.target.client()
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(BACKGROUND_TIMEOUT * 2):
                await client.ping()
                await pubsub.subscribe(self._channel)
                await self._load_cooldowns(client)
                await self._sync(client)
            self._drain_ops()
            self._client, self._live, self._connected = client, True, True
            self._broken.clear()
            self._up.set()
            self.health.up()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._listen(pubsub))
                tasks.create_task(self._sync_loop(client))
                tasks.create_task(self._work(client))
                tasks.create_task(self._watch())
        finally:
            self._live, self._client = False, None
            self._up.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()

    def _drain_ops(self) -> None:
        while not self._ops.empty():
            self._ops.get_nowait()

    async def _watch(self) -> None:
        await self._broken.wait()
        raise ConnectionError(self.health.error or "redis link broken")

    async def _load_cooldowns(self, client: aioredis.Redis) -> None:
        async for key in client.scan_iter(match=f"{self.prefix}cd:*", count=500):
            pipe = client.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            raw, ttl = await pipe.execute()
            if raw and ttl and ttl > 0:
                self._apply(orjson.loads(raw), ttl)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None and msg.get("type") == "message":
                doc = orjson.loads(msg["data"])
                self._apply(doc, int(doc.get("ms", 0)))

    def _apply(self, doc: dict[str, Any], ms: int) -> None:
        pool = self._pool
        if pool is None or doc.get("by") == self.instance:
            return
        dep_id = str(doc.get("dep"))
        if doc.get("op") == "clear":
            pool.clear_cooldown(dep_id)
        elif ms > 0:
            reason = str(doc.get("reason") or "cooldown")
            pool.apply_cooldown(dep_id, ms / 1000, reason, bool(doc.get("key_rejected")))

    async def _work(self, client: aioredis.Redis) -> None:
        while True:
            op = await self._ops.get()
            try:
                async with asyncio.timeout(BACKGROUND_TIMEOUT):
                    await op(client)
            finally:
                _stop_if_cancelled()

    async def _sync_loop(self, client: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with asyncio.timeout(BACKGROUND_TIMEOUT):
                    await self._sync(client)
            finally:
                _stop_if_cancelled()

    async def _sync(self, client: aioredis.Redis) -> None:
        """Pushes this instance's counts and reads everyone else's."""
        stats = self._pool.local_stats() if self._pool is not None else {}
        fields = {dep: f"{s.in_flight},{s.latency_sum:.3f},{s.latency_n},{s.fails}"
                  for dep, s in stats.items()}  # fmt: skip
        mine, peers = self._key("inst", self.instance), f"{self.prefix}instances"
        now_ms = int(time.time() * 1000)
        pipe = client.pipeline(transaction=True)
        pipe.delete(mine)
        if fields:
            pipe.hset(mine, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(mine, PEER_TTL_MS)
        pipe.zadd(peers, {self.instance: now_ms})
        pipe.zremrangebyscore(peers, "-inf", now_ms - 10 * PEER_TTL_MS)
        pipe.pexpire(peers, 10 * PEER_TTL_MS)
        pipe.zrange(peers, 0, -1)
        others = [p.decode() for p in (await pipe.execute())[-1] if p.decode() != self.instance]
        pipe = client.pipeline(transaction=False)
        for other in others:
            pipe.hgetall(self._key("inst", other))
        rows = await pipe.execute() if others else []
        self._remote = _sum_remote(rows)
        self._peers = len(others)


def _sum_remote(rows: list[dict[bytes, bytes]]) -> dict[str, RemoteStats]:
    acc: dict[str, list[float]] = {}
    for row in rows:
        for dep, value in row.items():
            in_flight, lat_sum, lat_n, fails = value.decode().split(",")
            slot = acc.setdefault(dep.decode(), [0, 0.0, 0, 0])
            slot[0] += int(in_flight)
            slot[1] += float(lat_sum)
            slot[2] += int(lat_n)
            slot[3] += int(fails)
    return {
        dep: RemoteStats(int(s[0]), s[1] / s[2] if s[2] else None, int(s[2]), int(s[3]))
        for dep, s in acc.items()
    }


_SHAS: dict[str, str] = {}


async def _run_script(client: aioredis.Redis, script: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA, loading the script once per server. Returns: the script's answer."""
    sha = (
        _SHAS.get(script) or hashlib.sha1(script.encode()).hexdigest()
    )  # a script id, not security
    _SHAS[script] = sha
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


def _first_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _stop_if_cancelled() -> None:
    """Raises CancelledError if this task was asked to stop: redis-py can swallow a cancel that
    lands inside a pipeline's execute() (and Python 3.11's asyncio.timeout can turn one into a
    TimeoutError), which would leave close() waiting for a loop that never ends."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
