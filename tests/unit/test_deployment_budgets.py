"""Deployment and provider budgets (`proxy/routing/budgets.py`) with an injected wall clock:
aligned windows and their resets (`1d` at midnight UTC, `1mo` on the 1st, `30d` from the
epoch), the key pool skipping a spent deployment like a cooldown, the router's clear error,
the spend loaded at start from a real SQLite usage file (rows in and out of the window), and a
shared store's re-read seeing another instance's spend."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from proxy.config.loader import build_config
from proxy.errors import AllTargetsFailed, ConfigError
from proxy.events import BudgetCrossed, DeploymentChanged, EventBus, RequestFinished
from proxy.routing.budgets import Budgets, SqliteSpend, window
from proxy.store import usage_sqlite
from tests.unit.conftest import FakeClock
from tests.unit.parts import Parts, anthropic_dep, chat, openai_dep

_ids = itertools.count(1)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def finished(dep: str, provider: str, cost: float | None, at: float) -> RequestFinished:
    return RequestFinished(
        id=f"r{next(_ids)}", time=at, group="gpt", deployment=dep, provider=provider,
        status=200, latency_ms=10.0, ttft_ms=None, prompt_tokens=10, completion_tokens=5,
        cost=cost, cache="miss", attempts=1, fallback=None, stream=False,
    )  # fmt: skip


class Wall:
    """An injected wall clock (unix seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---- windows ----


def test_1d_window_runs_from_midnight_utc_to_midnight() -> None:
    assert window("1d", ts(2026, 12, 2, 13, 45)) == (ts(2026, 12, 2), ts(2026, 12, 3))
    assert window("1d", ts(2026, 12, 2)) == (ts(2026, 12, 2), ts(2026, 12, 3))  # at the edge
    assert window("1d", ts(2026, 12, 2) - 0.5) == (ts(2026, 12, 1), ts(2026, 12, 2))


def test_1mo_window_runs_from_the_first_of_the_month() -> None:
    assert window("1mo", ts(2026, 2, 14, 9)) == (ts(2026, 2, 1), ts(2026, 3, 1))
    assert window("1mo", ts(2026, 12, 31, 23, 59)) == (ts(2026, 12, 1), ts(2027, 1, 1))
    start, end = window("2mo", ts(2026, 4, 10))  # every 2nd month since January 1970
    assert (start, end) == (ts(2026, 3, 1), ts(2026, 5, 1))


def test_30d_window_is_aligned_from_the_epoch_at_midnight() -> None:
    start, end = window("30d", ts(2026, 12, 2, 7))
    assert end is not None
    assert start % (30 * 86400) == 0 and end - start == 30 * 86400
    assert start <= ts(2026, 12, 2, 7) < end
    assert datetime.fromtimestamp(start, UTC).hour == 0


def test_hours_and_no_duration() -> None:
    assert window("1h", ts(2026, 1, 1, 5, 30)) == (ts(2026, 1, 1, 5), ts(2026, 1, 1, 6))
    assert window("30m", ts(2026, 1, 1, 5, 40)) == (ts(2026, 1, 1, 5, 30), ts(2026, 1, 1, 6))
    assert window(None, 123.0) == (0.0, None)


# ---- counting and resets ----


def budgets_for(doc: dict[str, Any], wall: Wall, bus: EventBus | None = None, **kw: Any) -> Budgets:
    config = build_config(doc)
    return Budgets(config.deployments, config.router.provider_budget_config, bus, wall=wall, **kw)


CAPPED = {"model_list": [openai_dep("gpt", "a", max_budget=1.0, budget_duration="1d"),
                         openai_dep("gpt", "b")]}  # fmt: skip


def test_spend_resets_at_midnight_utc_and_crossing_published_once() -> None:
    wall, bus = Wall(ts(2026, 12, 2, 22)), EventBus()
    sub = bus.subscribe()
    budgets = budgets_for(CAPPED, wall, bus)
    assert budgets.enabled
    budgets.record(finished("a", "openai", 0.6, wall.now))
    assert budgets.spent("a") is None
    budgets.record(finished("a", "openai", 0.5, wall.now))
    spent = budgets.spent("a")
    assert spent is not None and spent.reset_at == ts(2026, 12, 3)
    budgets.record(finished("a", "openai", 0.5, wall.now))  # still over: no second event
    crossed = [e for e in sub.drain() if isinstance(e, BudgetCrossed)]
    assert len(crossed) == 1
    assert (crossed[0].scope, crossed[0].name, crossed[0].budget) == ("deployment", "a", 1.0)
    assert crossed[0].spend == pytest.approx(1.1) and crossed[0].reset_at == ts(2026, 12, 3)
    assert budgets.spent("b") is None  # no budget of its own, none for openai
    wall.now = ts(2026, 12, 3) - 0.001
    assert budgets.spent("a") is not None
    wall.now = ts(2026, 12, 3)
    assert budgets.spent("a") is None
    assert budgets.describe("a")["budget_spend"] == 0
    changed = [e for e in sub.drain() if isinstance(e, DeploymentChanged)]
    assert [(e.deployment, e.health) for e in changed] == [("a", "ok")]
    budgets.record(finished("a", "openai", 1.0, wall.now))  # a new window: crossed again
    assert len([e for e in sub.drain() if isinstance(e, BudgetCrossed)]) == 1


def test_a_request_from_the_window_before_is_not_counted_in_the_new_one() -> None:
    wall = Wall(ts(2026, 12, 3, 0, 0, 5))
    budgets = budgets_for(CAPPED, wall)
    budgets.record(finished("a", "openai", 5.0, ts(2026, 12, 2, 23, 59, 58)))
    assert budgets.spent("a") is None
    budgets.record(finished("a", "openai", None, wall.now))  # unknown price: nothing to add
    assert budgets.describe("a")["budget_spend"] == 0


def test_1mo_budget_resets_on_the_first() -> None:
    doc = {"model_list": [openai_dep("gpt", "a", max_budget=2.0, budget_duration="1mo")]}
    wall = Wall(ts(2026, 2, 27))
    budgets = budgets_for(doc, wall)
    budgets.record(finished("a", "openai", 2.0, wall.now))
    assert budgets.describe("a")["budget_reset_at"] == ts(2026, 3, 1)
    wall.now = ts(2026, 2, 28, 23, 59)
    assert budgets.spent("a") is not None
    wall.now = ts(2026, 3, 1)
    assert budgets.spent("a") is None


def test_provider_budget_counts_every_deployment_of_the_provider() -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a"), openai_dep("other", "b"),
                       anthropic_dep("gpt", "c")],
        "router_settings": {"provider_budget_config": {
            "openai": {"budget_limit": 1.0, "time_period": "30d"}}},
    }  # fmt: skip
    wall = Wall(ts(2026, 12, 2, 12))
    budgets = budgets_for(doc, wall)
    budgets.record(finished("a", "openai", 0.5, wall.now))
    budgets.record(finished("b", "openai", 0.5, wall.now))
    spent_a, spent_b = budgets.spent("a"), budgets.spent("b")
    assert spent_a is not None and spent_b is not None
    assert spent_a.budget.scope == "provider" and spent_a.reset_at == window("30d", wall.now)[1]
    assert budgets.spent("c") is None
    assert "provider openai's budget" in (budgets.note(["a", "b"]) or "")
    assert budgets.note(["a", "c"]) is None  # c can still serve


