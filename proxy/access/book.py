"""`VirtualKeys`: the in-memory book of virtual keys the request path reads.

Every key is loaded at start and re-read from the store about once a second (in a thread), so
keys made by the command line on the same SQLite file, or by another instance on PostgreSQL,
appear, their spend included. The request path only touches memory: `identify` hashes the
presented key and looks it up; `admit` checks the key, its models, its budget and its limits
and reserves an estimate of the request's cost; `settle` releases it and adds the real cost.
Spend reaches the store as deltas, flushed by the same background task.

A budget holds exactly up to what is in flight: `admit` refuses once spend + reserved reaches
`max_budget`, so concurrent requests can overshoot by at most their reservations.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from proxy import durations
from proxy.access.caller import Caller
from proxy.access.shared import Limits, RedisKeyCounters
from proxy.errors import AuthError, ProxyError, clip
from proxy.events import BudgetCrossed, EventBus
from proxy.store.virtual_keys import KeyRow, KeyStore

log = logging.getLogger("llmproxy")

CLOSE_WAIT = 10.0
"""How long `close` waits for a store write in progress."""
REFRESH_INTERVAL = 1.0
"""Seconds between two re-reads of the store (and flushes of spend deltas)."""
MINUTE = 60.0
MINUTE_S = 60
MAX_REMEMBERED = 10_000
"""Presented keys whose hash `identify` remembers (a deleted key's entry finds nothing)."""
ALL_MODELS = frozenset({"*", "all-proxy-models"})
"""`models` entries that allow every group (LiteLLM's special name included)."""


class Ticket:
    """An admitted request of a virtual key: what `settle` gives back (read-only by
    convention: a plain slotted class, which builds several times faster than a frozen
    dataclass on the request path)."""

    __slots__ = ("token", "estimate", "window", "member")

    def __init__(
        self, token: str, estimate: float, window: float | None = None, member: str = ""
    ) -> None:
        self.token = token
        self.estimate = estimate
        """USD reserved against the budget."""
        self.window = window
        """Set when Redis admitted it: the budget window (its end, 0 for none) it was
        reserved in."""
        self.member = member
        """Its reservation's name in Redis."""


class _Live:
    """One key as the book holds it: its stored row and its live counters."""

    __slots__ = (
        "row", "caller", "spend", "reset_at", "reserved", "in_flight", "starts", "tokens",
        "crossed", "last_used", "generation", "budgets",
    )  # fmt: skip

    def __init__(self, row: KeyRow, generation: int) -> None:
        self.row = row
        self.caller = Caller(row.alias, row.token, False)
        self.spend = row.spend
        self.reset_at = row.budget_reset_at
        self.reserved = 0.0
        self.in_flight = 0
        self.starts = Minute()
        """Requests admitted in the last minute (rpm)."""
        self.tokens = Minute()
        """Tokens of requests settled in the last minute (tpm)."""
        self.crossed: set[str] = set()
        """The budgets ("soft_budget", "max_budget") already crossed in this window."""
        self.last_used = row.last_used
        self.generation = generation
        self.budgets = _budgets(row)
        """(kind, USD) of the budgets the key has, for the crossing checks."""
        self.mark_crossed()

    def set_row(self, row: KeyRow) -> None:
        if row.alias != self.row.alias:
            self.caller = Caller(row.alias, row.token, False)
        self.row = row
        self.budgets = _budgets(row)

    def mark_crossed(self) -> None:
        """Notes the budgets the spend already reached (no alert for those)."""
        for kind, budget in self.budgets:
            if self.spend >= budget:
                self.crossed.add(kind)


def _budgets(row: KeyRow) -> tuple[tuple[str, float], ...]:
    pairs = (("soft_budget", row.soft_budget), ("max_budget", row.max_budget))
    return tuple((kind, budget) for kind, budget in pairs if budget is not None)


class VirtualKeys:
    """The book of virtual keys: identify, admit, settle, and a snapshot for the state."""

    def __init__(
        self,
        store: KeyStore,
        bus: EventBus,
        *,
        aliases: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
        shared: RedisKeyCounters | None = None,
    ) -> None:
        """Builds an empty book; `start` loads it.

        Args:
            store: where keys and spend are kept.
            bus: where `BudgetCrossed` is published.
            aliases: `router_settings.model_group_alias` (alias -> group), for `models`.
            clock: wall time (unix seconds); tests drive budget windows with it.
            refresh_interval: seconds between two re-reads of the store.
            shared: Redis counters that several instances enforce one budget with (None:
                this instance enforces alone, its spend merged through the store).
        """
        self.shared = shared
        self.store = store
        self._bus = bus
        self._aliases = dict(aliases or {})
        self._clock = clock
        self._interval = refresh_interval
        self._keys: dict[str, _Live] = {}
        self._pending: dict[str, float] = {}
        """Spend added here and not yet written, per token."""
        self._resets: list[tuple[str, float | None, float]] = []
        """Windows started over here and not yet written: (token, old end, new end)."""
        self._generation = 0
        self._tokens: dict[str, str] = {}
        """Presented key -> its SHA-256, for keys found in the book: memory only, bounded
        (the request path then hashes a key once, not per request)."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.ok = True
        self.error: str | None = None

    # ---- life ----
    def use_aliases(self, aliases: Mapping[str, str]) -> None:
        """Takes a reloaded config's `router_settings.model_group_alias` (for `models`)."""
        self._aliases = dict(aliases)

    async def start(self) -> None:
        """Loads every key (in a thread) and starts the background re-read.

        Raises:
            the store's error when it cannot be read at start (the proxy then serves no
            virtual key until a re-read succeeds: logged, not raised).
        """
        try:
            await self.sync()
        except Exception as exc:  # the store may come back: the background task retries
            self._failed(exc)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="virtual-keys")
        if self.shared is not None:
            await self.shared.start()

    async def close(self) -> None:
        """Stops the background task (letting a write in progress finish: cancelling it would
        leave its thread writing spend that is then written again), writes the spend still
        pending, then closes the store."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                async with asyncio.timeout(CLOSE_WAIT):
                    await asyncio.shield(task)
            except Exception:  # stuck on the store (or failed): stop it all the same
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.shared is not None:
            await self.shared.close()
        with contextlib.suppress(Exception):
            await self.sync()
        await asyncio.to_thread(self.store.close)

    def wake(self) -> None:
        """Asks the background task to flush and re-read now."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return  # `close` writes what is pending
            try:
                await self.sync()
            except Exception as exc:  # the task's edge: report, retry next time, never die
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"[:300]
        if self.ok:
            log.warning("virtual keys: store %s failing: %s", self.store.describe(), text)
        self.ok, self.error = False, text

    async def sync(self) -> None:
        """Writes pending spend and window resets, then re-reads every key (in a thread).

        Raises:
            the store's error (what was pending is kept for the next try).
        """
        resets, self._resets = self._resets, []
        deltas, self._pending = self._pending, {}
        now = self._clock()
        generation = self._generation
        self._generation += 1
        try:
            rows = await asyncio.to_thread(self._write_and_load, resets, deltas, now)
        except Exception:  # not written: kept for the next try (a cancelled write may finish)
            self._resets = resets + self._resets
            for token, delta in deltas.items():
                self._pending[token] = self._pending.get(token, 0.0) + delta
            raise
        if not self.ok:
            log.warning("virtual keys: store %s is back", self.store.describe())
        self.ok, self.error = True, None
        self._merge(rows, generation)

    def _write_and_load(
        self,
        resets: list[tuple[str, float | None, float]],
        deltas: dict[str, float],
        now: float,
    ) -> list[KeyRow]:
        store = self.store
        for token, old, new in resets:
            store.reset_window(token, old, new)
        store.add_spend({t: (d, now) for t, d in deltas.items()})
        return store.load()

    def _merge(self, rows: list[KeyRow], generation: int) -> None:
        seen = set()
        for row in rows:
            seen.add(row.token)
            live = self._keys.get(row.token)
            pending = self._pending.get(row.token, 0.0)
            if live is None:
                live = self._keys[row.token] = _Live(row, self._generation)
                live.spend = row.spend + pending
                continue
            live.set_row(row)
            if row.last_used is not None and (live.last_used or 0) < row.last_used:
                live.last_used = row.last_used
            if live.reset_at is not None and (row.budget_reset_at or 0) < live.reset_at:
                continue  # this book started a new window the store does not show yet
            if live.reset_at != row.budget_reset_at:
                live.crossed.clear()  # another writer started a new window
            live.reset_at = row.budget_reset_at
            live.spend = row.spend + pending
        for token in [t for t, k in self._keys.items() if t not in seen]:
            if self._keys[token].generation <= generation:
                del self._keys[token]  # deleted by another writer

    # ---- what the management API changes ----
    def put(self, row: KeyRow, *, spend_set: bool = False) -> None:
        """Adds or replaces a key as the management API just stored it; `spend_set`: an
        operator set its spend (shared with the other instances through Redis)."""
        if spend_set:
            self._pending.pop(row.token, None)  # spent before the operator's value: gone
            if self.shared is not None:
                self.shared.set_spend(row.token, row.budget_reset_at or 0.0, row.spend)
        live = self._keys.get(row.token)
        if live is None:
            self._keys[row.token] = _Live(row, self._generation)
            return
        live.set_row(row)
        live.spend = row.spend + self._pending.get(row.token, 0.0)
        live.reset_at = row.budget_reset_at
        live.crossed.clear()  # budgets may have changed: alert anew for what is not reached
        live.mark_crossed()

    def remove(self, tokens: list[str]) -> None:
        """Forgets deleted keys."""
        for token in tokens:
            self._keys.pop(token, None)
            self._pending.pop(token, None)
        if tokens:
            self._tokens.clear()

    def live_spend(self, token: str) -> tuple[float, float | None] | None:
        """Returns: (spend, budget_reset_at) of a key as this book knows it, or None."""
        live = self._keys.get(token)
        if live is None:
            return None
        self._roll(live, self._clock())
        return live.spend, live.reset_at

    # ---- the request path ----
    def identify(self, key: str) -> Caller | None:
        """Returns: the caller of a presented key, or None when no virtual key has it.

        O(1): one SHA-256 and a dict lookup. Blocked and expired keys are identified too;
        `check` refuses them.
        """
        token = self._tokens.get(key)
        if token is None:
            token = hashlib.sha256(key.encode()).hexdigest()
            if token not in self._keys:
                return None  # unknown keys are not remembered: guessing cannot grow this
            if len(self._tokens) >= MAX_REMEMBERED:
                self._tokens.clear()
            self._tokens[key] = token
        live = self._keys.get(token)
        return None if live is None else live.caller

    def check(self, caller: Caller, group: str | None) -> None:
        """Raises the 401 of an unknown, blocked or expired key and the 403 of a group it may
        not call (`group` None: no model named, e.g. GET /v1/models). The master key passes.

        Raises:
            AuthError: 401 `invalid_api_key`, `key_blocked` or `key_expired`.
            ProxyError: 403 `key_model_access_denied`.
        """
        if caller.master:
            return
        self._checked(caller, group, self._clock())

    def _checked(self, caller: Caller, group: str | None, now: float) -> _Live:
        live = self._keys.get(caller.token)
        if live is None:
            raise AuthError()
        row = live.row
        if row.blocked:
            raise _auth(f"The key '{clip(row.alias)}' is blocked.", "key_blocked")
        if row.expires is not None and now >= row.expires:
            raise _auth(
                f"The key '{clip(row.alias)}' expired at {_when(row.expires)}.", "key_expired"
            )
        if group is not None and not allows(row.models, group, self._aliases):
            raise ProxyError(
                f"The key '{clip(row.alias)}' may not call the model '{clip(group)}'; "
                f"it may call: {', '.join(clip(m, 60) for m in row.models)}.",
                status=403,
                type="permission_error",
                param="model",
                code="key_model_access_denied",
            )
        return live

    async def admit(self, caller: Caller, group: str, estimate: float) -> Ticket:
        """Admits one request of a virtual key and reserves `estimate` USD for it.

        Raises:
            AuthError: 401 (unknown, blocked or expired key).
            ProxyError: 403 `key_model_access_denied`; 400 `budget_exceeded`; 429 over
                rpm_limit, tpm_limit or max_parallel_requests, with Retry-After.
        """
        now = self._clock()
        live = self._checked(caller, group, now)
        row = live.row
        if live.reset_at is not None and now >= live.reset_at:
            self._roll(live, now)
        if estimate < 0:
            estimate = 0.0
        if self.shared is not None and self.shared.usable and _limited_at_all(row):
            ticket = await self._admit_shared(live, self.shared, estimate, now)
            if ticket is not None:
                return ticket  # else Redis did not answer: enforced here alone
        if row.max_budget is not None and live.spend + live.reserved >= row.max_budget:
            raise _over_budget(live, now, live.reserved)
        second = int(now)
        starts = live.starts
        if row.rpm_limit is not None and starts.total(second) >= row.rpm_limit:
            wait = starts.wait(now)
            raise _limited(row, f"rpm_limit ({row.rpm_limit} requests a minute)", wait)
        if row.tpm_limit is not None and live.tokens.total(second) >= row.tpm_limit:
            wait = live.tokens.wait(now)
            raise _limited(row, f"tpm_limit ({row.tpm_limit} tokens a minute)", wait)
        if row.max_parallel_requests is not None and live.in_flight >= row.max_parallel_requests:
            raise _limited(
                row, f"max_parallel_requests ({row.max_parallel_requests} at a time)", 1.0
            )
        live.reserved += estimate
        live.in_flight += 1
        starts.add(second, 1)
        return Ticket(row.token, estimate)

    async def _admit_shared(
        self, live: _Live, shared: RedisKeyCounters, estimate: float, now: float
    ) -> Ticket | None:
        """Admits through Redis (one budget and one set of limits for every instance).

        Returns:
            The ticket, or None when Redis did not answer (enforce locally).

        Raises:
            ProxyError: as `admit`, from the cluster's counts.
        """
        row = live.row
        window = live.reset_at or 0.0
        limits = Limits(row.max_budget, row.rpm_limit, row.tpm_limit, row.max_parallel_requests)
        answer = await shared.admit(row.token, window, live.spend, estimate, limits)
        if answer is None:
            return None
        if (live.reset_at or 0.0) == window:
            live.spend = answer.spend
        refused = answer.refused
        if refused == "budget":
            raise _over_budget(live, now, answer.reserved)
        if refused == "rpm":
            raise _limited(row, f"rpm_limit ({row.rpm_limit} requests a minute)", answer.wait)
        if refused == "tpm":
            raise _limited(row, f"tpm_limit ({row.tpm_limit} tokens a minute)", answer.wait)
        if refused == "parallel":
            raise _limited(
                row, f"max_parallel_requests ({row.max_parallel_requests} at a time)", 1.0
            )
        live.reserved += estimate
        live.in_flight += 1
        live.starts.add(int(now), 1)
        return Ticket(row.token, estimate, window, answer.member)

    def settle(self, ticket: Ticket, cost: float | None, tokens: int) -> None:
        """Ends an admitted request: releases its reservation, adds its real cost (None, an
        unknown price: 0) and tokens, and publishes a budget it crossed (once per window).
        Never raises; the spend reaches the store within about a second."""
        live = self._keys.get(ticket.token)
        if live is None:
            return  # deleted meanwhile
        now = self._clock()
        reserved = live.reserved - ticket.estimate
        live.reserved = reserved if reserved > 1e-12 else 0.0
        if live.in_flight > 0:
            live.in_flight -= 1
        live.last_used = now
        if tokens > 0:
            live.tokens.add(int(now), tokens)
        if live.reset_at is not None and now >= live.reset_at:
            self._roll(live, now)
        spent = cost if cost is not None and cost > 0 and math.isfinite(cost) else 0.0
        live.spend += spent
        pending = self._pending
        pending[ticket.token] = pending.get(ticket.token, 0.0) + spent  # last_used goes too
        if ticket.window is not None and self.shared is not None:
            window = ticket.window
            self.shared.settle(
                ticket.token,
                window,
                live.spend - spent,
                ticket.member,
                spent,
                tokens,
                lambda total: self._shared_spend(ticket.token, window, total),
            )
        if live.budgets:
            self._publish_crossings(live, now)

    def _shared_spend(self, token: str, window: float, total: float) -> None:
        """Takes the cluster's spend of a key's window, as Redis answered a settlement."""
        live = self._keys.get(token)
        if live is not None and (live.reset_at or 0.0) == window:
            live.spend = max(live.spend, total)
            self._publish_crossings(live, self._clock())

    def _publish_crossings(self, live: _Live, now: float) -> None:
        for kind, budget in live.budgets:
            if live.spend >= budget and kind not in live.crossed:
                live.crossed.add(kind)
                alias = live.row.alias
                self._bus.publish(
                    BudgetCrossed(now, "key", alias, kind, live.spend, budget, live.reset_at)
                )

    def _roll(self, live: _Live, now: float) -> None:
        """Starts the budget window over when it ended (spend 0, next end persisted)."""
        reset_at = live.reset_at
        duration = live.row.budget_duration
        if reset_at is None or duration is None or now < reset_at:
            return
        try:
            new = durations.next_end(duration, reset_at, now)
        except durations.DurationError:
            return
        live.spend = 0.0
        live.reset_at = new
        live.crossed.clear()
        self._pending.pop(live.row.token, None)  # the old window's spend no longer counts
        self._resets.append((live.row.token, reset_at, new))

    # ---- the state document ----
    def snapshot(self) -> list[dict[str, Any]]:
        """Returns: one dict per key for the state document (never the key itself).

        Changes nothing, so any thread may call it (the dashboard reads it from its own): a
        window that ended shows as started over, as the next request will find it.
        """
        now = self._clock()
        out = []
        for live in list(self._keys.values()):
            row = live.row
            spend, reset_at = live.spend, live.reset_at
            if reset_at is not None and row.budget_duration is not None and now >= reset_at:
                spend = 0.0
                with contextlib.suppress(durations.DurationError):
                    reset_at = durations.next_end(row.budget_duration, reset_at, now)
            starts = live.starts.peek(int(now))
            tpm = live.tokens.peek(int(now))
            out.append(
                {
                    "alias": row.alias,
                    "key_name": row.key_name,
                    "token": row.token[:12],
                    "spend": spend,
                    "max_budget": row.max_budget,
                    "soft_budget": row.soft_budget,
                    "budget_duration": row.budget_duration,
                    "budget_reset_at": reset_at,
                    "rpm_limit": row.rpm_limit,
                    "rpm": starts,
                    "tpm_limit": row.tpm_limit,
                    "tpm": tpm,
                    "max_parallel_requests": row.max_parallel_requests,
                    "in_flight": live.in_flight,
                    "reserved": live.reserved,
                    "models": list(row.models),
                    "blocked": row.blocked,
                    "expires": row.expires,
                    "expired": row.expires is not None and now >= row.expires,
                    "last_used": live.last_used,
                    "created_at": row.created_at,
                    "metadata": dict(row.metadata),
                }
            )
        return out


