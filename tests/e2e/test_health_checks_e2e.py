"""Background health checks through the real server and the fake upstream: a dead key is
cooled before any request, a working key again ends the cooldown, `GET /health` with the
master key answers LiteLLM's detailed shape (without it, the answer is unchanged), and the
loop ends at shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import openai_deployment

MASTER = "sk-master-health-checks-0123456789"
GOOD = "sk-upstream-good-0123456789abcdef"
DEAD = "sk-upstream-dead-0123456789abcdef"


def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def start(start_proxy, fake, **general: Any):
    doc = {
        "model_list": [
            openai_deployment("gpt-4", fake, GOOD, id="good"),
            openai_deployment("gpt-4", fake, DEAD, id="dead"),
        ],
        "general_settings": {"background_health_checks": True, "health_check_interval": 0.2},
    }
    doc["general_settings"].update(general)
    return start_proxy(doc, master_key=MASTER)


def test_dead_key_cooled_before_any_request_and_detailed_health(start_proxy, fake) -> None:
    fake.rejected_keys.add(DEAD)
    proxy = start(start_proxy, fake)
    dead = until(lambda: (d := proxy.deployment("dead"))["health"] == "key_rejected" and d)
    assert dead["last_probe"] == "key rejected" and dead["last_probe_at"] > 0
    assert dead["cooldown_remaining_s"] > 0
    good = until(lambda: (d := proxy.deployment("good"))["last_probe"] == "ok" and d)
    assert good["health"] == "ok"
    assert {s.path for s in fake.requests} == {"/v1/models"}  # no request spent anything

    with proxy.client() as c:
        detailed = c.get("/health").json()
    assert (detailed["healthy_count"], detailed["unhealthy_count"]) == (1, 1)
    [healthy], [unhealthy] = detailed["healthy_endpoints"], detailed["unhealthy_endpoints"]
    assert (healthy["model"], healthy["id"], healthy["api_base"]) == (
        "gpt-4",
        "good",
        fake.openai_base,
    )
    assert (unhealthy["model"], unhealthy["id"], unhealthy["error"]) == (
        "gpt-4",
        "dead",
        "key rejected",
    )
    assert DEAD not in str(detailed) and GOOD not in str(detailed)

    plain = {"status": "healthy", "healthy_count": 1, "unhealthy_count": 1}
    assert httpx.get(proxy.url + "/health").json() == plain  # no key: as it always was
    wrong = httpx.get(proxy.url + "/health", headers={"authorization": "Bearer sk-wrong-key-00"})
    assert (wrong.status_code, wrong.json()) == (200, plain)

    with proxy.openai() as client:  # the user's request goes to the working key at once
        for _ in range(3):
            client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "hi"}]
            )
    assert not fake.calls(key=DEAD, path="/v1/chat/completions")


def test_a_passing_probe_ends_the_cooldown(start_proxy, fake) -> None:
    fake.rejected_keys.add(DEAD)
    proxy = start(start_proxy, fake)
    until(lambda: proxy.deployment("dead")["health"] == "key_rejected")
    fake.rejected_keys.discard(DEAD)  # the key was fixed upstream: no 60 s wait
    dead = until(lambda: (d := proxy.deployment("dead"))["health"] == "ok" and d)
    assert dead["last_probe"] == "ok" and dead["cooldown_until"] is None


def test_the_loop_stops_at_shutdown_and_is_off_by_default(start_proxy, fake) -> None:
    proxy = start(start_proxy, fake)
    until(lambda: len(fake.calls(path="/v1/models")) >= 4)
    checks = proxy.runtime.health_checks
    assert checks is not None
    proxy.stop()
    assert not proxy.thread.is_alive()
    assert checks._task is None and not checks._probes
    seen = len(fake.requests)
    time.sleep(0.5)
    assert len(fake.requests) == seen

    quiet = start_proxy({"model_list": [openai_deployment("gpt-4", fake, GOOD, id="good")]})
    assert quiet.runtime.health_checks is None
    assert quiet.deployment("good")["last_probe_at"] is None
