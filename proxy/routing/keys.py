"""KeyPool: per-deployment health, cooldowns, rpm/tpm windows, latency, and the choice of key.

The router asks `choose()` for a usable deployment of a group, then reports `begin`, `succeed`
or `fail`. Every rule about when a deployment may be used lives here; the router only loops.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from proxy.config.settings import RouterSettings
from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.events import DeploymentChanged, EventBus
from proxy.routing.budgets import HEALTH as BUDGET_SPENT
from proxy.routing.budgets import Budgets
from proxy.routing.policies import allowed_fails_for, error_kind
from proxy.routing.sessions import SessionMap
from proxy.scale.state import LocalState, LocalStats, SharedState

WINDOW = 60.0
"""rpm/tpm and allowed_fails are counted over a sliding minute."""
MAX_COOLDOWN = 300.0
"""A Retry-After longer than this is capped."""
KEY_REJECTED_COOLDOWN = 60.0
LATENCY_SAMPLES = 50
EXPLORE = 0.1
"""latency-based-routing: share of requests sent to a random usable deployment."""


@dataclass
class DeploymentState:
    """What the pool knows about one deployment; read by snapshot(), written by the pool."""

    dep: Deployment
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    cooldown_until: float = 0.0
    cooldown_reason: str | None = None
    key_rejected: bool = False
    disabled: bool = False
    last_error: str | None = None
    last_error_at: float | None = None
    fail_times: deque[float] = field(default_factory=deque)
    fail_kinds: deque[str] = field(default_factory=deque)
    """LiteLLM's error kind of each of `fail_times` (for `allowed_fails_policy`)."""
    starts: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_used: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    last_latency_at: float = 0.0
    held_until: float = 0.0
    """The cluster-wide rpm/tpm window is full until then (SharedState.reserve said so)."""
    last_probe_at: float | None = None
    """Wall time of the latest background health check (`routing/health_checks.py`)."""
    last_probe: str | None = None
    """Its result: `ok`, or the error in words."""
    last_probe_ok: bool | None = None

    def prune(self, now: float) -> None:
        edge = now - WINDOW
        while self.fail_times and self.fail_times[0] <= edge:
            self.fail_times.popleft()
            self.fail_kinds.popleft()
        while self.starts and self.starts[0] <= edge:
            self.starts.popleft()
        while self.tokens and self.tokens[0][0] <= edge:
            self.tokens_used -= self.tokens.popleft()[1]


