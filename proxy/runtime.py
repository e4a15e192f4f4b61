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
from typing import TYPE_CHECKING, Any

from proxy.access.admin import KeyAdmin
from proxy.access.book import VirtualKeys
from proxy.access.shared import counters_for
from proxy.config.changes import ConfigChanges, compare, keep_restart_settings
from proxy.config.loader import require_package
from proxy.config.settings import CacheParams, RouterSettings
from proxy.config.source import ConfigSource
from proxy.config.types import Config, Deployment
from proxy.errors import ProxyError
from proxy.events import EventBus, UsageStoreChanged
from proxy.observe.activity import Activity
from proxy.observe.alerts import Alerts, alert_targets
from proxy.observe.metrics import Metrics
from proxy.observe.reload import LiveScrubber, ReloadActions, Reloader
from proxy.observe.state import ServerInfo, StateDocument
from proxy.pipeline import Pipeline
from proxy.providers import registry
from proxy.providers.base import Provider
from proxy.routing.budgets import Budgets, spend_reader
from proxy.routing.health_checks import HealthChecker
from proxy.routing.keys import KeyPool
from proxy.routing.router import Router
from proxy.routing.transport import AiohttpClient, tls_rules
from proxy.scale.connection import RedisTarget
from proxy.scale.state import LocalState, SharedState
from proxy.schema import Usage
from proxy.store.bodies import BodyStore
from proxy.store.cache import ResponseCache
from proxy.store.pricing import PriceTable
from proxy.store.usage import UsageLedger
from proxy.store.usage_sqlite import UsageBackend
from proxy.store.virtual_keys import store_for

if TYPE_CHECKING:
    from proxy.observe.otel import SpanExporter

log = logging.getLogger("llmproxy")
REDIS_START_WAIT = 1.0
"""At start, how long to wait for Redis before serving on local state (it keeps trying)."""


