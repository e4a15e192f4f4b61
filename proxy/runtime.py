"""Runtime: builds and owns the proxy's parts (bus, key pool, router, cache, usage, metrics,
and the Redis / PostgreSQL links that let several instances act as one).

One Runtime per server. Its `finish()` is where every request ends up exactly once: the event
bus, the usage ledger, the metrics and the recent-requests list, all without blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from proxy.config.loader import require_package
from proxy.config.settings import CacheParams, RouterSettings
from proxy.config.types import Config, Deployment
from proxy.errors import BadRequest
from proxy.events import CacheCleared, EventBus, RequestFinished, UsageStoreChanged
from proxy.observe.metrics import Metrics
from proxy.pipeline import Pipeline
from proxy.providers.anthropic.provider import AnthropicProvider
from proxy.providers.base import Provider
from proxy.providers.openai import OpenAIProvider
from proxy.routing.keys import KeyPool
from proxy.routing.probe import probe_deployment
from proxy.routing.router import Router
from proxy.routing.transport import AiohttpClient
from proxy.scale.connection import RedisTarget
from proxy.scale.state import LocalState, SharedState
from proxy.store.cache import ResponseCache
from proxy.store.pricing import PriceTable
from proxy.store.usage import UsageLedger
from proxy.store.usage_sqlite import UsageBackend

log = logging.getLogger("llmproxy")
VERSION = "0.1.0"
RECENT = 200
REDIS_START_WAIT = 1.0
"""At start, how long to wait for Redis before serving on local state (it keeps trying)."""


class Runtime:
    """Everything one proxy instance holds; the HTTP app and the dashboard read it."""

    def __init__(self, config: Config, *, usage_db: Path | None = None, listen: str = "") -> None:
        self.config = config
        self.listen = listen
        self.bus = EventBus()
        self.prices = PriceTable()
        self.shared = shared_state_for(config.router)
        self.pool = KeyPool(
            config.deployments, config.router, self.bus, price=self._unit_price, shared=self.shared
        )
        self.cache = _build_cache(config)
        self.ledger = UsageLedger(
            usage_db,
            retention_days=config.usage_retention_days,
            on_state=self._usage_state,
            backend=_usage_backend(config),
        )
        self.metrics = Metrics()
        self.providers: dict[str, Provider] = {
            "openai": OpenAIProvider(),
            "anthropic": AnthropicProvider(),
        }
        self.recent: deque[RequestFinished] = deque(maxlen=RECENT)
        self.started_at = time.time()
        self.requests_total = 0
        self._finished_at: deque[float] = deque(maxlen=100_000)
        self.client: AiohttpClient | None = None
        self.pipeline: Pipeline | None = None
        self.draining = False

    async def start(self) -> None:
        """Opens the shared HTTP client and the usage store; call on the serving loop."""
        self.client = AiohttpClient()
        router = Router(self.config, self.pool, self.client, self.providers)
        self.pipeline = Pipeline(router, self.cache, self.prices, self.bus, self.finish)
        await asyncio.to_thread(self.ledger.start)
        await self.shared.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_START_WAIT):
                await self.shared.wait_live()
        self.started_at = time.time()

    async def close(self) -> None:
        """Closes the client and the Redis links, and flushes every usage row still pending."""
        if self.client is not None:
            await self.client.aclose()
        await self.shared.close()
        if self.cache is not None and self.cache.shared is not None:
            await self.cache.shared.close()
        await asyncio.to_thread(self.ledger.close)

    def finish(self, ev: RequestFinished) -> None:
        """Reports one finished request everywhere; O(1), never raises."""
        self.requests_total += 1
        self._finished_at.append(time.monotonic())
        self.recent.append(ev)
        self.bus.publish(ev)
        self.ledger.record(ev)
        try:
            self.metrics.observe(ev)
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            log.exception("metrics update failed")

    def _usage_state(self, ok: bool, error: str | None) -> None:
        if not ok:
            log.warning("usage store failing: %s", error)
        self.bus.publish(UsageStoreChanged(ok, error))

    def _redis_status(self) -> dict[str, Any]:
        """The `server.redis` object: one verdict over the router state and the cache's Redis."""
        state = self.shared.status()
        store = self.cache.shared if self.cache is not None else None
        cache = store.status() if store is not None else {"configured": False, "ok": True}
        parts = [p for p in (state, cache) if p["configured"]]
        return {
            "configured": bool(parts),
            "ok": all(p["ok"] for p in parts),
            "error": next((p["error"] for p in parts if not p["ok"]), None),
            "state": state,
            "cache": cache,
        }

    def _unit_price(self, dep: Deployment) -> float | None:
        from proxy.schema import Usage

        return self.prices.cost(dep, Usage(1_000_000, 1_000_000, 2_000_000))

    def requests_per_second(self, window: float = 10.0) -> float:
        edge = time.monotonic() - window
        q = self._finished_at
        n = 0
        for t in reversed(q):
            if t < edge:
                break
            n += 1
        return round(n / window, 2)

    async def snapshot(self) -> dict[str, Any]:
        """Returns the state document of docs/internals.md."""
        usage = await asyncio.to_thread(self.ledger.snapshot)
        deployments = self.pool.snapshot()
        self.metrics.set_deployments(deployments)
        self.metrics.set_dropped_events(self.bus.dropped)
        cfg = self.config
        shared = self.ledger.backend.shared
        groups = [
            {
                "name": name,
                "deployments": [d.id for d in deps],
                "fallbacks": list(cfg.fallbacks.get(name, ())),
            }
            for name, deps in cfg.groups.items()
        ]
        return {
            "server": {
                "version": VERSION,
                "listen": self.listen,
                "started_at": self.started_at,
                "uptime_s": round(time.time() - self.started_at, 1),
                "config_path": str(cfg.path) if cfg.path and not cfg.demo else None,
                "demo": cfg.demo,
                "requests_total": self.requests_total,
                "requests_per_s": self.requests_per_second(),
                "in_flight": sum(d["in_flight"] for d in deployments),
                "usage_store": {
                    "ok": self.ledger.ok,
                    "error": self.ledger.error,
                    "path": self.ledger.backend.describe() if self.ledger.path or shared else None,
                    "kind": "postgres" if shared else "sqlite",
                    "shared": shared,
                    "pending": self.ledger.pending,
                },
                "redis": self._redis_status(),
                "warnings": list(cfg.warnings),
                "events_dropped": self.bus.dropped,
            },
            "deployments": deployments,
            "groups": groups,
            "cache": self.cache.snapshot() if self.cache else _no_cache(),
            "usage": usage,
            "recent": [ev.as_dict() for ev in list(self.recent)],
        }

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        """Runs a dashboard action (docs/internals.md).

        Raises:
            BadRequest: unknown action or deployment id.
        """
        if name == "clear_cache":
            cleared = await self.cache.aclear() if self.cache else 0
            self.bus.publish(CacheCleared(cleared))
            return {"cleared": cleared}
        if deployment not in self.pool.states:
            raise BadRequest(f"unknown deployment id '{deployment}'", param="deployment")
        if name == "reset":
            self.pool.reset(deployment)
        elif name in ("disable", "enable"):
            self.pool.set_disabled(deployment, name == "disable")
        elif name == "probe":
            assert self.client is not None
            dep = self.pool.states[deployment].dep
            return await probe_deployment(self.client, self.providers.get(dep.wire), dep)
        else:
            raise BadRequest(f"unknown action '{name}'", param="action")
        return {"ok": True}


