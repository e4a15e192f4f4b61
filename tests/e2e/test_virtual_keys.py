"""Virtual keys through the real proxy on loopback, against the fake upstream with priced
models: budgets on every front door (streams charged their real usage), concurrent requests
overshooting by at most what is in flight, model access, rpm and parallel limits, blocked and
expired keys, LiteLLM's management API (its documented request bodies), keys never stored or
shown in plaintext, and spend that survives a restart."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from proxy.config.loader import build_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tests.conftest import MASTER_KEY, Proxy, openai_deployment
from tests.fakes.upstream import FakeUpstream, reply

UPSTREAM_KEY = "sk-upstream-vk-5555eeee"
PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500}
COST = 1000 * 0.000001 + 500 * 0.000002
"""USD of one request at USAGE: $0.002."""
MSG = [{"role": "user", "content": "hello"}]
ESTIMATE = 1 * 0.000001 + 1000 * 0.000002
"""What the proxy reserves for one request of MSG without max_tokens: one prompt token at the
input price plus 1,000 output tokens at the output price."""


def config(fake: FakeUpstream) -> dict[str, Any]:
    deps = [
        openai_deployment("g", fake, UPSTREAM_KEY, id="g-1"),
        openai_deployment("other", fake, UPSTREAM_KEY, id="other-1"),
    ]
    for dep in deps:
        dep["model_info"].update(PRICES)
    return {"model_list": deps}


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    fake.set_default(reply("ok", usage=USAGE))
    return start_proxy(config(fake), master_key=MASTER_KEY)


def admin(proxy: Proxy, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
    with proxy.client() as c:
        if body is None:
            return c.get(path, params=params)
        return c.post(path, json=body)


def generate(proxy: Proxy, **body: Any) -> dict[str, Any]:
    answer = admin(proxy, "/key/generate", body)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def spend(proxy: Proxy, key: str) -> float:
    answer = admin(proxy, "/key/info", key=key)
    assert answer.status_code == 200, answer.text
    return float(answer.json()["info"]["spend"])


def chat(proxy: Proxy, key: str, model: str = "g", **body: Any) -> httpx.Response:
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        return c.post(
            "/v1/chat/completions",
            json={"model": model, "messages": MSG, **body},
            headers={"authorization": f"Bearer {key}"},
        )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_budget_holds_on_all_three_front_doors(proxy: Proxy) -> None:
    key = generate(proxy, key_alias="ci-bot", max_budget=0.01, budget_duration="1d")["key"]
    oa = openai.OpenAI(base_url=proxy.base, api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0)
    try:
        for _ in range(2):
            oa.chat.completions.create(model="g", messages=MSG)  # type: ignore[arg-type]
            an.messages.create(model="g", max_tokens=1000, messages=MSG)  # type: ignore[arg-type]
        oa.responses.create(model="g", input="hello")
        wait_for(lambda: spend(proxy, key) >= 5 * COST - 1e-12)
        assert spend(proxy, key) == pytest.approx(5 * COST)  # $0.01: the budget is reached

        with pytest.raises(openai.BadRequestError) as chat_err:
            oa.chat.completions.create(model="g", messages=MSG)  # type: ignore[arg-type]
        error = chat_err.value.body
        assert isinstance(error, dict) and error["code"] == "budget_exceeded"
        message = error["message"]
        assert "'ci-bot'" in message and "$0.0100 of $0.0100" in message
        assert "it resets at" in message and "UTC (in 23h" in message
        with pytest.raises(anthropic.BadRequestError) as messages_err:
            an.messages.create(model="g", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
        doc = messages_err.value.body
        assert isinstance(doc, dict) and doc["type"] == "error"  # Anthropic's shape
        assert "Budget has been exceeded for key 'ci-bot'" in doc["error"]["message"]
        with pytest.raises(openai.BadRequestError) as responses_err:
            oa.responses.create(model="g", input="hello")
        assert responses_err.value.code == "budget_exceeded"
    finally:
        oa.close()
        an.close()
    assert spend(proxy, key) == pytest.approx(5 * COST)  # refused requests cost nothing


def test_a_streamed_request_is_charged_its_real_usage(proxy: Proxy, fake: FakeUpstream) -> None:
    fake.set_default(reply("a streamed answer", usage={"prompt_tokens": 300,
                                                       "completion_tokens": 700}))  # fmt: skip
    key = generate(proxy, max_budget=1.0)["key"]
    with openai.OpenAI(base_url=proxy.base, api_key=key, max_retries=0) as oa:
        stream: Any = oa.chat.completions.create(model="g", messages=MSG, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "a streamed answer"
    expected = 300 * 0.000001 + 700 * 0.000002
    wait_for(lambda: spend(proxy, key) > 0)
    assert spend(proxy, key) == pytest.approx(expected)


def test_concurrent_requests_overshoot_by_at_most_the_in_flight_estimate(
    proxy: Proxy, fake: FakeUpstream
) -> None:
    fake.set_default(reply("slow", usage=USAGE, delay=0.3))
    budget, already = 0.01, 0.009
    key = generate(proxy, max_budget=budget, spend=already)["key"]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: chat(proxy, key), range(50)))
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert served, "the key had budget left: at least one request is served"
    assert all(a.status_code == 400 for a in refused)
    assert all(a.json()["error"]["code"] == "budget_exceeded" for a in refused)
    wait_for(lambda: spend(proxy, key) >= already + len(served) * COST - 1e-12)
    overshoot = spend(proxy, key) - budget
    # Only what was admitted while spend + reserved stayed under the budget can overshoot it.
    assert len(served) <= (budget - already) / ESTIMATE + 1
    assert overshoot <= len(served) * ESTIMATE
    assert chat(proxy, key).status_code == 400  # spent: refused from now on


def test_a_key_limited_to_one_group_gets_403_on_another(proxy: Proxy) -> None:
    key = generate(proxy, models=["g"])["key"]
    assert chat(proxy, key, "g").status_code == 200
    answer = chat(proxy, key, "other")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "key_model_access_denied"
    with httpx.Client(base_url=proxy.url) as c:  # count_tokens is free, but checked too
        counted = c.post(
            "/v1/messages/count_tokens",
            json={"model": "other", "messages": MSG},
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
    assert counted.status_code == 403
    assert counted.json()["type"] == "error"  # Anthropic's shape on the Messages routes


def test_rpm_limit_5_refuses_the_6th_with_retry_after(proxy: Proxy) -> None:
    key = generate(proxy, rpm_limit=5)["key"]
    assert [chat(proxy, key).status_code for _ in range(5)] == [200] * 5
    sixth = chat(proxy, key)
    assert sixth.status_code == 429
    assert sixth.json()["error"]["code"] == "rate_limit_exceeded"
    assert "rpm_limit" in sixth.json()["error"]["message"]
    assert 1 <= int(sixth.headers["retry-after"]) <= 60


def test_max_parallel_requests(proxy: Proxy, fake: FakeUpstream) -> None:
    fake.set_default(reply("slow", usage=USAGE, delay=1.0))
    key = generate(proxy, max_parallel_requests=1)["key"]
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(chat(proxy, key)))
    worker.start()
    fake.wait_requests(1)  # the first is in flight upstream
    second = chat(proxy, key)
    worker.join()
    assert first[0].status_code == 200
    assert second.status_code == 429
    assert "max_parallel_requests" in second.json()["error"]["message"]
    assert second.headers["retry-after"] == "1"
    assert chat(proxy, key).status_code == 200  # the slot is free again


def test_a_blocked_key_gets_401_and_is_served_once_unblocked(proxy: Proxy) -> None:
    made = generate(proxy, key_alias="blockme")
    key = made["key"]
    blocked = admin(proxy, "/key/block", {"key": key})
    assert blocked.status_code == 200 and blocked.json()["blocked"] is True
    answer = chat(proxy, key)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "key_blocked"
    assert admin(proxy, "/key/unblock", {"key": made["token"]}).json()["blocked"] is False
    assert chat(proxy, key).status_code == 200


def test_an_expired_key_gets_401(proxy: Proxy) -> None:
    key = generate(proxy, duration="0.3s")["key"]
    wait_for(lambda: chat(proxy, key).status_code == 401)
    answer = chat(proxy, key)
    assert answer.json()["error"]["code"] == "key_expired"


def test_an_unknown_key_gets_401_without_echoing_it(proxy: Proxy) -> None:
    wrong = "sk-not-a-key-at-all-9876zyxw"
    answer = chat(proxy, wrong)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert wrong not in answer.text and "9876zyxw" not in answer.text


def test_non_master_callers_get_403_on_management_routes(proxy: Proxy) -> None:
    made = generate(proxy, key_alias="worker")
    key = made["key"]
    other = generate(proxy, key_alias="other")
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=proxy.url, headers=headers) as c:
        assert c.post("/key/generate", json={}).status_code == 403
        assert c.post("/key/update", json={"key": key, "max_budget": 100}).status_code == 403
        assert c.post("/key/delete", json={"keys": [other["key"]]}).status_code == 403
        assert c.post("/key/unblock", json={"key": key}).status_code == 403
        assert c.get("/key/list").status_code == 403
        assert c.get("/llmproxy/state").status_code == 403
        assert c.get("/metrics").status_code == 403
        own = c.get("/key/info", params={"key": key})  # as LiteLLM: a key may read itself
        assert own.status_code == 200 and own.json()["info"]["key_alias"] == "worker"
        assert c.get("/key/info").json()["info"]["token"] == made["token"]
        assert c.get("/key/info", params={"key": other["key"]}).status_code == 403
        assert c.get("/v1/models").status_code == 200  # a client route: served
    assert admin(proxy, "/key/info", key=other["key"]).status_code == 200


def test_litellm_documented_generate_bodies_work_as_written(proxy: Proxy) -> None:
    # The request bodies of LiteLLM's own /key/generate documentation, as written there:
    # https://litellm-az77h0eap-clerkieai.vercel.app/docs/proxy/virtual_keys (virtual keys
    # quick start, and "Keys that don't expire") and
    # https://docs.litellm.ai/docs/proxy/temporary_budget_increase (step 1).
    bodies: list[dict[str, Any]] = [
        {"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m",
         "metadata": {"user": "ishaan@berri.ai", "team": "core-infra"}},
        {"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m",
         "metadata": {"user": "ishaan@berri.ai"}, "team_id": "core-infra"},
        {"models": ["azure-models"], "aliases": {"mistral-7b": "gpt-3.5-turbo"},
         "duration": None},
        {"max_budget": 0.0000001},
    ]  # fmt: skip
    for body in bodies:
        answer = generate(proxy, **body)
        assert answer["key"].startswith("sk-") and len(answer["key"]) >= 25
        assert answer["key_name"] == f"sk-...{answer['key'][-4:]}"
        assert answer["models"] == body.get("models", [])
        assert answer["expires"] is (None if body.get("duration") is None else answer["expires"])
        if body.get("duration") == "20m":
            assert answer["expires"] is not None and answer["metadata"] == body["metadata"]
    assert answer["max_budget"] == 0.0000001
    listed = admin(proxy, "/key/list").json()
    assert listed["total_count"] == 4 and len(listed["keys"]) == 4
    update = admin(proxy, "/key/update", {"key": answer["key"], "max_budget": 5, "rpm_limit": 9})
    assert update.status_code == 200 and update.json()["rpm_limit"] == 9
    deleted = admin(proxy, "/key/delete", {"keys": [answer["key"]]})
    assert deleted.json() == {"deleted_keys": [answer["key"]]}
    assert admin(proxy, "/key/info", key=answer["key"]).status_code == 404
    assert chat(proxy, answer["key"]).status_code == 401


def test_bad_management_input_is_a_400_naming_the_field(proxy: Proxy) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_budget": -1}, "max_budget"),
        ({"budget_duration": "fortnight"}, "budget_duration"),
        ({"duration": "soon"}, "duration"),
        ({"models": "g"}, "models"),
        ({"rpm_limit": 1.5}, "rpm_limit"),
        ({"key": "not-sk"}, "key"),
        ({"key": MASTER_KEY}, "key"),
    ]
    for body, field in cases:
        answer = admin(proxy, "/key/generate", body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["param"] == field
    assert admin(proxy, "/key/update", {"key": "sk-nobody-1234abcd"}).status_code == 404
    assert admin(proxy, "/key/list", None, page="x").status_code == 400


def test_no_key_reaches_the_database_a_row_or_a_log_in_plaintext(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmproxy")
    made = generate(proxy, key_alias="secretive", max_budget=1.0)
    key = made["key"]
    assert chat(proxy, key).status_code == 200
    chat(proxy, key, "other", max_tokens="x")  # an error, logged
    custom = "sk-my-own-custom-key-4242"
    generate(proxy, key=custom)
    assert proxy.runtime.ledger.flush(10)
    assert proxy.usage_db is not None
    with sqlite3.connect(proxy.usage_db) as db:
        rows = db.execute("SELECT key_alias FROM requests").fetchall()
        stored = db.execute("SELECT token, key_name FROM virtual_keys").fetchall()
    assert ("secretive",) in rows
    assert (made["token"], f"sk-...{key[-4:]}") in stored
    files = [p for p in proxy.usage_db.parent.iterdir() if p.name.startswith(proxy.usage_db.name)]
    for path in files:
        data = path.read_bytes()
        for secret in (key, custom):
            assert secret.encode() not in data, path
            assert secret[3:].encode() not in data, path
    for record in caplog.records:
        for secret in (key, custom):
            assert secret not in record.getMessage()


def test_without_a_master_key_management_routes_answer_400(
    fake: FakeUpstream, start_proxy: Callable[..., Proxy]
) -> None:
    proxy = start_proxy(config(fake))
    answer = admin(proxy, "/key/generate", {})
    assert answer.status_code == 400
    assert "virtual keys need general_settings.master_key" in answer.json()["error"]["message"]
    fake.set_default(reply("ok", usage=USAGE))
    assert chat(proxy, "anything").status_code == 200  # every request passes, as before


@pytest.fixture
def on_one_db(tmp_path: Path, fake: FakeUpstream) -> Iterator[Callable[[], Proxy]]:
    """Starts proxies one after the other on the same usage database (a restart)."""
    started: list[Proxy] = []
    doc = {**config(fake), "general_settings": {"master_key": MASTER_KEY}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    db = tmp_path / "usage.db"

    def start() -> Proxy:
        runtime = Runtime(build_config(doc, path=path), usage_db=db)
        server = ProxyServer(runtime, "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, name="proxy", daemon=True)
        thread.start()
        assert server.started.wait(15) and not server.bind_error
        url = f"http://127.0.0.1:{server.port}"
        proxy = Proxy(server, runtime, thread, url, MASTER_KEY, db)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def test_a_restart_keeps_spend(on_one_db: Callable[[], Proxy], fake: FakeUpstream) -> None:
    fake.set_default(reply("ok", usage=USAGE))
    first = on_one_db()
    key = generate(first, key_alias="lasting", max_budget=2.5 * COST)["key"]
    assert [chat(first, key).status_code for _ in range(2)] == [200, 200]
    first.stop()  # writes the spend still pending
    second = on_one_db()
    assert spend(second, key) == pytest.approx(2 * COST)
    assert chat(second, key).status_code == 200
    refused = chat(second, key)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "budget_exceeded"