def test_budget_without_duration_never_resets() -> None:
    doc = {"model_list": [openai_dep("gpt", "a", max_budget=1.0)]}
    wall = Wall(ts(2026, 12, 2))
    budgets = budgets_for(doc, wall)
    budgets.record(finished("a", "openai", 1.0, wall.now))
    wall.now = ts(2030, 1, 1)
    spent = budgets.spent("a")
    assert spent is not None and spent.reset_at is None
    assert "never resets" in spent.describe()


# ---- the pool and the router ----


def with_budgets(parts: Parts, clock: FakeClock) -> Budgets:
    budgets = Budgets(
        parts.config.deployments, parts.config.router.provider_budget_config, wall=clock.wall
    )
    parts.pool.budgets = budgets
    return budgets


async def test_pool_skips_a_spent_deployment_until_its_window_resets(
    make: Callable[..., Parts], clock: FakeClock
) -> None:
    parts = make(CAPPED)
    budgets = with_budgets(parts, clock)
    assert parts.usable("a")
    budgets.record(finished("a", "openai", 1.0, clock.wall()))
    assert not parts.usable("a") and parts.usable("b")
    row = parts.state("a")
    assert row["health"] == "budget_spent"
    reset = window("1d", clock.wall())[1]
    assert reset is not None
    assert (row["budget"], row["budget_spend"], row["budget_reset_at"]) == (1.0, 1.0, reset)
    assert "deployment a's budget" in row["health_reason"]
    assert parts.state("b")["budget"] is None
    wait = parts.pool.wait_hint([parts.dep("a")])
    assert wait == pytest.approx(reset - clock.wall())
    clock.advance(reset - clock.wall())
    assert parts.usable("a")
    assert parts.state("a")["health"] == "ok"


