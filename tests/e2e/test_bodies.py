"""Request bodies on demand, end to end: off by default; on with
`general_settings.store_prompts_in_spend_logs` or the `bodies_on` action; what the client sent,
what went upstream after translation and what came back, with no key in any of them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.conftest import MASTER_KEY, anthropic_deployment, openai_deployment
from tests.fakes.upstream import reply

UPSTREAM_KEY = "sk-fake-upstream-key-7f3a9b21c4"
ANSWER = f"Your key is {UPSTREAM_KEY}, isn't it?"


def config(fake: Any, *, store: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model_list": [openai_deployment("claude", fake, UPSTREAM_KEY, id="oa-1")],
        "router_settings": {"num_retries": 0},
    }
    if store:
        doc["general_settings"] = {"store_prompts_in_spend_logs": True}
    return doc


def messages(proxy: Any, **extra: Any) -> httpx.Response:
    body = {
        "model": "claude",
        "max_tokens": 50,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": f"Is my key {UPSTREAM_KEY}?"}],
        **extra,
    }
    with proxy.client() as client:
        return client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})


def bodies(proxy: Any, request_id: str) -> httpx.Response:
    with proxy.client() as client:
        return client.get(f"/llmproxy/requests/{request_id}/bodies")


def status(proxy: Any) -> dict[str, Any]:
    with proxy.client() as client:
        response = client.get("/llmproxy/bodies")
        response.raise_for_status()
        return dict(response.json())


def action(proxy: Any, name: str) -> dict[str, Any]:
    with proxy.client() as client:
        response = client.post("/llmproxy/actions", json={"action": name})
        response.raise_for_status()
        return dict(response.json())


def test_off_by_default_nothing_is_held_and_the_route_404s(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, store=False), master_key=MASTER_KEY)
    response = messages(proxy)
    assert response.status_code == 200
    got = bodies(proxy, response.headers["x-request-id"])
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "bodies_not_stored"
    assert status(proxy)["storing"] is False
    assert status(proxy)["requests"] == 0


def test_the_route_needs_the_master_key(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, store=True), master_key=MASTER_KEY)
    response = httpx.get(f"{proxy.url}/llmproxy/requests/abc/bodies")
    assert response.status_code == 401


def test_a_translated_request_shows_all_three_bodies_without_keys(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, store=True), master_key=MASTER_KEY)
    fake.script(reply(ANSWER))
    response = messages(proxy)
    assert response.status_code == 200
    got = bodies(proxy, response.headers["x-request-id"])
    assert got.status_code == 200
    doc = got.json()
    raw = got.text
    assert UPSTREAM_KEY not in raw and MASTER_KEY not in raw
    assert "authorization" not in raw.lower()
    client = orjson.loads(doc["client"])  # Anthropic's shape, as the client sent it
    assert client["system"] == "You are terse."
    assert client["max_tokens"] == 50
    upstream = orjson.loads(doc["upstream"])  # OpenAI's shape, after translation
    assert upstream["messages"][0]["role"] == "system"
    assert "system" not in upstream
    assert upstream["model"] == "gpt-4o"
    assert "/chat/completions" in doc["upstream_url"]
    answer = orjson.loads(doc["answer"])
    assert answer["object"] == "chat.completion"
    assert "…21c4" in answer["choices"][0]["message"]["content"]  # redacted to its last 4
    assert doc["storing"] is True


def test_a_stream_keeps_the_relayed_events(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, store=True), master_key=MASTER_KEY)
    fake.script(reply(ANSWER))
    response = messages(proxy, stream=True)
    assert response.status_code == 200
    doc = bodies(proxy, response.headers["x-request-id"]).json()
    assert orjson.loads(doc["client"])["stream"] is True
    assert orjson.loads(doc["upstream"])["stream"] is True
    assert "data: " in doc["answer"]
    assert UPSTREAM_KEY not in doc["answer"] and "…21c4" in doc["answer"]


def test_the_action_turns_storing_on_and_off_at_runtime(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, store=False), master_key=MASTER_KEY)
    before = messages(proxy).headers["x-request-id"]
    result = action(proxy, "bodies_on")
    assert result["storing"] is True
    during = messages(proxy).headers["x-request-id"]
    assert action(proxy, "bodies_off")["storing"] is False
    after = messages(proxy).headers["x-request-id"]
    assert bodies(proxy, before).status_code == 404
    assert bodies(proxy, during).status_code == 200
    assert bodies(proxy, after).status_code == 404
    assert status(proxy)["requests"] == 1


def test_a_pass_through_stream_stores_the_upstreams_own_events(fake, start_proxy) -> None:
    deps = [anthropic_deployment("claude", fake, UPSTREAM_KEY, id="an-1")]
    doc = {
        "model_list": deps,
        "router_settings": {"num_retries": 0},
        "general_settings": {"store_prompts_in_spend_logs": True},
    }
    proxy = start_proxy(doc, master_key=MASTER_KEY)
    response = messages(proxy, stream=True)
    assert response.status_code == 200
    got = bodies(proxy, response.headers["x-request-id"])
    stored = got.json()
    assert UPSTREAM_KEY not in got.text
    assert orjson.loads(stored["upstream"])["system"] == "You are terse."  # sent as sent
    assert "/v1/messages" in stored["upstream_url"]
    assert "event: message_start" in stored["answer"]