def allows(models: tuple[str, ...], group: str, aliases: Mapping[str, str]) -> bool:
    """Returns: whether a key limited to `models` may call `group`.

    An empty list allows all. An entry may be the group, an alias of it
    (`router_settings.model_group_alias`), the group an alias names, or a wildcard
    (`openai/*`).
    """
    if not models:
        return True
    target = aliases.get(group)
    for name in models:
        if name in (group, target) or name in ALL_MODELS:
            return True
        if aliases.get(name) == group:
            return True
        if name.endswith("*"):
            prefix = name[:-1]
            if group.startswith(prefix) or (target is not None and target.startswith(prefix)):
                return True
    return False


class Minute:
    """A sliding minute of counts in one-second buckets (at most 60 of them, whatever the
    rate: a timestamp per request would hold a minute of objects for the GC to walk)."""

    __slots__ = ("_buckets", "_sum")

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()
        self._sum = 0

    def add(self, second: int, n: int) -> None:
        """Counts `n` at unix second `second` (drops what left the minute)."""
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += n
        else:
            buckets.append([second, n])
        self._sum += n
        self.total(second)

    def total(self, second: int) -> int:
        """Returns: the count of the minute ending at `second` (older buckets dropped)."""
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - MINUTE_S:
            self._sum -= buckets.popleft()[1]
        return self._sum

    def peek(self, second: int) -> int:
        """Returns: the count of the minute ending at `second`, changing nothing (any thread)."""
        return sum(n for s, n in list(self._buckets) if s > second - MINUTE_S)

    def wait(self, now: float) -> float:
        """Returns: seconds until the oldest bucket leaves the minute."""
        buckets = self._buckets
        return buckets[0][0] + MINUTE_S - now if buckets else MINUTE


