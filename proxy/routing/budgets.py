"""Deployment and provider budgets: USD spent per window, and which deployments it holds back.

`litellm_params.max_budget` + `budget_duration` caps one deployment, `router_settings.
provider_budget_config` (`{openai: {budget_limit: 100, time_period: 1d}}`) every deployment of a
provider together. A deployment whose own budget or whose provider's is spent is skipped by the
key pool, like a cooldown, until its window resets.

Windows are aligned to the clock, so a restart needs no stored window start: a `Nd` window
starts at 00:00 UTC every N days from the Unix epoch (`1d` resets at midnight UTC), a `Nmo`
window on the 1st of every Nth month since January 1970 at 00:00 UTC, `s`/`m`/`h`/`w` windows at
multiples of their length from the epoch. A budget without a duration never resets (it counts
the usage rows kept, `usage_retention_days`).

At start the current windows' spend is read from the usage rows (in a thread); then each
finished request adds its cost (`record`, an `Activity` sink, off the request path). With a
shared PostgreSQL store the windows' spend is re-read every `REFRESH_S` seconds, so several
instances see each other's spend (what one spent since the last re-read is seen a few
seconds late by the others). Everything but the reads runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from proxy import durations
from proxy.config.settings import ProviderBudget
from proxy.config.types import Deployment
from proxy.events import BudgetCrossed, DeploymentChanged, EventBus, RequestFinished
from proxy.store import usage_sqlite

log = logging.getLogger("llmproxy")
REFRESH_S = 3.0
"""A shared store's spend is re-read this often."""
HEALTH = "budget_spent"
"""The key pool's health for a deployment held back by a spent budget."""

BudgetKey = tuple[str, str]
"""(scope, name): ("deployment", its id) or ("provider", its name)."""


def window(duration: str | None, now: float) -> tuple[float, float | None]:
    """Returns (start, end) of the aligned window of `duration` that holds unix time `now`;
    (0, None) for a budget that never resets.

    Raises:
        DurationError: `duration` is not one of LiteLLM's forms.
    """
    if duration is None:
        return 0.0, None
    amount, unit = durations.parse(duration)
    if unit == "mo":
        step = max(1, int(amount))
        moment = datetime.fromtimestamp(now, UTC)
        first = (moment.year - 1970) * 12 + moment.month - 1
        first -= first % step
        return _month_start(first), _month_start(first + step)
    length = amount * durations.UNITS[unit]
    start = math.floor(now / length) * length
    if start + length <= now:  # float rounding at the very edge
        start += length
    return start, start + length


