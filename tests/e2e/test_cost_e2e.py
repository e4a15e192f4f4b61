"""Cost through the real proxy: genai-prices' table (cache reads/writes included), model_info
overrides, unknown prices (null and flagged, never invented), stream usage asked upstream and
stripped for a client that did not ask, a tokenizer estimate when the upstream sends none."""

from __future__ import annotations

import http.server
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tests.conftest import MASTER_KEY, anthropic_deployment, openai_deployment
from tests.fakes.upstream import reply

KEY = "sk-upstream-cost-2222cccc"
MSG = [{"role": "user", "content": "price this"}]


def table_price(model: str, provider: str, **usage: int) -> float:
    return float(calc_price(PriceUsage(**usage), model_ref=model, provider_id=provider).total_price)


def post(proxy: Any, **body: Any) -> Any:
    with proxy.client() as c:
        return c.post("/v1/chat/completions", json={"model": "g", "messages": MSG, **body})


def stored(proxy: Any) -> list[tuple[Any, ...]]:
    assert proxy.runtime.ledger.flush(10)
    with sqlite3.connect(proxy.usage_db) as db:
        return db.execute(
            "SELECT cost, prompt_tokens, completion_tokens, cached_tokens, estimated "
            "FROM requests ORDER BY time"
        ).fetchall()


def test_known_model_costs_tokens_times_table_price(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("g", fake, KEY)]}, master_key=MASTER_KEY)
    fake.set_default(reply("ok", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    answer = post(proxy)
    expected = table_price("gpt-4o", "openai", input_tokens=1000, output_tokens=500)
    assert expected > 0
    assert float(answer.headers["x-llmproxy-cost"]) == pytest.approx(expected)
    assert answer.json()["usage"]["prompt_tokens"] == 1000  # passed through unchanged
    assert stored(proxy)[0][:3] == (pytest.approx(expected), 1000, 500)
    totals = proxy.state()["usage"]["totals"]
    assert totals["cost"] == pytest.approx(expected)
    assert (totals["tokens_in"], totals["tokens_out"], totals["cost_unknown"]) == (1000, 500, 0)


def test_openai_cached_tokens_priced_at_cache_read_rate(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("g", fake, KEY)]}, master_key=MASTER_KEY)
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 400}
    fake.set_default(reply("ok", usage=usage))
    cost = float(post(proxy).headers["x-llmproxy-cost"])
    expected = table_price(
        "gpt-4o", "openai", input_tokens=1000, output_tokens=500, cache_read_tokens=400
    )
    assert cost == pytest.approx(expected)
    assert cost < table_price("gpt-4o", "openai", input_tokens=1000, output_tokens=500)
    assert stored(proxy)[0][3] == 400


def test_anthropic_cache_read_and_write_priced(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [anthropic_deployment("g", fake, KEY)]}, master_key=MASTER_KEY
    )
    usage = {"input_tokens": 500, "output_tokens": 500, "cache_read_input_tokens": 300,
             "cache_creation_input_tokens": 200}  # fmt: skip
    fake.set_default(reply("ok", usage=usage))
    answer = post(proxy)
    expected = table_price(
        "claude-sonnet-4-20250514", "anthropic", input_tokens=1000, output_tokens=500,
        cache_read_tokens=300, cache_write_tokens=200,
    )  # fmt: skip
    assert float(answer.headers["x-llmproxy-cost"]) == pytest.approx(expected)
    assert answer.json()["usage"]["prompt_tokens"] == 1000


