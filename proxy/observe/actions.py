"""Operator actions from the dashboard or `POST /llmproxy/actions`: reset, disable, enable or
probe a deployment, clear the cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.errors import BadRequest, clip
from proxy.events import CacheCleared, EventBus
from proxy.providers.base import Provider
from proxy.routing.keys import KeyPool
from proxy.routing.probe import probe_deployment
from proxy.routing.transport import UpstreamClient
from proxy.store.cache import ResponseCache


class AdminActions:
    """Runs the named actions against the live pool and cache."""

    def __init__(
        self,
        pool: KeyPool,
        cache: ResponseCache | None,
        bus: EventBus,
        providers: dict[str, Provider],
        client: Callable[[], UpstreamClient | None],
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._bus = bus
        self._providers = providers
        self._client = client
        self.store_bodies: Callable[[bool], dict[str, Any]] | None = None
        """Turns storing request bodies on or off (set by the runtime)."""

    async def run(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        """Runs one action (docs/internals.md).

        Returns:
            `{"cleared": n}` for clear_cache, the probe result for probe, else `{"ok": true}`.

        Raises:
            BadRequest: unknown action or deployment id.
        """
        if name in ("bodies_on", "bodies_off") and self.store_bodies is not None:
            return self.store_bodies(name == "bodies_on")
        if name == "clear_cache":
            cleared = await self._cache.aclear() if self._cache else 0
            self._bus.publish(CacheCleared(cleared))
            return {"cleared": cleared}
        if deployment is None or deployment not in self._pool.states:
            shown = clip(deployment) if deployment is not None else None
            raise BadRequest(f"unknown deployment id '{shown}'", param="deployment")
        if name == "reset":
            self._pool.reset(deployment)
        elif name in ("disable", "enable"):
            self._pool.set_disabled(deployment, name == "disable")
        elif name == "probe":
            client = self._client()
            if client is None:
                raise BadRequest("the proxy is not serving yet", param="action")
            dep = self._pool.states[deployment].dep
            return await probe_deployment(client, self._providers[dep.wire], dep)
        else:
            raise BadRequest(f"unknown action '{clip(name)}'", param="action")
        return {"ok": True}