def _month_start(months: int) -> float:
    """Returns 00:00 UTC on the 1st of the month `months` after January 1970."""
    return datetime(1970 + months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Budget:
    """One budget as configured."""

    scope: str
    """"deployment" or "provider"."""
    name: str
    """The deployment id, or the provider's name."""
    limit: float
    """USD per window."""
    duration: str | None


@dataclass
class _Window:
    start: float
    end: float | None
    spend: float = 0.0
    crossed: bool = False
    """BudgetCrossed was published (or the spend was past the budget at start)."""


@dataclass(frozen=True)
class Spent:
    """A budget that holds a deployment back."""

    budget: Budget
    spend: float
    reset_at: float | None
    """Unix time the window ends; None when it never resets."""

    def describe(self) -> str:
        """Returns e.g. `provider openai's budget ($1.0000 of $1.0000) is spent until
        2026-12-03 00:00 UTC` (names from the config, never a key)."""
        b = self.budget
        what = f"deployment {b.name}" if b.scope == "deployment" else f"provider {b.name}"
        until = f"until {utc_text(self.reset_at)}" if self.reset_at else "and never resets"
        return f"{what}'s budget (${self.spend:.4f} of ${b.limit:.4f}) is spent {until}"


def utc_text(t: float) -> str:
    """Returns unix time `t` as `2026-12-03 00:00 UTC`."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


class SpendReader(Protocol):
    """Reads the spend of the stored usage rows; blocking (called in a thread)."""

    shared: bool
    """Several instances write the store: re-read it every REFRESH_S."""

    def read(self, since: float) -> list[tuple[Any, ...]]:
        """Returns: (deployment, provider, cost) rows at or after `since`. Raises: the store's
        error."""
        ...

    def close(self) -> None:
        """Closes what `read` opened."""


class SqliteSpend:
    """The spend in this instance's SQLite usage file (read once, at start)."""

    shared = False

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def read(self, since: float) -> list[tuple[Any, ...]]:
        """See `usage_sqlite.read_spend`."""
        return usage_sqlite.read_spend(self.path, since)

    def close(self) -> None:
        """Nothing stays open."""


class PostgresSpend:
    """The spend in the PostgreSQL usage store every instance writes (re-read periodically), on
    a connection of its own."""

    shared = True

    def __init__(self, url: str) -> None:
        from proxy.store.usage_postgres import PostgresBackend

        self._backend = PostgresBackend(url)
        self._lock = threading.Lock()  # read and close may come from two threads

    def read(self, since: float) -> list[tuple[Any, ...]]:
        """See `PostgresBackend.spend_since`."""
        with self._lock:
            return self._backend.spend_since(since)

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._backend.close()


def spend_reader(usage_db: Path | None, database_url: str | None) -> SpendReader:
    """Returns the reader of the store the usage ledger writes (PostgreSQL for a
    `postgresql://` database_url, else the SQLite file)."""
    from proxy.store.usage_postgres import is_postgres_url

    if database_url and is_postgres_url(database_url):
        return PostgresSpend(database_url)
    return SqliteSpend(usage_db)


class Budgets:
    """Spend per deployment and per provider in the current windows, and what is spent."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        providers: Mapping[str, ProviderBudget],
        bus: EventBus | None = None,
        *,
        reader: SpendReader | None = None,
        wall: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_S,
    ) -> None:
        self._bus = bus
        self._reader = reader
        self._wall = wall
        self._refresh_every = refresh_interval
        self._budgets: dict[BudgetKey, Budget] = {}
        self._keys_of: dict[str, tuple[BudgetKey, ...]] = {}
        """Deployment id -> the budgets it is charged to (its own, its provider's)."""
        self._deps_of: dict[BudgetKey, list[str]] = {}
        self._windows: dict[BudgetKey, _Window] = {}
        self._during: list[dict[BudgetKey, float]] = []
        """One per re-read under way: the cost recorded meanwhile (not in what it reads)."""
        self._task: asyncio.Task[None] | None = None
        self._reread: asyncio.Task[None] | None = None
        """The read of a reloaded config's new budgets."""
        self.configure(deployments, providers)

    def configure(
        self, deployments: Iterable[Deployment], providers: Mapping[str, ProviderBudget]
    ) -> set[BudgetKey]:
        """Sets the budgets (at start, and for a reloaded config): a budget whose scope, name
        and duration did not change keeps its window's spend; a new or changed one starts
        from zero until `refresh` reads its spend.

        Returns:
            The budgets that are new or changed (whose spend is worth reading).
        """
        budgets: dict[BudgetKey, Budget] = {}
        keys_of: dict[str, tuple[BudgetKey, ...]] = {}
        deps_of: dict[BudgetKey, list[str]] = {}
        for name, cfg in providers.items():
            budgets[("provider", name)] = Budget(
                "provider", name, cfg.budget_limit, cfg.time_period
            )
        for dep in deployments:
            keys: list[BudgetKey] = []
            if dep.max_budget is not None:
                key = ("deployment", dep.id)
                budgets[key] = Budget("deployment", dep.id, dep.max_budget, dep.budget_duration)
                keys.append(key)
            if ("provider", dep.provider) in budgets:
                keys.append(("provider", dep.provider))
            if keys:
                keys_of[dep.id] = tuple(keys)
            for key in keys:
                deps_of.setdefault(key, []).append(dep.id)
        now = self._wall()
        windows: dict[BudgetKey, _Window] = {}
        fresh: set[BudgetKey] = set()
        for key, budget in budgets.items():
            old, before = self._windows.get(key), self._budgets.get(key)
            if old is not None and before is not None and before.duration == budget.duration:
                windows[key] = old
                old.crossed = old.crossed and old.spend >= budget.limit
            else:
                windows[key] = _Window(*window(budget.duration, now))
                fresh.add(key)
        self._budgets, self._keys_of, self._deps_of = budgets, keys_of, deps_of
        self._windows = windows
        return fresh

    def reload(
        self, deployments: Iterable[Deployment], providers: Mapping[str, ProviderBudget]
    ) -> None:
        """`configure` for a reloaded config, on the loop; the spend of new or changed budgets
        is read in the background (it is counted from zero meanwhile)."""
        fresh = self.configure(deployments, providers)
        if fresh and self._reader is not None:
            read = self.refresh(publish=False, only=fresh)
            self._reread = asyncio.create_task(read, name="budget-read")
            if self._reader.shared and self._task is None:
                self._task = asyncio.create_task(self._refresh_loop(), name="budget-refresh")

    @property
    def enabled(self) -> bool:
        """Whether any deployment is under a budget."""
        return bool(self._keys_of)

    # ---- life cycle ----
    async def start(self) -> None:
        """Reads the current windows' spend from the stored rows; with a shared store, keeps
        re-reading it. A failing read is logged and the spend counted from here."""
        if self._reader is None or not self._budgets:
            return
        await self.refresh(publish=False)
        if self._reader.shared:
            self._task = asyncio.create_task(self._refresh_loop(), name="budget-refresh")

    async def settle(self) -> None:
        """Waits for the read a reload started, if any (its budgets' spend is then known)."""
        if self._reread is not None:
            await asyncio.shield(self._reread)

    async def stop(self) -> None:
        """Stops the re-reads and closes the reader."""
        for task in (self._task, self._reread):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reread = None
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._reader.close)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_every)
            await self.refresh()

    async def refresh(self, *, publish: bool = True, only: set[BudgetKey] | None = None) -> None:
        """Replaces each window's spend by what the store holds, plus what was recorded here
        while reading; publishes crossings seen this way (spent by another instance) unless
        `publish` is false (at start: those crossings happened before). `only`: these budgets
        (a reload's new ones), else all."""
        reader = self._reader
        if reader is None or not self._budgets:
            return
        keys = [k for k in self._budgets if only is None or k in only]
        starts = {key: self._current(key, self._wall()).start for key in keys}
        during: dict[BudgetKey, float] = {}
        self._during.append(during)
        try:
            rows = await asyncio.to_thread(_read_windows, reader, set(starts.values()))
        except Exception as exc:  # the store's error: keep counting what we saw
            log.warning("budgets: cannot read the spend from the usage store: %s", exc)
            return
        finally:
            self._during = [d for d in self._during if d is not during]  # by identity
        now = self._wall()
        for key, start in starts.items():
            win = self._current(key, now)
            if win.start != start:
                continue  # the window turned over while reading: what was read is stale
            scope, name = key
            column = 0 if scope == "deployment" else 1
            stored = sum(float(r[2] or 0.0) for r in rows[start] if r[column] == name)
            win.spend = stored + during.get(key, 0.0)
            self._check(key, win, now, publish=publish)

    # ---- counting ----
    def record(self, ev: RequestFinished) -> None:
        """Adds a finished request's cost to its deployment's and provider's budgets (an
        `Activity` sink: O(1), on the loop)."""
        if not ev.cost or ev.deployment is None:
            return
        keys = self._keys_of.get(ev.deployment)
        if keys is None:
            return
        now = self._wall()
        for key in keys:
            if key[0] == "provider" and key[1] != ev.provider:
                continue
            win = self._current(key, now)
            if ev.time < win.start:
                continue  # it began in the window before: counted there, as its row is
            win.spend += ev.cost
            for during in self._during:
                during[key] = during.get(key, 0.0) + ev.cost
            self._check(key, win, now, publish=True)

    def _current(self, key: BudgetKey, now: float) -> _Window:
        win = self._windows[key]
        if win.end is not None and now >= win.end:
            spent = win.spend >= self._budgets[key].limit
            win = self._windows[key] = _Window(*window(self._budgets[key].duration, now))
            for dep_id in self._deps_of.get(key, ()) if spent else ():
                self._changed(dep_id, "ok", "budget window reset", None)
        return win

    def _check(self, key: BudgetKey, win: _Window, now: float, *, publish: bool) -> None:
        budget = self._budgets[key]
        if win.crossed or win.spend < budget.limit:
            return
        win.crossed = True
        if not publish:
            return
        spent = Spent(budget, win.spend, win.end)
        if self._bus is not None:
            self._bus.publish(
                BudgetCrossed(
                    now, budget.scope, budget.name, "max_budget", win.spend, budget.limit, win.end
                )
            )
        for dep_id in self._deps_of.get(key, ()):
            self._changed(dep_id, HEALTH, spent.describe(), win.end)

    def _changed(self, dep_id: str, health: str, reason: str, until: float | None) -> None:
        if self._bus is not None:
            self._bus.publish(DeploymentChanged(dep_id, health, reason, until))

    # ---- reading ----
    def spent(self, dep_id: str) -> Spent | None:
        """Returns the spent budget that holds `dep_id` back (the one resetting last), or
        None when it may serve."""
        keys = self._keys_of.get(dep_id)
        if keys is None:
            return None
        now = self._wall()
        found: Spent | None = None
        for key in keys:
            win = self._current(key, now)
            budget = self._budgets[key]
            if win.spend >= budget.limit and (found is None or _later(win.end, found.reset_at)):
                found = Spent(budget, win.spend, win.end)
        return found

    def describe(self, dep_id: str) -> dict[str, Any]:
        """Returns the state document's budget fields of a deployment: `budget` (USD),
        `budget_spend`, `budget_reset_at`, `budget_scope` of the budget that binds it (the
        spent one, else its own, else its provider's); all None without a budget."""
        keys = self._keys_of.get(dep_id)
        if keys is None:
            return {"budget": None, "budget_spend": None, "budget_reset_at": None,
                    "budget_scope": None}  # fmt: skip
        spent = self.spent(dep_id)
        if spent is not None:
            budget, spend, end = spent.budget, spent.spend, spent.reset_at
        else:
            budget = self._budgets[keys[0]]
            win = self._current(keys[0], self._wall())
            spend, end = win.spend, win.end
        return {
            "budget": budget.limit,
            "budget_spend": round(spend, 6),
            "budget_reset_at": end,
            "budget_scope": budget.scope,
        }

    def note(self, dep_ids: Iterable[str]) -> str | None:
        """Returns why none of `dep_ids` may serve when every one is held back by a spent
        budget (for the client's error), else None."""
        spent = [self.spent(dep_id) for dep_id in dep_ids]
        if not spent or any(s is None for s in spent):
            return None
        reasons = sorted({s.describe() for s in spent if s is not None})
        return "every deployment's budget is spent: " + "; ".join(reasons)


def _later(a: float | None, b: float | None) -> bool:
    """Whether reset time `a` is later than `b` (None: never resets, the latest)."""
    if a is None:
        return b is not None
    return b is not None and a > b


def _read_windows(reader: SpendReader, starts: set[float]) -> dict[float, list[tuple[Any, ...]]]:
    """Reads the spend since each window start (one query per distinct start)."""
    return {start: reader.read(start) for start in starts}
