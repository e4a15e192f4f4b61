"""Background health checks (LiteLLM's `general_settings.background_health_checks`): every
enabled deployment is probed once per `health_check_interval` with its provider's cheapest key
check (`probe.py`), the probes spread evenly over the interval and a few at most in flight.
A failing probe counts in the key pool as a failed request would (so a dead key is cooled down
before a user's request meets it); a passing one ends a cooldown early. One asyncio task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from proxy.config.types import Deployment
from proxy.providers.base import Provider
from proxy.routing.keys import KeyPool
from proxy.routing.probe import PROBE_TIMEOUT, check_deployment
from proxy.routing.transport import UpstreamClient

log = logging.getLogger("llmproxy")
MAX_IN_FLIGHT = 4
"""Probes under way at once, at most."""


class HealthChecker:
    """Probes the pool's deployments in the background; `start()` on the serving loop,
    `stop()` at shutdown."""

    def __init__(
        self,
        pool: KeyPool,
        providers: Mapping[str, Provider],
        client: UpstreamClient,
        interval: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._pool = pool
        self._providers = providers
        self._client = client
        self.interval = interval
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_in_flight)
        self._probes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the loop; the first round begins at once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="health-checks")

    async def stop(self) -> None:
        """Cancels the loop and the probes under way, and waits for them to end."""
        tasks = [*self._probes] + ([self._task] if self._task is not None else [])
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        """Probes round after round until cancelled."""
        while True:
            await self.round()

    async def round(self) -> None:
        """One round: each deployment's probe started `interval / n` seconds after the last
        one's (waiting for a free slot first), so a round lasts about `interval`."""
        targets = self.targets()
        if not targets:
            await self._sleep(self.interval)
            return
        gap = self.interval / len(targets)
        for dep in targets:
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._probe(dep))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
            await self._sleep(gap)

    def use(self, pool: KeyPool, fresh: Iterable[Deployment] = ()) -> None:
        """Probes `pool` from now on (a config reload swapped it in); the `fresh` deployments
        (added or changed) are probed at once instead of in the next round."""
        self._pool = pool
        if self._task is None:
            return
        for dep in fresh:
            if not dep.disabled_reason and dep.wire in self._providers:
                task = asyncio.get_running_loop().create_task(self._probe_when_free(dep))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe_when_free(self, dep: Deployment) -> None:
        await self._slots.acquire()
        await self._probe(dep)

    async def drain(self) -> None:
        """Waits for the probes under way (tests)."""
        await asyncio.gather(*self._probes, return_exceptions=True)

    def targets(self) -> list[Deployment]:
        """The deployments to probe: enabled, with their key, and a known provider."""
        return [
            st.dep
            for st in list(self._pool.states.values())
            if not st.disabled and not st.dep.disabled_reason and st.dep.wire in self._providers
        ]

    async def _probe(self, dep: Deployment) -> None:
        try:
            timeout = min(dep.timeout, PROBE_TIMEOUT)
            outcome = await check_deployment(self._client, self._providers[dep.wire], dep, timeout)
            detail = str(outcome.result["detail"])
            self._pool.probed(dep.id, detail, outcome.error, proved=outcome.proved)
            if outcome.error is not None:
                log.warning("health check: %s (%s) failed: %s", dep.id, dep.group, detail)
        except Exception:  # a bug in one probe must not end the loop
            log.exception("health check of %s failed unexpectedly", dep.id)
        finally:
            self._slots.release()
