"""Virtual key counters shared by several instances through Redis (`router_settings.redis_*`):
spend, reservations, in-flight requests and the rpm/tpm minute of each key, changed by atomic
Lua scripts, so N instances enforce one budget and one set of limits.

Keys live under the instances' namespace (`llmproxy:` or `llmproxy:{redis_namespace}:`, as
`proxy.scale.redis_state`): `vk:{token}:s:{window}` holds the window's spend (a new window is a
new key, so a reset needs no coordination; it is seeded once from the store's spend),
`vk:{token}:r` the reservations and in-flight count (short-lived, refreshed by each admit),
`vk:{token}:rpm` and `vk:{token}:tpm` the sliding minute. A hot-path call is bounded by
OP_TIMEOUT; when Redis is down, slow or failing, the book enforces locally (never failing a
request) and Redis is tried again after RETRY_AFTER.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.config.settings import RouterSettings
from proxy.scale.connection import Health, RedisTarget, prefix_for

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("llmproxy")

OP_TIMEOUT = 0.25
"""Bound of a request-path Redis call (an admit); beyond it the request is enforced locally.
Looser than the router's 0.1 s: a key's budget holds across instances only while Redis
answers, and a burst of a key's requests queues its admits on one connection pool."""
BACKGROUND_TIMEOUT = 0.5
RETRY_AFTER = 1.0
"""Seconds Redis is left alone after a failure before the next call tries it again."""
RESERVATION_TTL_MS = 600_000
"""Reservations and in-flight counts of an instance that died go away after this."""
SPEND_TTL_MS = 2 * 86_400_000
"""How long a window's spend outlives the window (or, with no window, an idle key)."""
MAX_QUEUED = 10_000
TIMEOUTS_TO_DOWN = 3
"""Consecutive timeouts of admits that count as Redis being down."""

# KEYS: spend, reservations, rpm zset, tpm hash. ARGV: seed spend, max budget (-1: none),
# estimate, rpm (-1), tpm (-1), parallel (-1), member, spend ttl ms, reservation ttl ms.
# The reservations hash holds one field per request in flight: "estimate|deadline ms" (a
# dead instance's lapse at their deadline). Returns {code, spend, reserved, wait_ms}: code 0
# admitted, 1 budget, 2 rpm, 3 tpm, 4 parallel.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SETNX', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local spend = tonumber(redis.call('GET', KEYS[1]))
local reserved, inflight = 0, 0
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local sep = string.find(held[i + 1], '|', 1, true)
  local deadline = tonumber(string.sub(held[i + 1], sep + 1))
  if deadline < now then
    redis.call('HDEL', KEYS[2], held[i])
  else
    reserved = reserved + tonumber(string.sub(held[i + 1], 1, sep - 1))
    inflight = inflight + 1
  end
end
local budget = tonumber(ARGV[2])
if budget >= 0 and spend + reserved >= budget then
  return {1, tostring(spend), tostring(reserved), 0}
end
local rpm, tpm, par = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
if rpm >= 0 and redis.call('ZCARD', KEYS[3]) >= rpm then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local wait = 60000
  if first[2] then wait = math.max(1, tonumber(first[2]) + 60000 - now) end
  return {2, tostring(spend), tostring(reserved), wait}
end
if tpm >= 0 then
  local sec = tonumber(t[1])
  local all = redis.call('HGETALL', KEYS[4])
  local used, oldest = 0, nil
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= sec - 60 then
      redis.call('HDEL', KEYS[4], all[i])
    else
      used = used + tonumber(all[i + 1])
      if oldest == nil or s < oldest then oldest = s end
    end
  end
  if used >= tpm then
    local wait = 60000
    if oldest then wait = math.max(1, (oldest + 61) * 1000 - now) end
    return {3, tostring(spend), tostring(reserved), wait}
  end
end
if par >= 0 and inflight >= par then
  return {4, tostring(spend), tostring(reserved), 1000}
end
redis.call('HSET', KEYS[2], ARGV[7], ARGV[3] .. '|' .. (now + tonumber(ARGV[9])))
redis.call('PEXPIRE', KEYS[2], ARGV[9])
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('PEXPIRE', KEYS[3], 61000)
return {0, tostring(spend), tostring(reserved + tonumber(ARGV[3])), 0}
"""

# KEYS: spend, reservations, tpm hash. ARGV: member, cost, tokens, spend ttl ms, seed spend.
# Returns the window's spend after the cost.
SETTLE_LUA = """
local t = redis.call('TIME')
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SETNX', KEYS[1], ARGV[5])
local spend = redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[3]) > 0 then
  redis.call('HINCRBY', KEYS[3], t[1], ARGV[3])
  redis.call('EXPIRE', KEYS[3], 62)
end
return spend
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one admit checks (None: no such limit)."""

    max_budget: float | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None


@dataclass(frozen=True, slots=True)
class SharedAnswer:
    """Redis's answer to an admit: `refused` is None when admitted, else "budget", "rpm",
    "tpm" or "parallel"."""

    refused: str | None
    spend: float
    reserved: float
    wait: float
    member: str
    """The reservation's name in Redis (what `settle` releases)."""


_REFUSALS = {1: "budget", 2: "rpm", 3: "tpm", 4: "parallel"}


