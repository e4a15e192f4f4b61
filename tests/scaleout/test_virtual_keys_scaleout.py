"""Two real `llmproxy-tui --no-tui` processes on one PostgreSQL database and one Redis enforce
one budget for a virtual key: a key made on one is served by the other, spend adds up across
both, concurrent requests through both overshoot by at most what is in flight, and with Redis
gone each instance goes on enforcing locally without failing a request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import MASTER_KEY, CliProxy, openai_deployment
from tests.fakes.upstream import FakeUpstream, reply
from tests.scaleout.conftest import RedisServer

PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500}
COST = 0.002
"""USD of one request at USAGE."""
ESTIMATE = 1 * 0.000001 + 1000 * 0.000002
"""What one request of BODY reserves."""
BODY = {"model": "g", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def write_config(path: Path, fake: FakeUpstream, pg_url: str, redis_port: int, ns: str) -> Path:
    dep = openai_deployment("g", fake, "sk-upstream-vk-scale-7777", id="g-1")
    dep["model_info"].update(PRICES)
    doc: dict[str, Any] = {
        "model_list": [dep],
        "general_settings": {"master_key": MASTER_KEY, "database_url": pg_url},
        "router_settings": {"redis_host": "127.0.0.1", "redis_port": redis_port,
                            "redis_namespace": ns},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    return path


def generate(proxy: CliProxy, **body: Any) -> str:
    answer = httpx.post(proxy.url + "/key/generate", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


def spend(proxy: CliProxy, key: str) -> float:
    answer = httpx.get(proxy.url + "/key/info", params={"key": key}, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return float(answer.json()["info"]["spend"])


def known(proxy: CliProxy, key: str) -> bool:
    """Whether `proxy` serves the key yet (it re-reads the store about once a second)."""
    headers = {"authorization": f"Bearer {key}"}
    return httpx.get(proxy.url + "/key/info", headers=headers, timeout=10).status_code == 200


def chat(proxy: CliProxy, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(proxy.url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_two_instances_enforce_one_budget(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    pg_url: str,
    redis_port: int,
    redis_ns: str,
) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    conf = write_config(tmp_path / "c.yaml", fake, pg_url, redis_port, redis_ns)
    a, b = run_cli("--config", str(conf)), run_cli("--config", str(conf))
    key = generate(a, key_alias="team", max_budget=2.5 * COST)
    wait_for(lambda: known(b, key))  # b learns of the key from the store
    assert [chat(p, key).status_code for p in (b, a, b)] == [200] * 3  # $0.006 of $0.005
    for proxy in (a, b):
        refused = chat(proxy, key)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "budget_exceeded"
    # Both instances' spend lands in the one store (each writes its deltas off the request
    # path, about once a second), counted once: each shows exactly the three answers.
    wait_for(lambda: all(abs(spend(p, key) - 3 * COST) < 1e-9 for p in (a, b)))


async def test_concurrent_requests_through_both_overshoot_by_at_most_the_in_flight_estimate(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    pg_url: str,
    redis_port: int,
    redis_ns: str,
) -> None:
    fake.set_default(reply("slow", usage=USAGE, delay=0.3))
    conf = write_config(tmp_path / "c.yaml", fake, pg_url, redis_port, redis_ns)
    a, b = run_cli("--config", str(conf)), run_cli("--config", str(conf))
    budget, already = 0.01, 0.009
    key = generate(a, max_budget=budget, spend=already)
    await asyncio.to_thread(wait_for, lambda: known(b, key))
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as c:
        calls = [
            c.post(p.url + "/v1/chat/completions", json=BODY, headers=headers) for p in (a, b) * 25
        ]
        answers = await asyncio.gather(*calls)
    served = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert served
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
    # One budget across both: only what fit under it while reserved was admitted.
    assert len(served) <= (budget - already) / ESTIMATE + 1
    final = already + len(served) * COST
    await asyncio.to_thread(wait_for, lambda: abs(spend(b, key) - final) < 1e-9)
    assert final - budget <= len(served) * ESTIMATE


def test_with_redis_gone_each_instance_enforces_locally(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    pg_url: str,
    redis_server: RedisServer,
) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    conf = write_config(tmp_path / "c.yaml", fake, pg_url, redis_server.port, "down")
    a = run_cli("--config", str(conf))
    key = generate(a, max_budget=1.5 * COST, rpm_limit=100)
    assert chat(a, key).status_code == 200
    redis_server.stop()
    assert chat(a, key).status_code == 200  # never failed for Redis: enforced here
    refused = chat(a, key)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "budget_exceeded"