async def test_router_answers_the_budget_error_when_every_deployment_is_spent(
    make: Callable[..., Parts], clock: FakeClock
) -> None:
    doc = {"model_list": [openai_dep("gpt", "a", max_budget=1.0, budget_duration="1d")]}
    parts = make(doc)
    budgets = with_budgets(parts, clock)
    budgets.record(finished("a", "openai", 1.5, clock.wall()))
    err, trace = await parts.failure(chat())
    assert isinstance(err, AllTargetsFailed)
    assert err.status == 503 and not trace.attempts
    assert "budget" in err.message and "spent until" in err.message
    assert "sk-test" not in err.message
    assert err.headers["x-should-retry"] == "false"
    reset = window("1d", clock.wall())[1]
    assert reset is not None
    assert int(err.headers["Retry-After"]) == pytest.approx(reset - clock.wall(), abs=1)
    assert not parts.upstream.calls


# ---- spend at start, from a real SQLite usage file ----


def write_rows(path: Path, events: list[RequestFinished]) -> None:
    db = usage_sqlite.open_db(path)
    try:
        usage_sqlite.insert(db, events)
    finally:
        db.close()


async def test_spend_loaded_at_start_counts_only_rows_in_the_window(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    now = ts(2026, 12, 2, 15)
    write_rows(path, [
        finished("a", "openai", 0.4, ts(2026, 12, 2, 1)),  # today: counted
        finished("a", "openai", 0.3, ts(2026, 12, 2, 14)),  # today: counted
        finished("a", "openai", 9.0, ts(2026, 12, 1, 23, 59)),  # yesterday: not
        finished("b", "openai", 0.2, ts(2026, 12, 2, 3)),  # another deployment: not
        finished("a", "openai", None, ts(2026, 12, 2, 4)),  # no price
    ])  # fmt: skip
    budgets = budgets_for(CAPPED, Wall(now), reader=SqliteSpend(path))
    await budgets.start()
    assert budgets.describe("a")["budget_spend"] == pytest.approx(0.7)
    assert budgets.spent("a") is None
    budgets.record(finished("a", "openai", 0.3, now))
    assert budgets.spent("a") is not None
    await budgets.stop()


async def test_spent_at_start_is_spent_without_a_new_crossing(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    now = ts(2026, 12, 2, 15)
    write_rows(path, [finished("a", "openai", 1.2, ts(2026, 12, 2, 10))])
    bus = EventBus()
    sub = bus.subscribe()
    budgets = budgets_for(CAPPED, Wall(now), bus, reader=SqliteSpend(path))
    await budgets.start()
    assert budgets.spent("a") is not None
    assert not [e for e in sub.drain() if isinstance(e, BudgetCrossed)]
    await budgets.stop()


async def test_missing_usage_file_means_nothing_spent(tmp_path: Path) -> None:
    budgets = budgets_for(CAPPED, Wall(ts(2026, 12, 2)), reader=SqliteSpend(tmp_path / "no.db"))
    await budgets.start()
    assert budgets.describe("a")["budget_spend"] == 0
    await budgets.stop()


class SharedSqlite(SqliteSpend):
    """The SQLite reader as a shared store's: re-read (what the PostgreSQL reader does)."""

    shared = True


async def test_a_shared_store_reread_sees_another_instances_spend(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    now = ts(2026, 12, 2, 15)
    write_rows(path, [])
    bus = EventBus()
    sub = bus.subscribe()
    budgets = budgets_for(CAPPED, Wall(now), bus, reader=SharedSqlite(path))
    await budgets.refresh(publish=False)
    mine = finished("a", "openai", 0.2, now)
    budgets.record(mine)
    write_rows(path, [mine])  # as this instance's ledger does, a moment later
    write_rows(path, [finished("a", "openai", 0.9, now - 60)])  # another instance's
    assert budgets.spent("a") is None
    await budgets.refresh()
    spent = budgets.spent("a")
    assert spent is not None
    assert spent.spend == pytest.approx(1.1)  # this one's row counted once, not twice
    assert len([e for e in sub.drain() if isinstance(e, BudgetCrossed)]) == 1


async def test_a_reload_keeps_unchanged_budgets_and_reads_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    now = ts(2026, 12, 2, 15)
    write_rows(path, [finished("b", "openai", 0.8, ts(2026, 12, 2, 9))])
    budgets = budgets_for(CAPPED, Wall(now), reader=SqliteSpend(path))
    await budgets.start()
    budgets.record(finished("a", "openai", 0.7, now))  # not written: kept across the reload
    lower = {"max_budget": 0.5, "budget_duration": "1d"}
    doc = {"model_list": [openai_dep("gpt", "a", **lower), openai_dep("gpt", "b", **lower)]}
    config = build_config(doc)
    budgets.reload(config.deployments, config.router.provider_budget_config)
    await budgets.settle()  # the read of b's new budget
    spent_a, spent_b = budgets.spent("a"), budgets.spent("b")
    assert spent_a is not None and spent_a.spend == pytest.approx(0.7)  # lowered below its spend
    assert spent_b is not None and spent_b.spend == pytest.approx(0.8)  # read from the rows
    config = build_config({"model_list": [openai_dep("gpt", "a"), openai_dep("gpt", "b")]})
    budgets.reload(config.deployments, config.router.provider_budget_config)
    assert not budgets.enabled and budgets.spent("a") is None
    await budgets.stop()


# ---- config ----


def test_config_reads_deployment_and_provider_budgets() -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a", max_budget=5, budget_duration="30d")],
        "router_settings": {"provider_budget_config": {
            "openai": {"budget_limit": 100, "time_period": "1d"},
            "azure": {"budget_limit": 50, "time_period": "1mo"}}},
    }  # fmt: skip
    config = build_config(doc)
    dep = config.deployments[0]
    assert (dep.max_budget, dep.budget_duration) == (5, "30d")
    assert config.router.provider_budget_config["openai"].budget_limit == 100
    assert any("provider_budget_config.azure" in w for w in config.warnings)
    assert not any("max_budget" in w or "budget_duration" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"max_budget": 1, "budget_duration": "soon"}, "litellm_params.budget_duration"),
        ({"max_budget": 1, "budget_duration": "0d"}, "litellm_params.budget_duration"),
        ({"max_budget": 1, "budget_duration": "1.5mo"}, "litellm_params.budget_duration"),
        ({"max_budget": -0.01, "budget_duration": "1d"}, "litellm_params.max_budget"),
    ],
)
def test_bad_budget_is_a_config_error_naming_the_key(params: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"model_list": [openai_dep("gpt", "a", **params)]})
    assert f"model_list[0].{where}" in str(info.value)


def test_bad_provider_budget_is_a_config_error() -> None:
    for entry in ({"budget_limit": -1, "time_period": "1d"},
                  {"budget_limit": 1, "time_period": "weekly"},
                  {"budget_limit": 1}):  # fmt: skip
        doc = {"model_list": [openai_dep("gpt", "a")],
               "router_settings": {"provider_budget_config": {"openai": entry}}}  # fmt: skip
        with pytest.raises(ConfigError) as info:
            build_config(doc)
        assert "router_settings.provider_budget_config.openai" in str(info.value)
