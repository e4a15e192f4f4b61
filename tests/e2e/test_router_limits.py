"""Issue 3 end to end: rpm/tpm limits are enforced, and exhaustion answers 429 Retry-After.

A deployment at its limit this minute is skipped; when all are, the request waits a short
bound for capacity (a 429 cooldown about to lift) or gets 429 with `Retry-After` at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import openai_deployment
from tests.fakes.upstream import rate_limit

KEY_A = "sk-upstream-key-aaaa"
KEY_B = "sk-upstream-key-bbbb"
HELLO = [{"role": "user", "content": "Hello there"}]


def start(start_proxy: Any, deps: list[dict[str, Any]], **router: Any) -> Any:
    settings = {"num_retries": 2, "cooldown_time": 1, **router}
    return start_proxy({"model_list": deps, "router_settings": settings})


def post(proxy: Any, **extra: Any) -> httpx.Response:
    with proxy.client() as c:
        return c.post("/v1/chat/completions", json={"model": "gpt", "messages": HELLO, **extra})


def test_rpm_5_sixth_request_gets_429_with_retry_after(fake, start_proxy) -> None:
    proxy = start(start_proxy, [openai_deployment("gpt", fake, KEY_A, id="a", rpm=5)])
    statuses = [post(proxy).status_code for _ in range(5)]
    assert statuses == [200] * 5
    started = time.monotonic()
    sixth = post(proxy)
    assert time.monotonic() - started < 3.0  # the wait for capacity is bounded
    assert sixth.status_code == 429
    assert 50 <= int(sixth.headers["retry-after"]) <= 60
    assert sixth.json()["error"]["type"] == "rate_limit_error"
    assert len(fake.requests) == 5
    a = proxy.deployment("a")
    assert (a["rpm_used"], a["rpm_limit"]) == (5, 5)


def test_rpm_5_on_two_deployments_lets_10_pass(fake, start_proxy) -> None:
    deps = [
        openai_deployment("gpt", fake, KEY_A, id="a", rpm=5),
        openai_deployment("gpt", fake, KEY_B, id="b", rpm=5),
    ]
    proxy = start(start_proxy, deps)
    statuses = [post(proxy, stream=i % 2 == 0).status_code for i in range(11)]
    assert statuses == [200] * 10 + [429]
    assert len(fake.calls(key=KEY_A)) == len(fake.calls(key=KEY_B)) == 5


async def test_rpm_holds_under_concurrency(fake, start_proxy) -> None:
    deps = [
        openai_deployment("gpt", fake, KEY_A, id="a", rpm=5),
        openai_deployment("gpt", fake, KEY_B, id="b", rpm=5),
    ]
    proxy = start(start_proxy, deps)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        body = {"model": "gpt", "messages": HELLO}
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 10
    assert len(fake.requests) == 10


def test_router_level_rpm_is_the_default_for_every_deployment(fake, start_proxy) -> None:
    proxy = start(start_proxy, [openai_deployment("gpt", fake, KEY_A, id="a")], rpm=3)
    assert [post(proxy).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert proxy.deployment("a")["rpm_limit"] == 3


def test_tpm_limit_is_enforced(fake, start_proxy) -> None:
    proxy = start(start_proxy, [openai_deployment("gpt", fake, KEY_A, id="a", tpm=20)])
    # each answer uses 8 tokens (2 prompt + 6 completion words): 24 >= 20 after three
    assert [post(proxy).status_code for _ in range(4)] == [200, 200, 200, 429]
    a = proxy.deployment("a")
    assert (a["tpm_used"], a["tpm_limit"]) == (24, 20)


def test_a_request_waits_briefly_for_a_429_cooldown_to_lift(fake, start_proxy) -> None:
    proxy = start(start_proxy, [openai_deployment("gpt", fake, KEY_A, id="a")], num_retries=0)
    fake.script(rate_limit(0.5, ms=True), key=KEY_A)
    assert post(proxy).status_code == 429
    started = time.monotonic()
    response = post(proxy)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.3 <= elapsed < 3.0


def test_a_long_429_cooldown_is_not_waited_for(fake, start_proxy) -> None:
    proxy = start(start_proxy, [openai_deployment("gpt", fake, KEY_A, id="a")], num_retries=0)
    fake.script(rate_limit(30), key=KEY_A)
    assert post(proxy).status_code == 429
    started = time.monotonic()
    response = post(proxy)
    assert time.monotonic() - started < 2.0
    assert response.status_code == 429
    assert 25 <= int(response.headers["retry-after"]) <= 30
    assert len(fake.requests) == 1


def test_cooling_down_without_429_is_503_not_429(fake, start_proxy) -> None:
    proxy = start(
        start_proxy,
        [openai_deployment("gpt", fake, KEY_A, id="a")],
        num_retries=0,
        allowed_fails=0,
        cooldown_time=30,
    )
    fake.rejected_keys.add(KEY_A)
    assert post(proxy).status_code == 502
    response = post(proxy)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_deployment_available"