class KeyPool:
    """Chooses deployments by the configured strategy and keeps their health."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        settings: RouterSettings,
        bus: EventBus | None = None,
        *,
        price: Callable[[Deployment], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.states: dict[str, DeploymentState] = {d.id: DeploymentState(d) for d in deployments}
        self.settings = settings
        self._bus = bus
        self._price = price or (lambda _d: None)
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self.shared: SharedState = shared or LocalState()
        self.shared.bind(self)
        self.sessions = SessionMap(self.shared, clock=clock) if settings.sticky_sessions else None
        """Sticky sessions (None when `router_settings.sticky_sessions` is false)."""
        self.budgets: Budgets | None = None
        """Deployment and provider budgets (`routing/budgets.py`); a deployment whose budget is
        spent is not usable until its window resets. None: no deployment has a budget."""

    def seed(self, value: int) -> None:
        """Re-seeds the random part of every strategy, for reproducible runs and tests."""
        self._rng.seed(value)

    def successor(self, deployments: Iterable[Deployment], settings: RouterSettings) -> KeyPool:
        """Returns the pool of a reloaded config. A deployment with the same id and the same
        settings keeps its state object (cooldown, rpm/tpm windows, latency, in-flight count),
        shared with the requests still in flight on this pool; a new or changed one starts
        afresh. Sticky sessions and budgets carry over; the shared state binds to the new pool.
        """
        pool = KeyPool(
            (),
            settings,
            self._bus,
            price=self._price,
            clock=self._clock,
            wall=self._wall,
            rng=self._rng,
            shared=self.shared,
        )
        for dep in deployments:
            old = self.states.get(dep.id)
            same = old is not None and old.dep == dep
            pool.states[dep.id] = old if same and old is not None else DeploymentState(dep)
        if pool.sessions is not None and self.sessions is not None:
            pool.sessions = self.sessions
        pool.budgets = self.budgets
        return pool

    # ---- choosing ----
    def usable(
        self,
        deps: Sequence[Deployment],
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> list[DeploymentState]:
        """Returns the deployments that may take a request now, lowest `order` tier only."""
        now = self._clock()
        out = []
        for dep in deps:
            st = self.states[dep.id]
            if dep.id in exclude or not self._available(st, now):
                continue
            out.append(st)
        if out:
            tier = min(st.dep.order for st in out)
            out = [st for st in out if st.dep.order == tier]
        return out

    def choose(
        self,
        deps: Sequence[Deployment],
        exclude: set[str] | frozenset[str] = frozenset(),
        prefer: str | None = None,
    ) -> DeploymentState | None:
        """Returns `prefer` when it is usable (a sticky session's deployment), else the
        deployment the strategy picks, or None when none is usable."""
        cands = self.usable(deps, exclude)
        if not cands:
            return None
        if prefer is not None:
            for st in cands:
                if st.dep.id == prefer:
                    return st
        if len(cands) == 1:
            return cands[0]
        strategy = self.settings.routing_strategy
        if strategy == "least-busy":
            busy = {
                st.dep.id: st.in_flight + self.shared.remote(st.dep.id).in_flight for st in cands
            }
            low = min(busy.values())
            return self._rng.choice([st for st in cands if busy[st.dep.id] == low])
        if strategy == "latency-based-routing":
            return self._by_latency(cands)
        if strategy in ("usage-based-routing", "usage-based-routing-v2"):
            return min(cands, key=lambda st: (self._usage_share(st), self._rng.random()))
        if strategy == "cost-based-routing":
            return min(cands, key=lambda st: (_price_key(self._price(st.dep)), self._rng.random()))
        return self._shuffle(cands)

    def _shuffle(self, cands: list[DeploymentState]) -> DeploymentState:
        deps = [st.dep for st in cands]
        if any(d.weight != 1.0 for d in deps):
            weights = [d.weight for d in deps]
        elif all(d.rpm for d in deps):
            weights = [float(d.rpm or 0) for d in deps]
        elif all(d.tpm for d in deps):
            weights = [float(d.tpm or 0) for d in deps]
        else:
            return self._rng.choice(cands)
        if sum(weights) <= 0:
            return self._rng.choice(cands)
        return self._rng.choices(cands, weights=weights)[0]

    def _by_latency(self, cands: list[DeploymentState]) -> DeploymentState:
        now = self._clock()
        # Untried, or not measured for a minute (e.g. just back from cooldown): measure it again.
        stale = [st for st in cands if not st.latencies or now - st.last_latency_at > WINDOW]
        if stale:
            return self._rng.choice(stale)
        if self._rng.random() < EXPLORE:
            return self._rng.choice(cands)
        return min(cands, key=self._mean_latency)

    def _mean_latency(self, st: DeploymentState) -> float:
        """This instance's samples, weighted with the other instances' mean."""
        remote = self.shared.remote(st.dep.id)
        total, count = sum(st.latencies), len(st.latencies)
        if remote.latency_ms is not None and remote.samples:
            total += remote.latency_ms * remote.samples
            count += remote.samples
        return total / count if count else 0.0

    def _usage_share(self, st: DeploymentState) -> float:
        dep = st.dep
        shares = []
        if dep.rpm:
            shares.append(len(st.starts) / dep.rpm)
        if dep.tpm:
            shares.append(st.tokens_used / dep.tpm)
        return max(shares) if shares else float(len(st.starts))

    def ready(self, dep_id: str) -> bool:
        """Whether `dep_id` may take a request now (not cooling, disabled or at a limit)."""
        st = self.states.get(dep_id)
        return st is not None and self._available(st, self._clock())

    def _available(self, st: DeploymentState, now: float) -> bool:
        if st.disabled or st.dep.disabled_reason:
            return False
        if st.cooldown_until > now:
            return False
        if st.cooldown_until:
            self._recover(st)
        if st.held_until > now:
            return False
        if self.budgets is not None and self.budgets.spent(st.dep.id) is not None:
            return False
        st.prune(now)
        dep = st.dep
        if dep.rpm is not None and len(st.starts) >= dep.rpm:
            return False
        return not (dep.tpm is not None and st.tokens_used >= dep.tpm)

    def wait_hint(self, deps: Sequence[Deployment]) -> float | None:
        """Returns seconds until some deployment of `deps` may be usable again, if known."""
        now = self._clock()
        waits: list[float] = []
        for dep in deps:
            st = self.states[dep.id]
            if st.disabled or dep.disabled_reason:
                continue
            st.prune(now)
            wait = max(0.0, st.cooldown_until - now, st.held_until - now)
            if dep.rpm is not None and len(st.starts) >= dep.rpm and st.starts:
                wait = max(wait, st.starts[0] + WINDOW - now)
            if dep.tpm is not None and st.tokens_used >= dep.tpm and st.tokens:
                wait = max(wait, st.tokens[0][0] + WINDOW - now)
            if self.budgets is not None and (spent := self.budgets.spent(dep.id)) is not None:
                if spent.reset_at is None:
                    continue  # never usable again
                wait = max(wait, spent.reset_at - self._wall())
            waits.append(wait)
        return min(waits) if waits else None

    def rate_limited(self, deps: Sequence[Deployment]) -> bool:
        """True when every enabled deployment is held back by its rpm/tpm or a 429 cooldown."""
        now = self._clock()
        found = False
        for dep in deps:
            st = self.states[dep.id]
            if st.disabled or dep.disabled_reason:
                continue
            found = True
            at_limit = (
                (dep.rpm is not None and len(st.starts) >= dep.rpm)
                or (dep.tpm is not None and st.tokens_used >= dep.tpm)
                or st.held_until > now
            )
            if not at_limit and not (st.cooldown_until > now and st.cooldown_reason == "429"):
                return False
        return found

    # ---- outcomes ----
    def begin(self, st: DeploymentState) -> None:
        st.in_flight += 1
        st.requests += 1
        st.starts.append(self._clock())

    def succeed(self, st: DeploymentState, latency_ms: float, *, release: bool = True) -> None:
        """Records a success; a stream keeps its in-flight slot until `release`."""
        if release:
            st.in_flight -= 1
        st.latencies.append(latency_ms)
        st.last_latency_at = self._clock()

    def add_tokens(self, st: DeploymentState, tokens: int) -> None:
        """Counts tokens toward the deployment's tpm window."""
        if tokens > 0:
            st.tokens.append((self._clock(), tokens))
            st.tokens_used += tokens
            if st.dep.tpm is not None:
                self.shared.on_tokens(st.dep.id, tokens)

    def release(self, st: DeploymentState) -> None:
        """Frees the in-flight slot without a verdict (a bad request, a finished stream)."""
        st.in_flight -= 1

    def fail(self, st: DeploymentState, err: UpstreamError, *, release: bool = True) -> None:
        """Records a failure; cools the deployment down when the rules say so."""
        if release:
            st.in_flight -= 1
        st.errors += 1
        st.last_error = f"{err.status} {err.message}"[:300]
        st.last_error_at = self._wall()
        if not err.counts_against:
            return
        now = self._clock()
        st.prune(now)
        st.fail_times.append(now)
        st.fail_kinds.append(kind := error_kind(err))
        cooldown = self.settings.cooldown_time
        if err.key_rejected:
            st.key_rejected = True
            self._cool(st, max(cooldown, KEY_REJECTED_COOLDOWN), "key rejected")
        elif err.status == 429:
            wait = err.retry_after if err.retry_after is not None else cooldown
            self._cool(st, min(MAX_COOLDOWN, max(wait, 0.001)), "429")
        elif (fails := self._fails(st, kind)) > (
            allowed_fails_for(self.settings.allowed_fails_policy, err, self.settings.allowed_fails)
        ):
            self._cool(st, cooldown, f"{fails} failures in a minute")
        else:
            self._publish(st, "failing", st.last_error)

    def _fails(self, st: DeploymentState, kind: str) -> int:
        """The failures in the last minute that count against `allowed_fails`: those of
        `kind` when `allowed_fails_policy` names it (as LiteLLM counts them), else all of them,
        the other instances' included."""
        policy = self.settings.allowed_fails_policy
        if policy and f"{kind}AllowedFails" in policy:
            return st.fail_kinds.count(kind)
        return len(st.fail_times) + self.shared.remote(st.dep.id).fails

    def _cool(self, st: DeploymentState, seconds: float, reason: str) -> None:
        st.cooldown_until = self._clock() + seconds
        st.cooldown_reason = reason
        self._publish(
            st,
            "key_rejected" if st.key_rejected else "cooling_down",
            reason,
            self._wall() + seconds,
        )
        self.shared.on_cooldown(st.dep.id, seconds, reason, st.key_rejected)

    def _recover(self, st: DeploymentState) -> None:
        st.cooldown_until = 0.0
        st.cooldown_reason = None
        st.key_rejected = False
        st.fail_times.clear()
        st.fail_kinds.clear()
        self._publish(st, "ok", "cooldown over")

    def reset(self, dep_id: str, reason: str = "reset by the operator") -> None:
        """Clears a cooldown and the failure count (dashboard action, a passing probe)."""
        st = self.states[dep_id]
        st.cooldown_until, st.cooldown_reason, st.key_rejected = 0.0, None, False
        st.fail_times.clear()
        st.fail_kinds.clear()
        self._publish(st, self.health(st), reason)
        self.shared.on_clear(dep_id)

    def probed(self, dep_id: str, detail: str, err: UpstreamError | None, *, proved: bool) -> None:
        """Records a background health check: a failure counts as a request's would (it may
        cool the deployment down); a passing check that `proved` the key ends a cooldown early,
        except a 429's (listing models does not show the rate limit has room again)."""
        st = self.states.get(dep_id)
        if st is None:
            return
        st.last_probe_at = self._wall()
        st.last_probe = "ok" if err is None else detail
        st.last_probe_ok = err is None
        if err is not None:
            self.fail(st, err, release=False)
        elif proved and st.cooldown_until > self._clock() and st.cooldown_reason != "429":
            self.reset(dep_id, "health check passed")

    # ---- shared state (proxy/shared_state.py PoolView) ----
    def hold(self, st: DeploymentState, seconds: float) -> None:
        """Treats `st` as at its rpm/tpm limit for `seconds` (the cluster's window is full)."""
        st.held_until = self._clock() + seconds

    def apply_cooldown(self, dep_id: str, seconds: float, reason: str, key_rejected: bool) -> None:
        """Cools a deployment another instance cooled; never shared back."""
        st = self.states.get(dep_id)
        until = self._clock() + seconds
        if st is None or until <= st.cooldown_until:
            return
        st.cooldown_until, st.cooldown_reason = until, reason
        st.key_rejected = st.key_rejected or key_rejected
        health = "key_rejected" if st.key_rejected else "cooling_down"
        self._publish(st, health, f"{reason} (another instance)", self._wall() + seconds)

    def clear_cooldown(self, dep_id: str) -> None:
        """Clears a cooldown an operator reset on another instance."""
        st = self.states.get(dep_id)
        if st is None:
            return
        st.cooldown_until, st.cooldown_reason, st.key_rejected = 0.0, None, False
        st.fail_times.clear()
        st.fail_kinds.clear()
        self._publish(st, self.health(st), "reset on another instance")

    def local_stats(self) -> dict[str, LocalStats]:
        """Returns: in-flight, latency samples and failures this minute, per busy deployment."""
        now = self._clock()
        out: dict[str, LocalStats] = {}
        for dep_id, st in self.states.items():
            st.prune(now)
            if st.in_flight or st.latencies or st.fail_times:
                lat = st.latencies
                out[dep_id] = LocalStats(st.in_flight, sum(lat), len(lat), len(st.fail_times))
        return out

    def set_disabled(self, dep_id: str, disabled: bool) -> None:
        st = self.states[dep_id]
        st.disabled = disabled
        self._publish(st, self.health(st), "disabled by the operator" if disabled else "enabled")

    def _publish(
        self, st: DeploymentState, health: str, reason: str | None, until: float | None = None
    ) -> None:
        if self._bus is not None:
            self._bus.publish(DeploymentChanged(st.dep.id, health, reason, until))

    # ---- reading ----
    def health(self, st: DeploymentState) -> str:
        now = self._clock()
        if st.dep.disabled_reason:
            return "key_missing"
        if st.disabled:
            return "disabled"
        if self.budgets is not None and self.budgets.spent(st.dep.id) is not None:
            return BUDGET_SPENT
        if st.cooldown_until > now:
            return "key_rejected" if st.key_rejected else "cooling_down"
        if st.cooldown_until:
            self._recover(st)  # the cooldown lapsed: back to ok now, not when next picked
        st.prune(now)
        return "failing" if st.fail_times else "ok"

    def snapshot(self) -> list[dict[str, Any]]:
        """Returns the "deployments" list of the state document (docs/internals.md)."""
        now, wall = self._clock(), self._wall()
        return [self._describe(st, now, wall) for st in list(self.states.values())]

    def _describe(self, st: DeploymentState, now: float, wall: float) -> dict[str, Any]:
        dep = st.dep
        health = self.health(st)
        remaining = st.cooldown_until - now if st.cooldown_until > now else None
        lat = list(st.latencies)
        return {
            "id": dep.id,
            "group": dep.group,
            "provider": dep.provider,
            "model": dep.model,
            "api_base": dep.api_base,
            "key": dep.key_redacted,
            "health": health,
            "health_reason": dep.disabled_reason or self._budget_reason(st) or st.cooldown_reason,
            "cooldown_until": wall + remaining if remaining else None,
            "cooldown_remaining_s": round(remaining, 1) if remaining else None,
            "in_flight": st.in_flight,
            "rpm_used": len(st.starts),
            "rpm_limit": dep.rpm,
            "tpm_used": st.tokens_used,
            "tpm_limit": dep.tpm,
            "limit_frees_at": _limit_frees_at(st, now, wall),
            "latency_p50_ms": round(median(lat), 1) if lat else None,
            "requests": st.requests,
            "errors": st.errors,
            "fails_this_minute": len(st.fail_times),
            "last_error": st.last_error,
            "last_error_at": st.last_error_at,
            "last_probe_at": st.last_probe_at,
            "last_probe": st.last_probe,
            "last_probe_ok": st.last_probe_ok,
            "weight": dep.weight,
            "order": dep.order,
            "sessions": self.sessions.count(dep.id) if self.sessions is not None else 0,
            **(self.budgets.describe(dep.id) if self.budgets is not None else _NO_BUDGET),
        }

    def _budget_reason(self, st: DeploymentState) -> str | None:
        spent = self.budgets.spent(st.dep.id) if self.budgets is not None else None
        return None if spent is None else spent.describe()


_NO_BUDGET = {"budget": None, "budget_spend": None, "budget_reset_at": None, "budget_scope": None}
"""The state document's budget fields of a deployment without a budget."""


def _price_key(price: float | None) -> float:
    return float("inf") if price is None else price


def _limit_frees_at(st: DeploymentState, now: float, wall: float) -> float | None:
    """Returns the wall time a deployment at its rpm/tpm limit takes requests again (enough of
    its counted requests or tokens leave the minute window, and the cluster's hold ended), or
    None when it is not at a limit. `health()` pruned the window just before."""
    dep, frees = st.dep, st.held_until if st.held_until > now else 0.0
    if dep.rpm is not None and len(st.starts) >= dep.rpm:  # one below the limit frees it
        frees = max(frees, st.starts[len(st.starts) - dep.rpm] + WINDOW)
    if dep.tpm is not None and st.tokens_used >= dep.tpm:
        used = st.tokens_used
        for at, count in st.tokens:  # the oldest leave first
            used -= count
            if used < dep.tpm:
                frees = max(frees, at + WINDOW)
                break
    return round(wall + frees - now, 1) if frees > now else None
