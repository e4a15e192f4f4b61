"""Config reload: the file watch, the record of the last attempt (the `reload` section of the
state document) and the admin action; SIGHUP, `POST /llmproxy/reload`, the dashboard key and a
change of the config or its `.env` all end in `Reloader.reload`.

A reload reads the files off the event loop, then hands the new Config to the runtime's
`apply` on the loop, which swaps it in at once. An invalid file changes nothing: the old config
keeps serving, and the log line, the state document and the caller say why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from proxy.config.changes import ConfigChanges
from proxy.config.source import ConfigSource, Stamp
from proxy.config.types import Config
from proxy.errors import ConfigError
from proxy.observe.actions import AdminActions
from proxy.secret import Scrubber, Secret

log = logging.getLogger("llmproxy")
POLL_INTERVAL = 1.0
"""Seconds between two looks at the watched files' modification times and sizes."""
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ReloadOutcome:
    """One reload attempt: when, why, whether the new config serves, and what changed."""

    number: int
    at: float
    trigger: str
    ok: bool
    error: str | None = None
    changes: ConfigChanges | None = None
    took_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Returns the state document's `reload` section (and the reload's answer)."""
        changes = self.changes
        return {
            "number": self.number,
            "at": self.at,
            "trigger": self.trigger,
            "ok": self.ok,
            "error": self.error,
            "took_ms": round(self.took_ms, 1),
            "summary": changes.summary() if changes is not None else None,
            "changes": changes.as_dict() if changes is not None else None,
            "restart_needed": list(changes.restart_needed) if changes is not None else [],
        }


Apply = Callable[[Config], Awaitable[ConfigChanges]]
"""Swaps a new config in (the runtime's); returns what changed."""


class Reloader:
    """Re-reads the config on demand and when its files change; one reload at a time."""

    def __init__(
        self,
        source: ConfigSource | None,
        apply: Apply,
        *,
        scrub: Callable[[str], str] = str,
        poll: float = POLL_INTERVAL,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._apply = apply
        self._scrub = scrub
        self.poll = poll
        self._wall = wall
        self._clock = clock
        self._lock: asyncio.Lock | None = None
        self.last: ReloadOutcome | None = None
        """The latest attempt (None before the first)."""
        self._stamp: Stamp | None = None
        self._watch: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[ReloadOutcome]] = set()

    @property
    def watching(self) -> bool:
        return self._watch is not None

    def status(self) -> dict[str, Any]:
        """Returns the `reload` section of the state document."""
        doc: dict[str, Any] = {"number": 0, "at": None, "ok": None}
        if self.last is not None:
            doc = self.last.as_dict()
        source = self.source
        doc["watching"] = [str(p) for p in source.known_files] if source and self.watching else []
        return doc

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Reads the config and its `.env` again and swaps the new config in.

        Args:
            trigger: what asked (`SIGHUP`, `POST /llmproxy/reload`, `file change`, `dashboard`).
        Returns:
            The outcome; `ok` false (with `error`) when the files are invalid, and then the
            old config still serves.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> ReloadOutcome:
        number = (self.last.number if self.last else 0) + 1
        started, at = self._clock(), self._wall()
        source = self.source
        try:
            if source is None:
                raise ConfigError("this proxy was started without a config file to read again")
            self._stamp = await asyncio.to_thread(source.stamp)
            config = await asyncio.to_thread(source.reload)
        except (ConfigError, OSError, ValueError) as exc:  # ValueError: a file not UTF-8
            reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            error = self._scrub(reason)[:MAX_ERROR_CHARS]
            took = (self._clock() - started) * 1000
            self.last = ReloadOutcome(number, at, trigger, False, error, None, took)
            log.error("config reload (%s) failed, the old config keeps serving: %s", trigger, error)
            return self.last
        changes = await self._apply(config)
        took = (self._clock() - started) * 1000
        self.last = ReloadOutcome(number, at, trigger, True, None, changes, took)
        log.info("config reloaded (%s) in %.0f ms: %s", trigger, took, changes.summary())
        if changes.restart_needed:
            log.warning(
                "config reload: %s changed but only take effect after a restart",
                ", ".join(changes.restart_needed),
            )
        return self.last

    async def _reload_changed(self, stamp: Stamp) -> None:
        """Reloads for a file change, unless a reload under way (SIGHUP, POST) read it."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if stamp != self._stamp:
                await self._reload("file change")

    def trigger(self, why: str) -> None:
        """Starts a reload in the background (a signal handler's way); call on the loop."""
        task = asyncio.get_running_loop().create_task(self.reload(why))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def start(self) -> None:
        """Starts watching the config and `.env` (not the built-in demo); call on the loop."""
        if self.source is None or self.source.demo or self._watch is not None:
            return
        self._watch = asyncio.get_running_loop().create_task(self._run(), name="config-watch")

    async def stop(self) -> None:
        """Stops the watch and waits for a reload under way."""
        tasks = [*self._pending] + ([self._watch] if self._watch is not None else [])
        self._watch = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        source = self.source
        assert source is not None
        if self._stamp is None:
            self._stamp = await asyncio.to_thread(source.stamp)
        while True:
            await asyncio.sleep(self.poll)
            try:
                stamp = await asyncio.to_thread(source.stamp)
                if stamp != self._stamp:
                    await self._reload_changed(stamp)
            except Exception:  # a bug in one look must not end the watch
                log.exception("config watch failed unexpectedly")


class LiveScrubber(Scrubber):
    """A Scrubber that learns the keys of each reloaded config (and keeps the old ones: a
    request still in flight may echo one)."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self._secrets = list(secrets)
        super().__init__(self._secrets)

    def add(self, secrets: Iterable[Secret]) -> None:
        """Scrubs `secrets` too from now on."""
        known = set(self._secrets)
        self._secrets += [s for s in secrets if s not in known]
        super().__init__(self._secrets)


class ReloadActions(AdminActions):
    """The admin actions, plus `reload` (the dashboard's key)."""

    def __init__(self, reloader: Reloader, *args: Any) -> None:
        super().__init__(*args)
        self._reloader = reloader

    async def run(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        """Runs one action; `reload` answers the reload's outcome (`ok` false and `error`
        for an invalid file). See AdminActions.run for the others."""
        if name == "reload":
            return (await self._reloader.reload("dashboard")).as_dict()
        return await super().run(name, deployment)