def test_model_info_prices_override_the_table(fake, start_proxy) -> None:
    entry = openai_deployment("g", fake, KEY)
    entry["model_info"] = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    proxy = start_proxy({"model_list": [entry]}, master_key=MASTER_KEY)
    fake.set_default(reply("ok", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    cost = float(post(proxy).headers["x-llmproxy-cost"])
    assert cost == pytest.approx(1000 * 0.000001 + 500 * 0.000002)


def test_override_makes_an_unknown_model_priced(fake, start_proxy) -> None:
    entry = openai_deployment("g", fake, KEY, model="openai/my-private-finetune")
    entry["model_info"] = {"input_cost_per_token": 0.00001, "output_cost_per_token": 0.00003}
    proxy = start_proxy({"model_list": [entry]}, master_key=MASTER_KEY)
    fake.set_default(reply("ok", usage={"prompt_tokens": 10, "completion_tokens": 10}))
    assert float(post(proxy).headers["x-llmproxy-cost"]) == pytest.approx(0.0004)


def test_unknown_price_is_null_and_flagged(fake, start_proxy) -> None:
    entry = openai_deployment("g", fake, KEY, model="openai/my-private-finetune")
    proxy = start_proxy({"model_list": [entry]}, master_key=MASTER_KEY)
    fake.set_default(reply("ok", usage={"prompt_tokens": 10, "completion_tokens": 10}))
    answer = post(proxy)
    assert answer.status_code == 200
    assert "x-llmproxy-cost" not in answer.headers
    assert stored(proxy)[0][:3] == (None, 10, 10)
    state = proxy.state()
    assert state["recent"][-1]["cost"] is None
    totals = state["usage"]["totals"]
    assert (totals["cost_unknown"], totals["cost"]) == (1, 0.0)


def test_stream_usage_asked_upstream_and_stripped(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("g", fake, KEY)]}, master_key=MASTER_KEY)
    fake.set_default(reply("streamed", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    client = proxy.openai()
    plain = list(client.chat.completions.create(model="g", messages=MSG, stream=True))
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in plain)
    asked = list(
        client.chat.completions.create(
            model="g", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].usage is not None
    assert asked[-1].usage.prompt_tokens == 1000
    expected = table_price("gpt-4o", "openai", input_tokens=1000, output_tokens=500)
    for row in stored(proxy):
        assert row == (pytest.approx(expected), 1000, 500, 0, 0)


class _NoUsageStream(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that streams and ignores `stream_options`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # the stdlib's name
        self.rfile.read(int(self.headers["content-length"]))
        head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
        events = [
            {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {**head, "choices": [{"index": 0, "delta": {"content": "x" * 400}}]},
            {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        body += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def no_usage_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoUsageStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_stream_without_upstream_usage_is_estimated(no_usage_upstream, start_proxy) -> None:
    entry = {"model_name": "g", "litellm_params": {
        "model": "openai/gpt-4o", "api_base": no_usage_upstream, "api_key": KEY}}  # fmt: skip
    proxy = start_proxy({"model_list": [entry]}, master_key=MASTER_KEY)
    with proxy.client() as c:
        answer = c.post(
            "/v1/chat/completions", json={"model": "g", "messages": MSG, "stream": True}
        )
    assert answer.status_code == 200
    assert answer.text.endswith("data: [DONE]\n\n")
    cost, prompt, completion, _, estimated = stored(proxy)[0]
    assert estimated == 1
    # 4 characters a token (past the preview, a chunk counts as a token: the finish chunk too)
    assert prompt == 2 and completion in (100, 101)
    expected = table_price("gpt-4o", "openai", input_tokens=2, output_tokens=completion)
    assert cost == pytest.approx(expected)
    assert proxy.state()["recent"][-1]["tokens_estimated"] is True


def test_wildcard_deployment_priced_by_the_upstream_model(fake, start_proxy) -> None:
    entry = openai_deployment("openrouter/*", fake, KEY, model="openrouter/*")
    proxy = start_proxy({"model_list": [entry]}, master_key=MASTER_KEY)
    fake.set_default(reply("ok", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    with proxy.client() as c:
        answer = c.post(
            "/v1/chat/completions", json={"model": "openrouter/openai/gpt-4o", "messages": MSG}
        )
    assert answer.status_code == 200
    assert fake.requests[-1].body["model"] == "openai/gpt-4o"
    expected = table_price("openai/gpt-4o", "openrouter", input_tokens=1000, output_tokens=500)
    assert float(answer.headers["x-llmproxy-cost"]) == pytest.approx(expected)
