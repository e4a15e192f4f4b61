"""Two real `llmproxy-tui --no-tui` processes on two ports acting as one through Redis, and
writing usage to one PostgreSQL database (issue 7)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import CliProxy, openai_deployment
from tests.fakes.steps import rate_limit
from tests.fakes.upstream import FakeUpstream
from tests.scaleout.conftest import RedisServer

BODY = {"model": "g", "messages": [{"role": "user", "content": "hello"}]}


def write_config(path: Path, deployments: list[dict[str, Any]], **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"model_list": deployments, **sections}))
    return path


def redis_settings(ns: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"redis_host": "127.0.0.1", "redis_port": port, "redis_namespace": ns,
            "num_retries": 2, **extra}  # fmt: skip


def two(run_cli: Callable[..., CliProxy], conf: Path) -> tuple[CliProxy, CliProxy]:
    return run_cli("--config", str(conf)), run_cli("--config", str(conf))


def state(proxy: CliProxy) -> dict[str, Any]:
    return dict(httpx.get(proxy.url + "/llmproxy/state", timeout=5).json())


def health(proxy: CliProxy, dep_id: str) -> str:
    return str(next(d["health"] for d in state(proxy)["deployments"] if d["id"] == dep_id))


def post(proxy: CliProxy, body: dict[str, Any] = BODY) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=30)


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_429_on_one_cools_the_key_on_the_other(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    redis_ns: str,
    redis_port: int,
) -> None:
    deps = [openai_deployment("g", fake, "sk-aaaa1111", id="dep-a"),
            openai_deployment("g", fake, "sk-bbbb2222", id="dep-b")]  # fmt: skip
    conf = write_config(
        tmp_path / "c.yaml", deps, router_settings=redis_settings(redis_ns, redis_port)
    )
    a, b = two(run_cli, conf)
    assert state(b)["server"]["redis"]["ok"] is True
    fake.script(rate_limit(30), key="sk-aaaa1111")
    answered = None
    for _ in range(20):  # until a request lands on dep-a first (the shuffle is random)
        r = post(a)
        assert r.status_code == 200
        answered = time.monotonic()
        if fake.calls(key="sk-aaaa1111"):
            break
    assert answered is not None and fake.calls(key="sk-aaaa1111")
    # Timed to the start of the poll that saw it: a poll's own round trip (a whole state
    # document from a subprocess) grows with the machine's load when tests run in parallel.
    while True:
        asked = time.monotonic()
        if health(b, "dep-a") == "cooling_down":
            break
        assert asked - answered < 5
    elapsed = asked - answered
    assert elapsed <= 0.1, f"the other instance cooled the key after {elapsed * 1000:.0f} ms"
    before = len(fake.calls(key="sk-aaaa1111"))
    for _ in range(6):
        assert post(b).status_code == 200
    assert len(fake.calls(key="sk-aaaa1111")) == before


def test_rpm_is_shared_by_both_instances(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    redis_ns: str,
    redis_port: int,
) -> None:
    deps = [openai_deployment("g", fake, "sk-rpm00001", id="dep-rpm", rpm=10)]
    conf = write_config(
        tmp_path / "c.yaml", deps, router_settings=redis_settings(redis_ns, redis_port)
    )
    a, b = two(run_cli, conf)
    statuses = [post(proxy).status_code for proxy in (a, b) * 5]
    assert statuses == [200] * 10
    eleventh = post(a)
    assert eleventh.status_code == 429
    assert 1 <= int(eleventh.headers["retry-after"]) <= 60
    assert post(b).status_code == 429
    assert len(fake.calls(key="sk-rpm00001")) == 10


def test_a_response_cached_through_one_is_a_hit_through_the_other(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    redis_ns: str,
    redis_port: int,
) -> None:
    deps = [openai_deployment("g", fake, "sk-cache0001", id="dep-c")]
    cache = {"cache": True, "cache_params": {"type": "redis", "host": "127.0.0.1",
             "port": redis_port, "namespace": f"llmproxy:{redis_ns}:cache", "ttl": 60}}  # fmt: skip
    conf = write_config(tmp_path / "c.yaml", deps, litellm_settings=cache)
    a, b = two(run_cli, conf)
    first = post(a)
    assert first.status_code == 200 and first.headers["x-llmproxy-cache"] == "miss"
    second = post(b)
    assert second.status_code == 200 and second.headers["x-llmproxy-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert len(fake.calls(key="sk-cache0001")) == 1
    snap = state(b)
    assert snap["cache"]["type"] == "redis" and snap["cache"]["hits"] == 1
    assert snap["server"]["redis"]["configured"] is True and snap["server"]["redis"]["ok"]


async def test_both_write_usage_to_one_postgres(
    fake: FakeUpstream, tmp_path: Path, run_cli: Callable[..., CliProxy], pg_url: str
) -> None:
    deps = [openai_deployment("g", fake, "sk-usage0001", id="dep-u")]
    conf = write_config(tmp_path / "c.yaml", deps, general_settings={"database_url": pg_url})
    a, b = two(run_cli, conf)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        calls = [client.post(p.url + "/v1/chat/completions", json=BODY) for p in (a, b) * 100]
        answers = await asyncio.gather(*calls)
    assert [r.status_code for r in answers] == [200] * 200
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        for _ in range(500):
            if await conn.fetchval("SELECT COUNT(*) FROM requests") == 200:
                break
            await asyncio.sleep(0.02)
        assert await conn.fetchval("SELECT COUNT(*) FROM requests") == 200
        assert await conn.fetchval("SELECT COUNT(DISTINCT id) FROM requests") == 200
    finally:
        await conn.close()
    for proxy in (a, b):  # every instance's dashboard shows the team's totals
        await asyncio.to_thread(
            wait_for, lambda p=proxy: state(p)["usage"]["totals"]["requests"] == 200
        )
        store = state(proxy)["server"]["usage_store"]
        assert store["ok"] and store["kind"] == "postgres" and store["shared"] is True


def test_redis_stopped_mid_run(
    fake: FakeUpstream,
    tmp_path: Path,
    run_cli: Callable[..., CliProxy],
    redis_server: RedisServer,
    redis_ns: str,
) -> None:
    deps = [openai_deployment("g", fake, "sk-down0001", id="dep-x", rpm=100_000),
            openai_deployment("g", fake, "sk-down0002", id="dep-y")]  # fmt: skip
    settings = redis_settings(redis_ns, redis_server.port)
    conf = write_config(tmp_path / "c.yaml", deps, router_settings=settings)
    a, b = two(run_cli, conf)
    failures: list[int] = []
    served = [0]
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                for proxy in (a, b):
                    code = client.post(proxy.url + "/v1/chat/completions", json=BODY).status_code
                    served[0] += 1
                    if code != 200:
                        failures.append(code)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_for(lambda: served[0] >= 20)
        redis_server.stop()
        wait_for(lambda: not state(a)["server"]["redis"]["ok"])
        wait_for(lambda: not state(b)["server"]["redis"]["ok"])
        down = state(a)["server"]["redis"]
        assert down["configured"] is True and down["error"]
        mark = served[0]
        wait_for(lambda: served[0] >= mark + 20)  # served on local state
        redis_server.start()
        wait_for(lambda: state(a)["server"]["redis"]["ok"] and state(b)["server"]["redis"]["ok"])
        mark = served[0]
        wait_for(lambda: served[0] >= mark + 20)
    finally:
        stop.set()
        worker.join(30)
    assert failures == []
    assert "unavailable" in a.output() and "Traceback" not in a.output()
    fake.script(rate_limit(30), key="sk-down0002")  # sharing resumes: a 429 on a cools b
    for _ in range(20):
        assert post(a).status_code == 200
        if fake.calls(key="sk-down0002") and health(a, "dep-y") == "cooling_down":
            break
    wait_for(lambda: health(b, "dep-y") == "cooling_down", timeout=2)
