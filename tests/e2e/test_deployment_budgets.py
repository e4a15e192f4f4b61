"""Deployment and provider budgets through the real proxy, against the fake upstreams with
priced models: a spent deployment is skipped (its group's other deployment serves; alone, the
group answers a clear error naming the budget and its reset), a provider budget stops every
deployment of that provider, the state document shows `budget_spent`, and a bad
`budget_duration` is a config error (exit 2)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from proxy.routing.budgets import window
from tests.conftest import MASTER_KEY, anthropic_deployment, cli_command, openai_deployment
from tests.fakes.upstream import reply
from tests.scaleout.conftest import pg_admin_url, pg_url

__all__ = ["pg_admin_url", "pg_url"]  # the PostgreSQL fixtures, for the shared-store test

KEY = "sk-upstream-budget-7777dddd"
MSG = [{"role": "user", "content": "spend a little"}]
USAGE = {"prompt_tokens": 500, "completion_tokens": 250}
PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
"""500 in, 250 out: $0.001 a request."""


def priced(entry: dict[str, Any], dep_id: str, **params: Any) -> dict[str, Any]:
    entry["model_info"] = {"id": dep_id, **PRICES}
    entry["litellm_params"].update(params)
    return entry


def post(proxy: Any, group: str) -> Any:
    with proxy.client() as c:
        return c.post("/v1/chat/completions", json={"model": group, "messages": MSG})


def test_spent_deployment_is_skipped_and_its_group_other_deployment_serves(
    fake, start_proxy
) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    model_list = [
        priced(openai_deployment("g", fake, KEY), "capped", max_budget=0.0005,
               budget_duration="1d", order=1),
        priced(openai_deployment("g", fake, KEY), "spare", order=2),
    ]  # fmt: skip
    proxy = start_proxy({"model_list": model_list}, master_key=MASTER_KEY)
    first = post(proxy, "g")
    assert first.status_code == 200
    assert first.headers["x-llmproxy-deployment"] == "capped"
    for _ in range(3):
        answer = post(proxy, "g")
        assert answer.status_code == 200
        assert answer.headers["x-llmproxy-deployment"] == "spare"
    capped = proxy.deployment("capped")
    assert capped["health"] == "budget_spent"
    assert capped["budget"] == 0.0005
    assert capped["budget_spend"] >= 0.0005
    assert capped["budget_scope"] == "deployment"
    midnight = window("1d", time.time())[1]
    assert capped["budget_reset_at"] == midnight
    assert midnight is not None and midnight % 86400 == 0
    assert "budget" in capped["health_reason"] and "UTC" in capped["health_reason"]
    spare = proxy.deployment("spare")
    assert spare["health"] == "ok" and spare["budget"] is None
    with proxy.client() as c:
        metrics = c.get("/metrics").text
    health = "llmproxy_deployment_health"
    assert f'{health}{{deployment="capped",group="g",{health}="budget_spent"}} 1.0' in metrics


def test_alone_a_spent_deployment_answers_the_clear_error(fake, start_proxy) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    model_list = [priced(openai_deployment("solo", fake, KEY), "solo-1", max_budget=0.0005,
                         budget_duration="30d")]  # fmt: skip
    proxy = start_proxy({"model_list": model_list}, master_key=MASTER_KEY)
    assert post(proxy, "solo").status_code == 200
    upstream_calls = len(fake.requests)
    refused = post(proxy, "solo")
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert "budget" in error["message"] and "spent" in error["message"]
    reset = window("30d", time.time())[1]
    assert reset is not None
    assert time.strftime("%Y-%m-%d 00:00 UTC", time.gmtime(reset)) in error["message"]
    assert KEY not in refused.text and KEY[-4:] not in error["message"]
    assert error["code"] == "no_deployment_available"
    assert 0 < int(refused.headers["retry-after"]) <= 30 * 86400
    assert refused.headers["x-should-retry"] == "false"
    assert len(fake.requests) == upstream_calls  # refused before any upstream call
    with proxy.client() as c:  # the Messages front door answers in Anthropic's shape
        body = {"model": "solo", "max_tokens": 10, "messages": MSG}
        anthropic = c.post("/v1/messages", json=body)
    assert anthropic.status_code == 529  # Anthropic's status for "none can serve now"
    assert anthropic.json()["type"] == "error" and "budget" in anthropic.json()["error"]["message"]


def test_provider_budget_stops_all_of_that_providers_deployments(fake, start_proxy) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    anthropic_usage = {"input_tokens": 500, "output_tokens": 250}
    model_list = [
        priced(openai_deployment("g", fake, KEY), "oa-1", order=1),
        priced(anthropic_deployment("g", fake, KEY), "an-1", order=2),
        priced(openai_deployment("h", fake, KEY), "oa-2"),
    ]
    config = {
        "model_list": model_list,
        "router_settings": {
            "provider_budget_config": {
                "openai": {"budget_limit": 0.0005, "time_period": "1d"},
                "anthropic": {"budget_limit": 100, "time_period": "1mo"},
            }
        },
    }
    proxy = start_proxy(config, master_key=MASTER_KEY)
    assert post(proxy, "g").headers["x-llmproxy-deployment"] == "oa-1"
    refused = post(proxy, "h")  # another group, same provider: spent too
    assert refused.status_code == 503
    assert "provider openai's budget" in refused.json()["error"]["message"]
    fake.set_default(reply("ok", usage=anthropic_usage))
    served = post(proxy, "g")
    assert served.status_code == 200
    assert served.headers["x-llmproxy-deployment"] == "an-1"
    state = {d["id"]: d for d in proxy.state()["deployments"]}
    assert state["oa-1"]["health"] == state["oa-2"]["health"] == "budget_spent"
    assert state["oa-2"]["budget_scope"] == "provider"
    assert state["an-1"]["health"] == "ok"
    assert state["an-1"]["budget"] == 100 and 0 < state["an-1"]["budget_spend"] < 100


def test_budget_crossed_event_published_once(fake, start_proxy) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    model_list = [
        priced(openai_deployment("g", fake, KEY), "capped", max_budget=0.0015,
               budget_duration="1h", order=1),
        priced(openai_deployment("g", fake, KEY), "spare", order=2),
    ]  # fmt: skip
    proxy = start_proxy({"model_list": model_list}, master_key=MASTER_KEY)
    sub = proxy.runtime.bus.subscribe()
    for _ in range(5):
        assert post(proxy, "g").status_code == 200
    crossed = [e for e in sub.drain() if type(e).__name__ == "BudgetCrossed"]
    assert len(crossed) == 1
    ev = crossed[0]
    assert (ev.scope, ev.name, ev.kind, ev.budget) == ("deployment", "capped", "max_budget", 0.0015)
    assert ev.spend >= 0.0015 and ev.reset_at == window("1h", time.time())[1]


def _check(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    return subprocess.run(
        [*cli_command(), "--no-tui", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_bad_budget_duration_exits_2_naming_the_key(fake, tmp_path: Path) -> None:
    entry = openai_deployment("g", fake, KEY, max_budget=5, budget_duration="1 fortnight")
    result = _check({"model_list": [entry]}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "model_list[0].litellm_params.budget_duration" in result.stderr
    assert "not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_negative_budget_and_bad_time_period_exit_2(fake, tmp_path: Path) -> None:
    entry = openai_deployment("g", fake, KEY, max_budget=-1, budget_duration="1d")
    result = _check({"model_list": [entry]}, tmp_path)
    assert result.returncode == 2
    assert "model_list[0].litellm_params.max_budget" in result.stderr
    bad = {"openai": {"budget_limit": 10, "time_period": "daily"}}
    config = {"model_list": [openai_deployment("g", fake, KEY)],
              "router_settings": {"provider_budget_config": bad}}  # fmt: skip
    result = _check(config, tmp_path)
    assert result.returncode == 2
    assert "router_settings.provider_budget_config.openai.time_period" in result.stderr


def test_check_shows_each_deployments_budget(fake, tmp_path: Path) -> None:
    entry = openai_deployment("g", fake, KEY, max_budget=5, budget_duration="30d")
    config = {"model_list": [entry],
              "router_settings": {"provider_budget_config": {
                  "openai": {"budget_limit": 100, "time_period": "1mo"}}}}  # fmt: skip
    result = _check(config, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "budget $5 per 30d" in result.stdout
    assert "provider openai budget $100 per 1mo" in result.stdout
    assert "unknown or unsupported key" not in result.stdout + result.stderr


def test_two_instances_on_one_postgresql_share_the_spend(fake, start_proxy, pg_url) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    model_list = [priced(openai_deployment("solo", fake, KEY), "shared-1", max_budget=0.0015,
                         budget_duration="1d")]  # fmt: skip
    config = {"model_list": model_list, "general_settings": {"database_url": pg_url}}
    first = start_proxy(config, master_key=MASTER_KEY)
    second = start_proxy(config, master_key=MASTER_KEY)
    assert post(first, "solo").status_code == 200
    assert post(second, "solo").status_code == 200  # $0.002 spent between them
    assert first.runtime.ledger.flush(10) and second.runtime.ledger.flush(10)
    deadline = time.monotonic() + 15  # each re-reads the shared spend every few seconds
    while not all(p.deployment("shared-1")["health"] == "budget_spent" for p in (first, second)):
        assert time.monotonic() < deadline, "the other instance's spend was never seen"
        time.sleep(0.1)
    for proxy in (first, second):
        assert proxy.deployment("shared-1")["budget_spend"] >= 0.0015
        assert post(proxy, "solo").status_code == 503


def test_a_reload_raising_the_budget_serves_again_and_keeps_the_spend(fake, start_proxy) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    entry = priced(openai_deployment("solo", fake, KEY), "solo-1", max_budget=0.0005,
                   budget_duration="1d")  # fmt: skip
    doc = {"model_list": [entry], "general_settings": {"master_key": MASTER_KEY}}
    proxy = start_proxy(doc)
    proxy.master_key = MASTER_KEY
    proxy.server.submit(proxy.runtime.reloader.stop()).result(10)  # reloads only when asked
    assert post(proxy, "solo").status_code == 200
    assert post(proxy, "solo").status_code == 503
    entry["litellm_params"]["max_budget"] = 0.0025
    path = proxy.runtime.config.path
    assert path is not None
    path.write_text(yaml.safe_dump(doc))
    with proxy.client() as c:
        assert c.post("/llmproxy/reload").status_code == 200
    row = proxy.deployment("solo-1")
    assert row["health"] == "ok" and row["budget"] == 0.0025
    assert row["budget_spend"] == 0.001  # the window's spend survived the reload
    assert post(proxy, "solo").status_code == 200