class RedisKeyCounters:
    """The cluster-wide counters of virtual keys in one Redis."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        namespace: str | None = None,
        op_timeout: float = OP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.prefix = prefix_for(namespace) + "vk:"
        self.health = Health(f"redis {target.describe()} (virtual keys)",
                             fallback="enforcing virtual keys locally")  # fmt: skip
        self._timeout = op_timeout
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._down_until = 0.0
        self._timeouts = 0
        self.instance = uuid.uuid4().hex[:12]
        self._seq = 0
        self._ops: asyncio.Queue[Callable[[aioredis.Redis], Awaitable[Any]]] = asyncio.Queue(
            MAX_QUEUED
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        """Whether the next call may try Redis (it is not known to be down)."""
        return self._clock() >= self._down_until

    async def start(self) -> None:
        """Starts the background writer of settlements; connects lazily."""
        if self._task is None:
            self._task = asyncio.create_task(self._work(), name="virtual-keys-redis")

            async def warm(client: aioredis.Redis) -> None:  # connect, load the scripts
                await client.script_load(ADMIT_LUA)
                await client.script_load(SETTLE_LUA)

            self._queue(warm)

    async def close(self) -> None:
        """Writes the settlements still queued (bounded), then closes the connection."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BACKGROUND_TIMEOUT * 2):
                    await self._ops.join()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def admit(
        self, token: str, window: float, seed: float, estimate: float, limits: Limits
    ) -> SharedAnswer | None:
        """Checks and reserves in Redis, atomically.

        Returns:
            Redis's answer, or None when Redis is down, slow or failing (enforce locally).
        """
        if not self.usable:
            return None
        self._seq += 1
        member = f"{self.instance}:{self._seq}"
        keys = self._keys(token, window)
        args = [
            repr(seed), _opt(limits.max_budget), repr(estimate), _opt(limits.rpm_limit),
            _opt(limits.tpm_limit), _opt(limits.max_parallel_requests),
            member, SPEND_TTL_MS, RESERVATION_TTL_MS,
        ]  # fmt: skip
        answer = await self._hot(lambda c: _run_script(c, ADMIT_LUA, keys, args))
        if answer is None:
            # It may have run before the bound ran out: take the reservation back.
            reservations = keys[1]
            self._queue(lambda c: c.hdel(reservations, member))
            return None
        code, spend, reserved, wait = answer
        return SharedAnswer(
            _REFUSALS.get(int(code)), float(spend), float(reserved), int(wait) / 1000, member
        )

    def settle(
        self,
        token: str,
        window: float,
        seed: float,
        member: str,
        cost: float,
        tokens: int,
        on_spend: Callable[[float], None],
    ) -> None:
        """Queues the settlement of an admit (its reservation released, cost and tokens
        added); `on_spend` gets the window's spend Redis answers. Never raises, never waits."""
        spend, reservations, _rpm, tpm = self._keys(token, window)
        args = [member, repr(cost), tokens, SPEND_TTL_MS, repr(seed)]

        async def op(client: aioredis.Redis) -> None:
            answer = await _run_script(client, SETTLE_LUA, [spend, reservations, tpm], args)
            on_spend(float(answer))

        self._queue(op)

    def set_spend(self, token: str, window: float, spend: float) -> None:
        """Queues an operator's new spend for a key's window (`/key/update` with `spend`)."""
        key = self._keys(token, window)[0]

        async def op(client: aioredis.Redis) -> None:
            await client.set(key, repr(spend), px=SPEND_TTL_MS)

        self._queue(op)

    def _queue(self, op: Callable[[aioredis.Redis], Awaitable[Any]]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._ops.put_nowait(op)

    def status(self) -> dict[str, Any]:
        """Returns: {"configured", "ok", "error"}."""
        return self.health.as_dict()

    def _keys(self, token: str, window: float) -> list[str]:
        base = f"{self.prefix}{token}"
        return [f"{base}:s:{window:.0f}", f"{base}:r", f"{base}:rpm", f"{base}:tpm"]

    def _connected(self) -> aioredis.Redis:
        if self._client is None:
            self._client = self.target.client()
        return self._client

    async def _hot(self, op: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout):
                answer = await op(self._connected())
        except TimeoutError as exc:
            self._timeouts += 1  # slow once is not down: this request goes on locally
            if self._timeouts >= TIMEOUTS_TO_DOWN:
                self._failed(exc)
            return None
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._timeouts = 0
        self.health.up()
        return answer

    def _failed(self, exc: BaseException) -> None:
        self._timeouts = 0
        self._down_until = self._clock() + RETRY_AFTER
        self.health.down(exc if str(exc) else type(exc).__name__)

    async def _work(self) -> None:
        from redis.exceptions import RedisError

        while True:
            op = await self._ops.get()
            try:
                if self.usable:
                    async with asyncio.timeout(BACKGROUND_TIMEOUT):
                        await op(self._connected())
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            except Exception:  # the task's edge: one bad settlement never stops the writer
                log.exception("virtual keys: a settlement failed in Redis")
            finally:
                self._ops.task_done()


def _opt(value: float | int | None) -> str:
    return "-1" if value is None else repr(value)


_SHAS: dict[str, str] = {}


async def _run_script(client: aioredis.Redis, script: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA, loading the script once per server. Returns: the script's answer."""
    from redis.exceptions import NoScriptError

    sha = _SHAS.get(script) or hashlib.sha1(script.encode()).hexdigest()  # an id, not security
    _SHAS[script] = sha
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


def counters_for(settings: RouterSettings) -> RedisKeyCounters | None:
    """Returns: Redis counters when `router_settings.redis_*` is set, else None (local)."""
    if not (settings.redis_url or settings.redis_host or settings.redis_port):
        return None
    target = RedisTarget(
        settings.redis_url, settings.redis_host, settings.redis_port, settings.redis_password
    )
    namespace = getattr(settings, "redis_namespace", None)
    return RedisKeyCounters(target, namespace=str(namespace) if namespace else None)
