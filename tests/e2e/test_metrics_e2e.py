"""`GET /metrics` through the real proxy: Prometheus text that `prometheus_client.parser` reads,
with requests by group/deployment/status, latency and TTFT histograms, tokens, cost, cache
hits and misses, deployment health and dropped events; never a key."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import error, reply

KEY = "sk-upstream-metrics-5555ffff"
BAD_KEY = "sk-upstream-metrics-6666gggg"
MSG = [{"role": "user", "content": "measure me"}]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_count(fake, start_proxy) -> None:
    proxy = start_proxy(
        {
            "model_list": [
                openai_deployment("gpt-4", fake, KEY, id="gpt4-a"),
                openai_deployment("bad", fake, BAD_KEY, id="bad-a"),
            ],
            "router_settings": {"num_retries": 0},
            "litellm_settings": {"cache": True},
        },
        master_key=MASTER_KEY,
    )
    fake.set_default(reply("hi", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    fake.rejected_keys.add(BAD_KEY)
    client = proxy.openai()
    costs = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=MSG)
        costs.append(float(raw.headers["x-llmproxy-cost"]))
    list(client.chat.completions.create(model="gpt-4", messages=MSG, seed=1, stream=True))
    fake.script(error(500, "boom"))
    with proxy.client() as c:
        failed = c.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MSG, "seed": 2})
        assert failed.status_code >= 500
        c.post("/v1/chat/completions", json={"model": "bad", "messages": MSG})
        response = c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    found = samples(text)
    assert value(found, "llmproxy_requests_total", group="gpt-4", deployment="gpt4-a",
                 status="200", cache="miss") == 2  # fmt: skip
    assert value(found, "llmproxy_requests_total", group="gpt-4", deployment="gpt4-a",
                 status="200", cache="hit") == 1  # fmt: skip
    failures = [k for k, v in found.items() if k[0] == "llmproxy_requests_total"
                and dict(k[1])["status"] not in ("200",) and v]  # fmt: skip
    assert {dict(k[1])["group"] for k in failures} == {"gpt-4", "bad"}
    assert value(found, "llmproxy_request_latency_seconds_count", group="gpt-4") == 4
    assert value(found, "llmproxy_request_latency_seconds_bucket", group="gpt-4", le="+Inf") == 4
    assert value(found, "llmproxy_time_to_first_token_seconds_count", group="gpt-4") == 1
    # Tokens of every answer served, a cache hit's included (its cost is 0).
    assert value(found, "llmproxy_tokens_total", group="gpt-4", direction="input") == 3000
    assert value(found, "llmproxy_tokens_total", group="gpt-4", direction="output") == 1500
    assert value(found, "llmproxy_cost_usd_total", group="gpt-4") == pytest.approx(2 * costs[0])
    assert costs[1] == 0  # the second was a hit
    assert value(found, "llmproxy_cache_hits_total") == 1
    assert value(found, "llmproxy_cache_misses_total") == 4  # the failures looked up too
    # gpt4-a failed once (still routed: "failing"); bad-a's key was rejected.
    assert value(found, "llmproxy_deployment_healthy", deployment="gpt4-a", group="gpt-4") == 0
    assert value(found, "llmproxy_deployment_healthy", deployment="bad-a", group="bad") == 0
    health = "llmproxy_deployment_health"
    assert value(found, health, deployment="gpt4-a", group="gpt-4", **{health: "failing"}) == 1
    assert value(found, health, deployment="gpt4-a", group="gpt-4", **{health: "ok"}) == 0
    assert value(found, health, deployment="bad-a", group="bad", **{health: "key_rejected"}) == 1
    assert ("llmproxy_events_dropped", ()) in found
    assert KEY not in text and BAD_KEY not in text and MASTER_KEY not in text
