"""Metrics: the rendered exposition parses and its values add up."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.events import RequestFinished
from proxy.observe.metrics import Metrics


def event(**kw) -> RequestFinished:
    fields = dict(
        id="r", time=1.0, group="fast", deployment="openai-1", provider="openai", status=200,
        latency_ms=250.0, ttft_ms=None, prompt_tokens=10, completion_tokens=5, cost=0.5,
        cache="miss", attempts=1, fallback=None, stream=False,
    )  # fmt: skip
    fields.update(kw)
    return RequestFinished(**fields)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(data: dict, name: str, **labels: str) -> float:
    return data.get((name, frozenset(labels.items())), 0.0)


def test_observe_adds_up():
    m = Metrics()
    m.observe(event())
    m.observe(event(cost=0.25, prompt_tokens=100, completion_tokens=50, latency_ms=1500.0))
    m.observe(event(cache="hit", cost=0.0, latency_ms=2.0))
    m.observe(event(stream=True, ttft_ms=120.0, group="smart", deployment="anthropic-1"))
    m.observe(event(status=502, deployment=None, cost=None, prompt_tokens=0,
                    completion_tokens=0))  # fmt: skip
    data = samples(m)
    total = "llmproxy_requests_total"
    assert value(data, total, group="fast", deployment="openai-1", status="200",
                 cache="miss") == 2  # fmt: skip
    assert value(data, total, group="fast", deployment="openai-1", status="200", cache="hit") == 1
    assert value(data, total, group="fast", deployment="", status="502", cache="miss") == 1
    assert value(data, total, group="smart", deployment="anthropic-1", status="200",
                 cache="miss") == 1  # fmt: skip
    requests = sum(v for (name, _), v in data.items() if name == total)
    assert requests == 5
    assert value(data, "llmproxy_tokens_total", group="fast", direction="input") == 120
    assert value(data, "llmproxy_tokens_total", group="fast", direction="output") == 60
    assert value(data, "llmproxy_cost_usd_total", group="fast") == pytest.approx(0.75)
    assert value(data, "llmproxy_cost_usd_total", group="smart") == pytest.approx(0.5)
    assert value(data, "llmproxy_cache_hits_total") == 1
    assert value(data, "llmproxy_cache_misses_total") == 4
    hist = "llmproxy_request_latency_seconds"
    assert value(data, hist + "_count", group="fast") == 4
    assert value(data, hist + "_sum", group="fast") == pytest.approx(0.25 + 1.5 + 0.002 + 0.25)
    assert value(data, hist + "_bucket", group="fast", le="0.25") == 3
    assert value(data, hist + "_bucket", group="fast", le="+Inf") == 4
    ttft = "llmproxy_time_to_first_token_seconds"
    assert value(data, ttft + "_count", group="smart") == 1
    assert value(data, ttft + "_count", group="fast") == 0


def test_deployment_gauges_and_removal():
    m = Metrics()
    m.set_deployments([
        {"id": "openai-1", "group": "fast", "health": "ok", "in_flight": 3},
        {"id": "openai-2", "group": "fast", "health": "cooling_down", "in_flight": 0},
    ])  # fmt: skip
    data = samples(m)
    assert value(data, "llmproxy_deployment_healthy", deployment="openai-1", group="fast") == 1
    openai_2 = frozenset({"deployment": "openai-2", "group": "fast"}.items())
    assert ("llmproxy_deployment_healthy", openai_2) in data  # present, with value 0
    assert value(data, "llmproxy_deployment_healthy", deployment="openai-2", group="fast") == 0
    assert value(data, "llmproxy_deployment_in_flight", deployment="openai-1", group="fast") == 3
    m.set_deployments([{"id": "openai-1", "group": "fast", "health": "failing", "in_flight": 0}])
    data = samples(m)
    assert value(data, "llmproxy_deployment_healthy", deployment="openai-1", group="fast") == 0
    names = {labels for (name, labels) in data if name == "llmproxy_deployment_healthy"}
    assert names == {frozenset({"deployment": "openai-1", "group": "fast"}.items())}


def test_dropped_events_and_separate_registries():
    a, b = Metrics(), Metrics()
    a.set_dropped_events(7)
    a.observe(event())
    assert value(samples(a), "llmproxy_events_dropped") == 7
    assert value(samples(b), "llmproxy_events_dropped") == 0
    assert value(samples(b), "llmproxy_cache_misses_total") == 0