def _auth(message: str, code: str) -> AuthError:
    err = AuthError(message)
    err.code = code
    return err


def _limited_at_all(row: KeyRow) -> bool:
    """Returns: whether a key has a budget or a limit (else there is nothing to share)."""
    return (
        row.max_budget is not None
        or row.rpm_limit is not None
        or row.tpm_limit is not None
        or row.max_parallel_requests is not None
    )


def _over_budget(live: _Live, now: float, reserved: float) -> ProxyError:
    row = live.row
    assert row.max_budget is not None
    if live.reset_at is not None:
        resets = f"it resets at {_when(live.reset_at)} (in {_span(live.reset_at - now)})."
    else:
        resets = "it does not reset (raise max_budget with /key/update)."
    spent = f"${live.spend:.4f}"
    if reserved > 1e-12:
        spent += f" (+${reserved:.4f} in flight)"
    return ProxyError(
        f"Budget has been exceeded for key '{clip(row.alias)}': spent {spent} of "
        f"${row.max_budget:.4f}; {resets}",
        status=400,
        type="budget_exceeded",
        code="budget_exceeded",
    )


def _limited(row: KeyRow, what: str, wait: float) -> ProxyError:
    seconds = max(1, math.ceil(wait))
    return ProxyError(
        f"The key '{clip(row.alias)}' is over its {what}; retry in {seconds}s.",
        status=429,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"retry-after": str(seconds)},
    )


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    """Returns: `3h 12m`, `2d 4h`, `45s` for a duration."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
