"""Bounds on what clients can make the proxy keep: event subscribers, distinct names in the
usage totals and the metric labels, the strings an event carries; and what they can make it
write: escaped, cut log lines, short error echoes, URLs without credentials."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from proxy.config.loader import build_config
from proxy.errors import ConfigError, UnknownModel, clip
from proxy.events import EventBus, LogRecord, RequestFinished
from proxy.observe.activity import MAX_FIELD_CHARS, Activity
from proxy.observe.log_format import SafeFormatter
from proxy.observe.metrics import Metrics
from proxy.secret import redact_url
from proxy.store.rollups import MAX_NAME_CHARS, OTHER, NameCap
from proxy.store.usage import UsageLedger
from tests.unit.conftest import WALL_EPOCH, FakeClock


def finished(group: str, **kw: object) -> RequestFinished:
    fields: dict[object, object] = dict(
        id="req-1", time=WALL_EPOCH, group=group, deployment="d1", provider="mock", status=200,
        latency_ms=5.0, ttft_ms=None, prompt_tokens=3, completion_tokens=4, cost=0.001,
        cache="miss", attempts=1, fallback=None, stream=False,
    )  # fmt: skip
    fields.update(kw)
    return RequestFinished(**fields)  # type: ignore[arg-type]


def log(n: int) -> LogRecord:
    return LogRecord(0.0, "INFO", "t", f"line {n}")


# ---- the event bus ----


def test_a_subscriber_that_never_drains_is_closed_and_freed() -> None:
    bus = EventBus()
    stalled, reader = bus.subscribe(maxlen=100), bus.subscribe(maxlen=100)
    for i in range(150):
        bus.publish(log(i))
        if i % 50 == 0:
            reader.drain()
    assert not stalled.closed and stalled.dropped == 50  # lost events, still subscribed
    for i in range(149):
        bus.publish(log(i))
    assert not stalled.closed
    bus.publish(log(0))
    assert stalled.closed and len(stalled.queue) == 0  # lost two whole queues: dropped
    assert bus.subscribers == 1 and not reader.closed
    assert bus.dropped >= 200  # what it lost still counts after it left
    bus.publish(log(0))
    assert len(stalled.queue) == 0


def test_subscribers_are_capped_the_slowest_goes() -> None:
    bus = EventBus(max_subscribers=4)
    subs = [bus.subscribe(maxlen=10) for _ in range(4)]
    for i in range(8):
        bus.publish(log(i))
    for sub in subs[1:]:
        sub.drain()
    newest = bus.subscribe(maxlen=10)
    assert bus.subscribers == 4
    assert subs[0].closed and not any(s.closed for s in subs[1:]) and not newest.closed


# ---- distinct names ----


def test_name_cap_keeps_configured_names_and_buckets_the_rest() -> None:
    cap = NameCap(keep=["configured"], cap=3)
    assert [cap(f"wild/{i}") for i in range(5)] == ["wild/0", "wild/1", "wild/2", OTHER, OTHER]
    assert cap("wild/1") == "wild/1" and cap("configured") == "configured"
    assert cap("x" * 10_000) == OTHER
    assert len(NameCap()("y" * 10_000)) == MAX_NAME_CHARS


def test_usage_totals_keep_a_bounded_number_of_groups(clock: FakeClock) -> None:
    ledger = UsageLedger(None, clock=clock.wall, known_groups=["real"])
    for i in range(2_000):
        ledger.record(finished(f"openrouter/model-{i}"))
    ledger.record(finished("real"))
    usage = ledger.snapshot()
    groups = {row["group"]: row for row in usage["by_group"]}
    assert len(groups) <= 502 and OTHER in groups and "real" in groups
    assert sum(row["requests"] for row in groups.values()) == usage["totals"]["requests"] == 2001


def test_metric_labels_keep_a_bounded_number_of_groups() -> None:
    metrics = Metrics(known_groups=["real"])
    for i in range(1_500):
        metrics.observe(finished(f"openrouter/{i}"))
    metrics.observe(finished("real"))
    text = metrics.render()[0].decode()
    groups = {
        line.split('group="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("llmproxy_requests_total{")
    }
    assert len(groups) <= 502 and OTHER in groups and "real" in groups


def test_events_kept_carry_cut_client_strings(clock: FakeClock) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    ledger = UsageLedger(None, clock=clock.wall)
    activity = Activity(bus, ledger, Metrics(), clock=clock, scrub=lambda t: t.replace("K", "*"))
    activity.finish(finished("g" * 2**20, id="i" * 5000, status=502, error="bad K"))
    (kept,) = activity.recent
    assert len(kept.group) == len(kept.id) == MAX_FIELD_CHARS
    assert kept.error == "bad *"
    (seen,) = sub.drain()
    assert seen is kept


# ---- what clients can make the proxy write ----


def test_log_lines_escape_controls_fold_newlines_and_cut_values() -> None:
    fmt = SafeFormatter("%(levelname)s %(message)s")
    hostile = "x\n2001-01-01 ERROR forged\x1b]0;T\x07\r\x9b\u202e" + "m" * 50_000
    record = logging.LogRecord("llmproxy", logging.INFO, __file__, 1, "model=%s", (hostile,), None)
    line = fmt.format(record)
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line and "\x9b" not in line
    assert "\\x1b]0;T\\x07\\x0d\\x9b\\u202e" in line
    first, second = line.split("\n")
    assert second.startswith("  2001-01-01")  # a continuation, never a record of its own
    assert len(line) < 5_000 and "chars cut" in line
    assert record.args == (hostile,)  # other handlers still see the record as logged


def test_tracebacks_stay_readable_and_indented() -> None:
    fmt = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad\nERROR forged")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    lines = fmt.format(record).split("\n")
    assert lines[0] == "ERROR failed"
    assert all(ln.startswith((" ", "\t")) for ln in lines[1:])
    assert any("Traceback (most recent call last)" in ln for ln in lines)


def test_errors_echo_a_short_prefix_of_a_client_string() -> None:
    err = UnknownModel("m" * 2**20)
    assert len(err.message) < 300 and "1,048,576 characters" in err.message
    assert clip("short") == "short"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("https://u:p4ssw0rd@h.example/v1", "https://u:***@h.example/v1"),
        ("https://tok3n@h.example/v1", "https://***@h.example/v1"),
        ("postgresql://llm:pw@db:5432/usage", "postgresql://llm:***@db:5432/usage"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://h/v1?api_key=abc&x=1", "https://h/v1?api_key=***&x=1"),
        ("http://[::1/x@y", "(a URL that cannot be parsed)"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_master_key_naming_an_unset_variable_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("T13_NO_SUCH_MASTER", raising=False)
    doc = {"model_list": [], "general_settings": {"master_key": "os.environ/T13_NO_SUCH_MASTER"}}
    with pytest.raises(ConfigError, match="T13_NO_SUCH_MASTER"):
        build_config(doc, path=Path("config.yaml"))
    monkeypatch.setenv("T13_NO_SUCH_MASTER", "sk-master-set-0123456789")
    cfg = build_config(doc, path=Path("config.yaml"))
    assert cfg.master_key is not None


def test_the_request_rate_is_counted_per_second(clock: FakeClock) -> None:
    activity = Activity(EventBus(), UsageLedger(None, clock=clock.wall), Metrics(), clock=clock)
    for _ in range(3):
        for _ in range(10):
            activity.finish(finished("g"))
        clock.advance(1.0)
    assert activity.requests_per_second() == 3.0
    clock.advance(60)
    assert activity.requests_per_second() == 0.0


async def test_cached_answers_cost_what_they_are_charged(clock: FakeClock) -> None:
    import tracemalloc

    import orjson

    from proxy.config.settings import CacheParams
    from proxy.store.cache import CachedAnswer, ResponseCache

    cache = ResponseCache(CacheParams(), clock=clock)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):
            body = orjson.dumps({"id": f"chatcmpl-{i}", "content": "a short answer " * 10})
            await cache.put(f"key-{i}", CachedAnswer(body, None, 0.0, "d", "mock", "a"))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # orjson's bytes keep a 4 KiB block each (8 MiB here); the cache keeps exact-size copies.
    assert cache.snapshot()["entries"] == 2_000
    assert held < 3 * 2**20
