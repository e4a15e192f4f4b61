"""The state document (`GET /llmproxy/state`, the dashboard's snapshot): server facts,
deployments, groups, cache, usage and recent requests, assembled from the parts' snapshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.config.types import Config
from proxy.events import EventBus
from proxy.observe.activity import Activity
from proxy.observe.metrics import Metrics
from proxy.routing.keys import KeyPool
from proxy.scale.state import SharedState
from proxy.secret import redact_url
from proxy.store.cache import ResponseCache
from proxy.store.usage import UsageLedger

VERSION = "0.1.0"


class KeyBook(Protocol):
    """The virtual keys as the state document reads them (`proxy.access.book.VirtualKeys`)."""

    def snapshot(self) -> list[dict[str, Any]]:
        """Returns: one dict per key (redacted name, spend, budgets, limits, ...)."""
        ...


@dataclass
class ServerInfo:
    """Facts about the serving process that the server fills in as it starts and stops."""

    listen: str = ""
    started_at: float = field(default_factory=time.time)
    draining: bool = False


class StateDocument:
    """Builds the state document of docs/internals.md from the live parts."""

    def __init__(
        self,
        config: Config,
        info: ServerInfo,
        *,
        pool: KeyPool,
        cache: ResponseCache | None,
        ledger: UsageLedger,
        activity: Activity,
        metrics: Metrics,
        bus: EventBus,
        shared: SharedState,
        scrub: Callable[[str], str] = str,
        virtual_keys: Callable[[], KeyBook | None] = lambda: None,
    ) -> None:
        self._virtual_keys = virtual_keys
        self._config = config
        self._scrub = scrub
        self._info = info
        self._pool = pool
        self._cache = cache
        self._ledger = ledger
        self._activity = activity
        self._metrics = metrics
        self._bus = bus
        self._shared = shared
        self.reload_status: Callable[[], dict[str, Any]] | None = None
        """The `reload` section: the latest config reload (`observe/reload.py`)."""

    async def snapshot(self) -> dict[str, Any]:
        """Returns the whole document (the usage rollup is read off the event loop)."""
        usage = await asyncio.to_thread(self._ledger.snapshot)
        spend = self._ledger.spend_snapshot()
        book = self._virtual_keys()
        keys = book.snapshot() if book is not None else []
        self._metrics.set_virtual_keys(keys)
        deployments = self._pool.snapshot()
        for dep in deployments:  # an api_base may carry credentials (https://user:pass@...)
            if dep.get("api_base"):
                dep["api_base"] = redact_url(str(dep["api_base"]))
            for name in ("last_error", "last_probe"):  # an upstream's error may echo a header
                if dep.get(name):
                    dep[name] = self._scrub(str(dep[name]))
        self._metrics.set_deployments(deployments)
        self._metrics.set_dropped_events(self._bus.dropped)
        return {
            "server": self._server(deployments),
            "deployments": deployments,
            "groups": self._groups(),
            "cache": self._cache.snapshot() if self._cache else _no_cache(),
            "usage": usage,
            "recent": [ev.as_dict() for ev in list(self._activity.recent)],
            "virtual_keys": keys,
            "spend": spend,
            "reload": self.reload_status() if self.reload_status is not None else None,
        }

    def rebind(self, config: Config, pool: KeyPool) -> None:
        """Reads a reloaded config and its key pool from now on."""
        self._config, self._pool = config, pool

    def _server(self, deployments: list[dict[str, Any]]) -> dict[str, Any]:
        cfg, info, ledger = self._config, self._info, self._ledger
        shared = ledger.backend.shared
        return {
            "version": VERSION,
            "listen": info.listen,
            "started_at": info.started_at,
            "uptime_s": round(time.time() - info.started_at, 1),
            "config_path": str(cfg.path) if cfg.path and not cfg.demo else None,
            "demo": cfg.demo,
            "requests_total": self._activity.requests_total,
            "requests_per_s": self._activity.requests_per_second(),
            "in_flight": sum(d["in_flight"] for d in deployments),
            "usage_store": {
                "ok": ledger.ok,
                "error": ledger.error,
                "path": ledger.backend.describe() if ledger.path or shared else None,
                "kind": "postgres" if shared else "sqlite",
                "shared": shared,
                "pending": ledger.pending,
            },
            "redis": self._redis_status(),
            "warnings": list(cfg.warnings),
            "events_dropped": self._bus.dropped,
        }

    def _groups(self) -> list[dict[str, Any]]:
        fallbacks = self._config.fallbacks
        return [
            {
                "name": name,
                "deployments": [d.id for d in deps],
                "fallbacks": list(fallbacks.get(name, ())),
            }
            for name, deps in self._config.groups.items()
        ]

    def _redis_status(self) -> dict[str, Any]:
        """The `server.redis` object: one verdict over the router state and the cache's Redis."""
        state = self._shared.status()
        store = self._cache.shared if self._cache is not None else None
        cache = store.status() if store is not None else {"configured": False, "ok": True}
        parts = [p for p in (state, cache) if p["configured"]]
        return {
            "configured": bool(parts),
            "ok": all(p["ok"] for p in parts),
            "error": next((p["error"] for p in parts if not p["ok"]), None),
            "state": state,
            "cache": cache,
        }


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
