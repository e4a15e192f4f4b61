"""Runtime: wiring only. Builds the proxy's parts (bus, key pool, router, cache, usage,
metrics, the state document, admin actions and the Redis / PostgreSQL links that let several
instances act as one) and hands them to each other. One Runtime per server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.config.loader import require_package
from proxy.config.settings import CacheParams, RouterSettings
from proxy.config.types import Config, Deployment
from proxy.errors import ProxyError
from proxy.events import EventBus, UsageStoreChanged
from proxy.observe.actions import AdminActions
from proxy.observe.activity import Activity
from proxy.observe.metrics import Metrics
from proxy.observe.state import ServerInfo, StateDocument
from proxy.pipeline import Pipeline
from proxy.providers import registry
from proxy.providers.base import Provider
from proxy.routing.health_checks import HealthChecker
from proxy.routing.keys import KeyPool
from proxy.routing.router import Router
from proxy.routing.transport import AiohttpClient, tls_rules
from proxy.scale.connection import RedisTarget
from proxy.scale.state import LocalState, SharedState
from proxy.schema import Usage
from proxy.secret import Scrubber
from proxy.store.cache import ResponseCache
from proxy.store.pricing import PriceTable
from proxy.store.usage import UsageLedger
from proxy.store.usage_sqlite import UsageBackend

if TYPE_CHECKING:
    from proxy.observe.otel import SpanExporter

log = logging.getLogger("llmproxy")
REDIS_START_WAIT = 1.0
"""At start, how long to wait for Redis before serving on local state (it keeps trying)."""


class Runtime:
    """Everything one proxy instance holds; the HTTP app and the dashboard read it."""

    def __init__(self, config: Config, *, usage_db: Path | None = None, listen: str = "") -> None:
        self.config = config
        self.info = ServerInfo(listen)
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
            known_groups=config.groups,
        )
        self.metrics = Metrics(config.groups)
        self.providers: dict[str, Provider] = registry.build()
        scrub = Scrubber(config.secrets).text
        self.span_exporters = _span_exporters(config)
        self.activity = Activity(
            self.bus,
            self.ledger,
            self.metrics,
            scrub=scrub,
            sinks=[e.record for e in self.span_exporters],
        )
        self.state = StateDocument(
            config,
            self.info,
            pool=self.pool,
            cache=self.cache,
            ledger=self.ledger,
            activity=self.activity,
            metrics=self.metrics,
            bus=self.bus,
            shared=self.shared,
            scrub=scrub,
        )
        self.client: AiohttpClient | None = None
        self.actions = AdminActions(
            self.pool, self.cache, self.bus, self.providers, lambda: self.client
        )
        self.pipeline: Pipeline | None = None
        self.health_checks: HealthChecker | None = None
        """The background health checks (`general_settings.background_health_checks`)."""

    @property
    def listen(self) -> str:
        return self.info.listen

    @listen.setter
    def listen(self, value: str) -> None:
        self.info.listen = value

    @property
    def draining(self) -> bool:
        return self.info.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.info.draining = value

    @property
    def started_at(self) -> float:
        return self.info.started_at

    def serving_pipeline(self) -> Pipeline:
        """Returns the pipeline that serves requests.

        Raises:
            ProxyError: 503 while the proxy starts or shuts down.
        """
        if self.info.draining or self.pipeline is None:
            raise ProxyError(
                "The proxy is shutting down.", status=503, type="api_error", code="shutting_down"
            )
        return self.pipeline

    async def start(self) -> None:
        """Opens the shared HTTP client and the usage store; call on the serving loop."""
        self.client = AiohttpClient(tls=await asyncio.to_thread(tls_rules, self.config.deployments))
        router = Router(self.config, self.pool, self.client, self.providers)
        self.pipeline = Pipeline(router, self.cache, self.prices, self.bus, self.activity.finish)
        await asyncio.to_thread(self.ledger.start)
        await self.shared.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_START_WAIT):
                await self.shared.wait_live()
        self.info.started_at = time.time()
        if self.config.background_health_checks:
            self.health_checks = HealthChecker(
                self.pool, self.providers, self.client, self.config.health_check_interval
            )
            self.health_checks.start()

    async def close(self) -> None:
        """Stops the health checks, closes the client and the Redis links, and flushes every
        usage row still pending."""
        if self.health_checks is not None:
            await self.health_checks.stop()
        if self.client is not None:
            await self.client.aclose()
        await self.shared.close()
        if self.cache is not None and self.cache.shared is not None:
            await self.cache.shared.close()
        await asyncio.to_thread(self.ledger.close)
        for exporter in self.span_exporters:
            await asyncio.to_thread(exporter.close)

    def _usage_state(self, ok: bool, error: str | None) -> None:
        if not ok:
            log.warning("usage store failing: %s", error)
        self.bus.publish(UsageStoreChanged(ok, error))

    def _unit_price(self, dep: Deployment) -> float | None:
        """What a million tokens in and out cost on `dep` (for cost-based routing)."""
        return self.prices.cost(dep, Usage(1_000_000, 1_000_000, 2_000_000))


def _span_exporters(config: Config) -> list[SpanExporter]:
    """One span exporter per callback sink; the OpenTelemetry SDK is imported only then."""
    if not config.callbacks:
        return []
    from proxy.observe.otel import SpanExporter

    return [SpanExporter(sink, config.deployments) for sink in config.callbacks]


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
    if params.url or params.host or params.port:
        return RedisTarget(params.url, params.host, params.port, params.password)
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