def _build_cache(config: Config) -> ResponseCache | None:
    params = config.cache
    if params is None:
        return None
    if params.type != "redis":
        return ResponseCache(params)
    require_package("redis", "litellm_settings.cache_params.type: redis")
    from proxy.store.cache_redis import RedisCacheStore

    return ResponseCache(
        params, shared=RedisCacheStore(_cache_target(config, params), params.namespace)
    )


def _cache_target(config: Config, params: CacheParams) -> RedisTarget:
    """cache_params host/port/password; else the router's Redis; else 127.0.0.1:6379."""
    if params.host or params.port:
        return RedisTarget(host=params.host, port=params.port, password=params.password)
    router = config.router
    return RedisTarget(
        router.redis_url, router.redis_host, router.redis_port, router.redis_password
    )


def _usage_backend(config: Config) -> UsageBackend | None:
    """PostgreSQL when database_url is a postgresql:// URL; None: the SQLite file."""
    url = config.database_url.reveal() if config.database_url else None
    if url is None:
        return None
    from proxy.store.usage_postgres import PostgresBackend, is_postgres_url

    if is_postgres_url(url):
        require_package("asyncpg", "general_settings.database_url")
        return PostgresBackend(url)
    log.warning("general_settings.database_url: only postgresql:// URLs are served; using SQLite")
    return None


def _no_cache() -> dict[str, Any]:
    return {
        "enabled": False,
        "type": None,
        "entries": 0,
        "bytes": 0,
        "max_entries": 0,
        "max_bytes": 0,
        "hits": 0,
        "misses": 0,
        "hit_rate": None,
        "hit_rate_5m": None,
        "tokens_saved": 0,
        "cost_saved": 0.0,
        "history": [],
    }


def shared_state_for(settings: RouterSettings) -> SharedState:
    """Returns: RedisState when `redis_url`/`redis_host`/`redis_port` is set, else LocalState.
    `router_settings.redis_namespace` (optional) separates clusters sharing one Redis."""
    if not (settings.redis_url or settings.redis_host or settings.redis_port):
        return LocalState()
    require_package("redis", "router_settings.redis_*")
    from proxy.scale.redis_state import RedisState

    target = RedisTarget(
        settings.redis_url, settings.redis_host, settings.redis_port, settings.redis_password
    )
    namespace = getattr(settings, "redis_namespace", None)  # a declared field, or an extra
    return RedisState(target, namespace=str(namespace) if namespace else None)
