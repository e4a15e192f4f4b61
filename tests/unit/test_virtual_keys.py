"""The book of virtual keys and its management, driven directly with an injected clock: budget
windows that reset, checks in their order, reservations, crossings published once, model
access (groups, wildcards, aliases), spend written as deltas that add up across writers, and
LiteLLM's management fields checked. No sockets; the store is SQLite (in memory or a temp file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from proxy.access import MASTER
from proxy.access.admin import KeyAdmin
from proxy.access.book import Ticket, VirtualKeys, allows
from proxy.config.loader import build_config
from proxy.errors import ProxyError
from proxy.events import BudgetCrossed, EventBus
from proxy.store.virtual_keys import SqliteKeyStore, hash_key

MASTER_KEY = "sk-master-unit-0123456789"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_config() -> Any:
    doc = {
        "model_list": [
            {"model_name": "g", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"}},
            {"model_name": "h", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"}},
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    return build_config(doc)


async def book_and_admin(
    clock: Clock, path: Path | None = None, **kw: Any
) -> tuple[VirtualKeys, KeyAdmin, EventBus]:
    bus = EventBus()
    book = VirtualKeys(SqliteKeyStore(path), bus, clock=clock, refresh_interval=3600, **kw)
    await book.start()
    return book, KeyAdmin(book.store, book, make_config(), clock=clock), bus


async def new_key(admin: KeyAdmin, **body: Any) -> tuple[str, Any]:
    made = await admin.generate(body)
    assert admin.book is not None
    caller = admin.book.identify(made["key"])
    assert caller is not None
    return made["key"], caller


async def test_the_budget_window_resets_when_it_ends() -> None:
    clock = Clock()
    book, admin, _bus = await book_and_admin(clock)
    key, caller = await new_key(admin, max_budget=1.0, budget_duration="1h")
    ticket = await book.admit(caller, "g", 0.1)
    book.settle(ticket, 1.0, 10)
    with pytest.raises(ProxyError) as refused:
        await book.admit(caller, "g", 0.1)
    assert refused.value.status == 400 and refused.value.code == "budget_exceeded"
    assert "resets at 2026-12-01 13:00 UTC (in 1h 0m)" in refused.value.message
    clock.now = START + 3600  # the window ended: spend starts over
    book.settle(await book.admit(caller, "g", 0.1), 0.25, 10)
    assert (await admin.info(key))["info"]["spend"] == pytest.approx(0.25)
    [snap] = book.snapshot()
    assert snap["budget_reset_at"] == START + 7200
    clock.now = START + 5 * 3600 + 1  # several windows later: the next end holds now
    await book.admit(caller, "g", 0.1)
    assert book.snapshot()[0]["spend"] == 0.0
    assert book.snapshot()[0]["budget_reset_at"] == START + 6 * 3600
    await book.sync()  # the new window reaches the store
    row = book.store.get(caller.token)
    assert row is not None and row.spend == 0.0 and row.budget_reset_at == START + 6 * 3600
    await book.close()


async def test_a_reset_is_persisted_and_survives_a_reload(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "usage.db"
    book, admin, _bus = await book_and_admin(clock, db)
    key, caller = await new_key(admin, max_budget=1.0, budget_duration="30s")
    book.settle(await book.admit(caller, "g", 0.0), 0.5, 1)
    await book.close()
    again, _admin, _bus = await book_and_admin(clock, db)
    assert again.snapshot()[0]["spend"] == pytest.approx(0.5)  # spend survives a restart
    clock.now = START + 31
    assert again.snapshot()[0]["spend"] == 0.0  # shown as started over, before any request
    assert again.store.get(caller.token).spend == pytest.approx(0.5)  # type: ignore[union-attr]
    same = again.identify(key)
    assert same is not None
    again.settle(await again.admit(same, "g", 0.0), 0.0, 1)  # a request starts it over
    await again.close()
    third, _admin, _bus = await book_and_admin(clock, db)
    assert third.snapshot()[0]["spend"] == 0.0
    assert third.snapshot()[0]["budget_reset_at"] == START + 60
    await third.close()


async def test_concurrent_admits_reserve_and_stop_at_the_budget() -> None:
    book, admin, _bus = await book_and_admin(Clock())
    _key, caller = await new_key(admin, max_budget=1.0)
    tickets = [await book.admit(caller, "g", 0.3) for _ in range(4)]  # 0, .3, .6, .9 < 1
    with pytest.raises(ProxyError) as refused:
        await book.admit(caller, "g", 0.3)
    assert "(+$1.2000 in flight)" in refused.value.message
    assert book.snapshot()[0]["reserved"] == pytest.approx(1.2)
    for ticket in tickets:
        book.settle(ticket, 0.2, 5)
    snap = book.snapshot()[0]
    assert snap["reserved"] == 0 and snap["in_flight"] == 0
    assert snap["spend"] == pytest.approx(0.8)
    await book.admit(caller, "g", 0.3)  # room again: .8 < 1
    await book.close()


async def test_checks_come_in_order_401_403_400_429() -> None:
    clock = Clock()
    book, admin, _bus = await book_and_admin(clock)
    key, caller = await new_key(
        admin, models=["g"], max_budget=0.0, rpm_limit=0, duration="1h", blocked=True
    )
    codes = []
    for change in ({"blocked": False}, {"models": ["g", "h"]}, {"max_budget": None}):
        with pytest.raises(ProxyError) as err:
            await book.admit(caller, "h", 0.0)
        codes.append((err.value.status, err.value.code))
        await admin.update({"key": key, **change})
    with pytest.raises(ProxyError) as err:
        await book.admit(caller, "h", 0.0)
    codes.append((err.value.status, err.value.code))
    assert err.value.headers["retry-after"] == "60"
    clock.now += 3600
    with pytest.raises(ProxyError) as expired:
        await book.admit(caller, "h", 0.0)
    assert codes == [
        (401, "key_blocked"),
        (403, "key_model_access_denied"),
        (400, "budget_exceeded"),
        (429, "rate_limit_exceeded"),
    ]
    assert (expired.value.status, expired.value.code) == (401, "key_expired")
    book.check(MASTER, "anything")  # the master key is never limited
    await book.close()


async def test_rpm_and_tpm_windows_slide_with_the_clock() -> None:
    clock = Clock()
    book, admin, _bus = await book_and_admin(clock)
    _key, caller = await new_key(admin, rpm_limit=2)
    book.settle(await book.admit(caller, "g", 0), 0, 60)
    clock.now += 10
    book.settle(await book.admit(caller, "g", 0), 0, 60)
    with pytest.raises(ProxyError) as err:
        await book.admit(caller, "g", 0)
    assert err.value.status == 429 and err.value.headers["retry-after"] == "50"
    assert book.snapshot()[0]["rpm"] == 2 and book.snapshot()[0]["tpm"] == 120
    clock.now += 51  # the first request left the minute; its tokens too
    await book.admit(caller, "g", 0)
    assert book.snapshot()[0]["tpm"] == 60
    _key2, tokens = await new_key(admin, tpm_limit=100)
    book.settle(await book.admit(tokens, "g", 0), 0, 110)  # over tpm_limit
    clock.now += 1
    with pytest.raises(ProxyError) as over:
        await book.admit(tokens, "g", 0)
    assert "tpm_limit" in over.value.message and over.value.headers["retry-after"] == "59"
    clock.now += 59
    await book.admit(tokens, "g", 0)  # the tokens left the minute
    await book.close()


async def test_crossings_are_published_once_per_window() -> None:
    clock = Clock()
    book, admin, bus = await book_and_admin(clock)
    sub = bus.subscribe()
    _key, caller = await new_key(
        admin, key_alias="agent", max_budget=1.0, soft_budget=0.5, budget_duration="1d"
    )
    for cost in (0.3, 0.3, 0.1, 0.5, 0.2):  # soft at 0.6, max at 1.2
        ticket = await book.admit(caller, "g", 0.0) if cost != 0.2 else Ticket(caller.token, 0)
        book.settle(ticket, cost, 1)
    crossed = [e for e in sub.drain(100) if isinstance(e, BudgetCrossed)]
    assert [(e.kind, e.name, e.scope) for e in crossed] == [
        ("soft_budget", "agent", "key"),
        ("max_budget", "agent", "key"),
    ]
    assert crossed[1].spend == pytest.approx(1.2) and crossed[1].reset_at == START + 86400
    clock.now = START + 86400  # a new window: may cross again
    book.settle(await book.admit(caller, "g", 0.0), 0.6, 1)
    again = [e for e in sub.drain(100) if isinstance(e, BudgetCrossed)]
    assert [e.kind for e in again] == ["soft_budget"]
    await book.close()


def test_models_may_name_groups_wildcards_and_aliases() -> None:
    aliases = {"fast": "g"}
    assert allows((), "anything", aliases)
    assert allows(("g",), "g", aliases) and not allows(("g",), "h", aliases)
    assert allows(("openai/*",), "openai/gpt-4o", aliases)
    assert not allows(("openai/*",), "anthropic/claude", aliases)
    assert allows(("fast",), "g", aliases)  # the key names an alias of the group
    assert allows(("g",), "fast", aliases)  # the client asks for an alias of an allowed group
    assert allows(("all-proxy-models",), "h", aliases)


async def test_spend_is_written_as_deltas_that_add_up_across_writers(tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    clock = Clock()
    one, admin, _bus = await book_and_admin(clock, db)
    key, caller = await new_key(admin, max_budget=10.0)
    two, _admin2, _bus2 = await book_and_admin(clock, db)  # a second instance on the file
    other = two.identify(key)
    assert other is not None
    one.settle(await one.admit(caller, "g", 0), 1.25, 1)
    two.settle(await two.admit(other, "g", 0), 2.5, 1)
    await one.sync()
    await two.sync()
    await one.sync()
    assert one.snapshot()[0]["spend"] == pytest.approx(3.75)
    assert two.snapshot()[0]["spend"] == pytest.approx(3.75)
    cli = KeyAdmin.local(make_config(), db)  # the command line, no proxy running
    assert (await cli.info(key))["info"]["spend"] == pytest.approx(3.75)
    await cli.delete({"keys": [key]})
    await cli.aclose()
    await one.sync()
    assert one.identify(key) is None  # deleted by another writer
    await one.close()
    await two.close()


async def test_generate_stores_only_a_hash_and_answers_litellm_fields() -> None:
    clock = Clock()
    book, admin, _bus = await book_and_admin(clock)
    made = await admin.generate(
        {
            "key_alias": "ci",
            "models": ["g"],
            "max_budget": 2,
            "budget_duration": "1mo",
            "duration": "30d",
            "metadata": {"team": "x"},
            "user_id": "u1",
        }  # fmt: skip
    )
    key = made["key"]
    assert key.startswith("sk-") and len(key) >= 25
    assert made["token"] == hash_key(key) and made["key_name"] == f"sk-...{key[-4:]}"
    assert made["budget_reset_at"] == "2027-01-01T12:00:00+00:00"  # a calendar month
    assert made["expires"] == "2026-12-31T12:00:00+00:00"
    assert made["user_id"] == "u1" and made["duration"] == "30d"
    [row] = book.store.load()
    assert key not in repr(row) and row.token == hash_key(key)
    with pytest.raises(ProxyError) as taken:
        await admin.generate({"key_alias": "ci"})
    assert taken.value.status == 400 and taken.value.param == "key_alias"
    listed = await admin.list({"return_full_object": "true", "size": "1", "page": "1"})
    assert listed["keys"][0]["key_alias"] == "ci" and listed["total_pages"] == 1
    with pytest.raises(ProxyError) as missing:
        await admin.info("sk-unknown-key-1234")
    assert missing.value.status == 404 and "sk-unknown" not in missing.value.message
    await book.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_budget": -0.5}, "max_budget"),
        ({"soft_budget": "1"}, "soft_budget"),
        ({"budget_duration": "3 fortnights"}, "budget_duration"),
        ({"duration": -5}, "duration"),
        ({"tpm_limit": True}, "tpm_limit"),
        ({"metadata": []}, "metadata"),
        ({"models": [1]}, "models"),
        ({"key": 42}, "key"),
        ({"key": MASTER_KEY}, "key"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    book, admin, _bus = await book_and_admin(Clock())
    with pytest.raises(ProxyError) as err:
        await admin.generate(body)
    assert err.value.status == 400 and err.value.param == field
    await book.close()