class Runtime:
    """Everything one proxy instance holds; the HTTP app and the dashboard read it."""

    def __init__(
        self,
        config: Config,
        *,
        usage_db: Path | None = None,
        listen: str = "",
        source: ConfigSource | None = None,
    ) -> None:
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
        self.virtual_keys, self.key_admin = _virtual_keys(config, usage_db, self.bus)
        """Virtual keys and their management API: served only with a master key."""
        url = config.database_url.reveal() if config.database_url else None
        self.budgets = Budgets(
            config.deployments,
            config.router.provider_budget_config,
            self.bus,
            reader=spend_reader(usage_db, url),
        )
        """Deployment and provider budgets; the pool consults them only when one is set."""
        if self.budgets.enabled:
            self.pool.budgets = self.budgets
        self.providers: dict[str, Provider] = registry.build()
        self.scrubber = LiveScrubber(config.secrets)
        """Takes every configured key (the reloaded ones too) out of logs, errors, the state."""
        scrub = self.scrubber.text
        self.span_exporters = _span_exporters(config)
        self.activity = Activity(
            self.bus,
            self.ledger,
            self.metrics,
            scrub=scrub,
            sinks=[*(e.record for e in self.span_exporters), self.budgets.record],
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
            virtual_keys=lambda: self.virtual_keys,
        )
        self.metrics.key_snapshot = self._key_snapshot
        self.client: AiohttpClient | None = None
        self.reloader = Reloader(source or _source_of(config), self.apply, scrub=scrub)
        """Config reload: SIGHUP, POST /llmproxy/reload, the dashboard's key, a file change."""
        self.state.reload_status = self.reloader.status
        self.actions = ReloadActions(
            self.reloader, self.pool, self.cache, self.bus, self.providers, lambda: self.client
        )
        self.pipeline: Pipeline | None = None
        self.health_checks: HealthChecker | None = None
        """The background health checks (`general_settings.background_health_checks`)."""
        self.bodies = BodyStore(scrub)
        """Request bodies, stored only while `bodies_on` (`store_prompts_in_spend_logs`)."""
        self._bodies_on = config.store_prompts
        self.actions.store_bodies = self._store_bodies
        targets, self.alert_warnings = alert_targets(config)
        self.alerts = Alerts(self.bus, targets)
        """Budget crossings: a log line, and a POST to Slack or a webhook when configured."""

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
    def bodies_on(self) -> bool:
        """Whether request bodies are stored (the dashboard's toggle flips it live)."""
        return self._bodies_on

    @bodies_on.setter
    def bodies_on(self, on: bool) -> None:
        self._bodies_on = on
        if self.pipeline is not None:
            self.pipeline.bodies = self.bodies if on else None

    def _store_bodies(self, on: bool) -> dict[str, Any]:
        """The `bodies_on` / `bodies_off` actions. Returns: the store's status."""
        self.bodies_on = on
        return {"ok": True, "storing": on, **self.bodies.status()}

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
        self.pipeline = Pipeline(
            router, self.cache, self.prices, self.bus, self.activity.finish, keys=self.virtual_keys
        )
        self.bodies_on = self._bodies_on
        await asyncio.to_thread(self.ledger.start)
        if self.virtual_keys is not None:
            # The keys live in the usage file: let the ledger's first open (schema steps,
            # prune) finish first, or the two race for the file's write lock at start.
            await asyncio.to_thread(self.ledger.wait_opened, 2.0)
            await self.virtual_keys.start()  # loads every key, in a thread
        await self.budgets.start()  # reads the current windows' spend, in a thread
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
        for warning in self.alert_warnings:
            log.warning("config: %s", warning)
        await self.alerts.start()
        self.reloader.start()

    async def close(self) -> None:
        """Stops the health checks, closes the client and the Redis links, and flushes every
        usage row still pending."""
        await self.reloader.stop()
        if self.health_checks is not None:
            await self.health_checks.stop()
        await self.budgets.stop()
        await self.alerts.stop()
        if self.client is not None:
            await self.client.aclose()
        await self.shared.close()
        if self.cache is not None and self.cache.shared is not None:
            await self.cache.shared.close()
        if self.virtual_keys is not None:
            await self.virtual_keys.close()  # writes the spend still pending
        await asyncio.to_thread(self.ledger.close)
        for exporter in self.span_exporters:
            await asyncio.to_thread(exporter.close)

    async def apply(self, new: Config) -> ConfigChanges:
        """Swaps a reloaded config in, on the serving loop, at once: new requests route on it,
        requests in flight finish on the router they started with. Unchanged deployments keep
        their state, the cache stays; settings read once at start keep their old values.

        Returns:
            What changed (the settings that need a restart named in `restart_needed`).
        """
        changes = compare(self.config, new)
        config = keep_restart_settings(self.config, new)
        for warning in (w for w in config.warnings if w not in self.config.warnings):
            log.warning("config: %s", warning)
        pool = self.pool.successor(config.deployments, config.router)
        self.budgets.reload(config.deployments, config.router.provider_budget_config)
        pool.budgets = self.budgets if self.budgets.enabled else None
        self.scrubber.add(config.secrets)
        self.metrics.known_groups(config.groups)
        if self.pipeline is not None and self.client is not None:
            self.pipeline.router = Router(config, pool, self.client, self.providers)
            self.pipeline.forget_prices()
        if self.virtual_keys is not None:
            self.virtual_keys.use_aliases(config.aliases)
        if config.store_prompts != self.config.store_prompts:
            self.bodies_on = config.store_prompts  # the file's new word wins over the toggle
        self.config, self.pool = config, pool
        self.state.rebind(config, pool)
        self.actions = ReloadActions(
            self.reloader, pool, self.cache, self.bus, self.providers, lambda: self.client
        )
        self.actions.store_bodies = self._store_bodies
        await self._reload_health_checks(changes)
        return changes

    async def _reload_health_checks(self, changes: ConfigChanges) -> None:
        """Points the background health checks at the new pool (or starts or stops them)."""
        config, checks = self.config, self.health_checks
        if checks is not None and not config.background_health_checks:
            self.health_checks = None
            await checks.stop()
        elif checks is not None:
            checks.interval = config.health_check_interval
            fresh = {*changes.deployments_added, *changes.deployments_changed}
            checks.use(self.pool, [self.pool.states[i].dep for i in fresh])
        elif config.background_health_checks and self.client is not None:
            self.health_checks = HealthChecker(
                self.pool, self.providers, self.client, config.health_check_interval
            )
            self.health_checks.start()

    def _key_snapshot(self) -> list[dict[str, Any]]:
        """Returns: the virtual keys' snapshot (none without a master key)."""
        book = self.virtual_keys
        return book.snapshot() if book is not None else []

    def _usage_state(self, ok: bool, error: str | None) -> None:
        if not ok:
            log.warning("usage store failing: %s", error)
        self.bus.publish(UsageStoreChanged(ok, error))

    def _unit_price(self, dep: Deployment) -> float | None:
        """What a million tokens in and out cost on `dep` (for cost-based routing)."""
        return self.prices.cost(dep, Usage(1_000_000, 1_000_000, 2_000_000))


def _source_of(config: Config) -> ConfigSource | None:
    """The source a reload re-reads when none was given: the config's own file (its `.env`
    variables then count as the real environment's)."""
    if config.path is None:
        return None
    return ConfigSource(config.path, demo=config.demo)


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


def _virtual_keys(
    config: Config, usage_db: Path | None, bus: EventBus
) -> tuple[VirtualKeys | None, KeyAdmin | None]:
    """Returns: the book of virtual keys and their admin, on the usage store (PostgreSQL with
    `database_url`, else the usage file); (None, None) without a master key."""
    if config.master_key is None:
        return None, None
    url = config.database_url.reveal() if config.database_url else None
    book = VirtualKeys(
        store_for(url, usage_db), bus, aliases=config.aliases, shared=counters_for(config.router)
    )
    return book, KeyAdmin(book.store, book, config)


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
