"""Budget alerts end to end: a virtual key spends through a priced deployment on the fake
upstream; a fake Slack webhook (a loopback HTTP server) gets one POST when the soft budget is
crossed and one when the budget is, however many requests follow; a plain webhook gets the
event's JSON; a failing hook is logged without its URL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from proxy.config.loader import build_config
from proxy.observe.alerts import alert_targets, redact_webhook
from tests.conftest import MASTER_KEY, openai_deployment

SECRET_PATH = "/services/T000/B000/very-secret-hook-token"


class Hook:
    """A webhook on loopback that records every POST (path, JSON body)."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.status = status
        self.seen = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with hook.seen:
                    hook.posts.append((self.path, json.loads(body)))
                    hook.seen.notify_all()
                self.send_response(hook.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 15) -> list[tuple[str, Any]]:
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.posts) >= n, timeout), self.posts
            return list(self.posts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.stop()


def chat(base: str, key: str) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        base + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def priced(fake: Any) -> dict[str, Any]:
    return {"model_list": [openai_deployment("gpt", fake, "sk-upstream-0123456789abcdef")]}


def one_request_cost(proxy: Any) -> float:
    answer = chat(proxy.url, MASTER_KEY)
    assert answer.status_code == 200, answer.text
    cost = float(answer.headers["x-llmproxy-cost"])
    assert cost > 0
    return cost


def new_key(proxy: Any, **fields: Any) -> str:
    answer = httpx.post(
        proxy.url + "/key/generate",
        json=fields,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


def test_slack_gets_one_post_per_crossing(
    fake, start_proxy, hook: Hook, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="llmproxy.alerts")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url + SECRET_PATH)
    doc = priced(fake)
    doc["general_settings"] = {"alerting": ["slack"], "alerting_threshold": 300}
    proxy = start_proxy(doc, master_key=MASTER_KEY)
    assert not any("alerting" in w for w in proxy.runtime.config.warnings)  # served, not ignored
    cost = one_request_cost(proxy)
    key = new_key(proxy, key_alias="agent-1", soft_budget=1.5 * cost, max_budget=3.5 * cost)
    statuses = [chat(proxy.url, key).status_code for _ in range(8)]
    assert statuses[:4] == [200] * 4 and 400 in statuses[4:], statuses  # then refused
    posts = hook.wait_for(2)
    metrics = httpx.get(proxy.url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert 'llmproxy_key_requests_total{key_alias="agent-1",status="200"} 4.0' in metrics.text
    assert f'llmproxy_key_max_budget_usd{{key_alias="agent-1"}} {3.5 * cost}' in metrics.text
    assert 'llmproxy_key_cost_usd_total{key_alias="agent-1"}' in metrics.text
    assert key not in metrics.text and key[-12:] not in metrics.text
    proxy.stop()  # alerts still queued are posted before the proxy ends
    assert len(hook.posts) == 2, hook.posts
    (soft_path, soft), (max_path, spent) = posts[:2]
    assert soft_path == max_path == SECRET_PATH
    assert set(soft) == {"text"} and "agent-1" in soft["text"] and "soft budget" in soft["text"]
    assert "reached its budget" in spent["text"]
    lines = [r.getMessage() for r in caplog.records if r.name == "llmproxy.alerts"]
    assert len([line for line in lines if line.startswith("budget: ")]) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "llmproxy.alerts")


def test_a_webhook_gets_the_event_json_and_a_failing_one_is_logged_redacted(
    fake, start_proxy, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="llmproxy.alerts")
    good, bad = Hook(), Hook(status=500)
    try:
        doc = priced(fake)
        doc["general_settings"] = {
            "alerting": [good.url + "/budget"],
            "alerting_webhook_url": bad.url + SECRET_PATH,
        }
        proxy = start_proxy(doc, master_key=MASTER_KEY)
        cost = one_request_cost(proxy)
        key = new_key(proxy, key_alias="ci", max_budget=1.5 * cost)
        for _ in range(4):
            chat(proxy.url, key)
        ((path, body),) = good.wait_for(1)
        bad.wait_for(1)
        proxy.stop()
        assert path == "/budget"
        assert body["type"] == body["event"] == "budget_crossed"
        assert (body["scope"], body["name"], body["kind"]) == ("key", "ci", "max_budget")
        assert body["spend"] >= body["budget"] == pytest.approx(1.5 * cost)
        assert len(good.posts) == 1
        failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
        assert failed and all("HTTP 500" in line for line in failed)
        assert redact_webhook(bad.url + SECRET_PATH) in failed[0]
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "very-secret-hook-token" not in text
    finally:
        good.stop()
        bad.stop()


def test_alerting_settings_as_litellm_spells_them() -> None:
    doc = {"model_list": [], "general_settings": {"alerting": ["slack", "webhook", "email"]}}
    config = build_config(doc)
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x", "WEBHOOK_URL": ""}
    targets, warnings = alert_targets(config, env)
    assert [t.kind for t in targets] == ["slack"]
    assert any("WEBHOOK_URL" in w for w in warnings) and any("'email'" in w for w in warnings)
    assert targets[0].shown == "https://hooks.slack.com/…"
    assert "services/T" not in repr(targets[0])  # the Secret's repr is redacted
