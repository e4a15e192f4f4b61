"""What the three front doors (Chat Completions, Messages, Responses) share, through the real
proxy on loopback and the fake upstreams, with the official SDKs as clients where they can see
it: one cache (an answer cached through one door replays through the others in their format),
fallbacks across providers, usage rows / cost / events / metrics naming the door and the
client, the `x-llmproxy-*` headers on every door, a stream cut by the upstream ending in the
client's own error event (never a hang), and hostile bodies answered 4xx in the route's shape.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.upstream import (
    DEFAULT_CONTENT,
    FakeUpstream,
    error,
    hang,
    rate_limit,
    reply,
    stream_cut,
    stream_error_first,
)

KEY_A = "sk-ant-upstream-shared-aaaa"
KEY_B = "sk-ant-upstream-shared-bbbb"
KEY_O = "sk-oai-upstream-shared-oooo"
CLAUDE_MODEL = "claude-sonnet-4-20250514"
GPT_MODEL = "gpt-4o"
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
GROUPS = ["claude", "gpt"]
DOORS = ["chat", "messages", "responses"]
DOOR_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
              "responses": "/v1/responses"}  # fmt: skip
SDK_CLIENTS = {"messages": "anthropic-python", "responses": "openai-python"}
TIMEOUT = httpx.Timeout(20, connect=5)
"""A hang fails the test through this read timeout, well inside pytest's."""


def config(fake: FakeUpstream, **router: Any) -> dict[str, Any]:
    """An Anthropic group (two keys) and an OpenAI group (one), priced; `router` settings."""
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="claude-a", model=CLAUDE_MODEL),
        anthropic_deployment("claude", fake, KEY_B, id="claude-b", model=CLAUDE_MODEL),
        openai_deployment("gpt", fake, KEY_O, id="gpt-o", model=f"openai/{GPT_MODEL}"),
    ]
    for dep in deps:
        dep["model_info"].update(PRICES)
    return {"model_list": deps, "router_settings": {"num_retries": 1, "cooldown_time": 1, **router}}


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    return start_proxy(config(fake), master_key=MASTER_KEY)


@pytest.fixture
def ant(proxy: Proxy) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=proxy.url, api_key=MASTER_KEY, max_retries=0, timeout=20
    ) as client:
        yield client


def body_for(door: str, group: str, *, stream: bool = False, text: str = QUESTION) -> dict:
    """The same question as each door's client would ask it."""
    if door == "chat":
        doc: dict[str, Any] = {"model": group, "max_tokens": 64,
                               "messages": [{"role": "user", "content": text}]}  # fmt: skip
    elif door == "messages":
        doc = {"model": group, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    else:
        doc = {"model": group, "max_output_tokens": 64, "input": text}
    if stream:
        doc["stream"] = True
    return doc


def answer_text(door: str, doc: dict[str, Any]) -> str:
    """The answer's text, read from each door's own format (fails on any other shape)."""
    if door == "chat":
        assert doc["object"] == "chat.completion"
        return str(doc["choices"][0]["message"]["content"])
    if door == "messages":
        assert doc["type"] == "message" and doc["role"] == "assistant"
        return "".join(b["text"] for b in doc["content"] if b["type"] == "text")
    assert doc["object"] == "response" and doc["status"] == "completed"
    return "".join(
        part["text"]
        for item in doc["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, data) of every SSE event; data parsed as JSON unless it is [DONE]."""
    out: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if data:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def stream_text(door: str, text: str) -> str:
    """The answer's text assembled from a stream in each door's format."""
    pieces: list[str] = []
    for name, data in sse_events(text):
        if door == "chat" and data != "[DONE]":
            pieces += [c["delta"].get("content") or "" for c in data.get("choices", [])]
        elif door == "messages" and name == "content_block_delta":
            pieces.append(data["delta"].get("text", ""))
        elif door == "responses" and name == "response.output_text.delta":
            pieces.append(data["delta"])
    return "".join(pieces)


def post(proxy: Proxy, door: str, doc: Any, **kw: Any) -> httpx.Response:
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=TIMEOUT) as c:
        return c.post(DOOR_PATHS[door], json=doc, **kw)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ---- one cache, three formats ----


@pytest.mark.parametrize("first", DOORS)
@pytest.mark.parametrize("group", GROUPS)
def test_an_answer_cached_through_one_door_replays_through_the_others(
    fake, start_proxy, group, first
) -> None:
    proxy = start_proxy({**config(fake), "litellm_settings": {"cache": True}},
                        master_key=MASTER_KEY)  # fmt: skip
    fake.set_default(reply(ANSWER))
    stored = post(proxy, first, body_for(first, group))
    assert stored.status_code == 200, stored.text
    assert stored.headers["x-llmproxy-cache"] == "miss"
    assert answer_text(first, stored.json()) == ANSWER
    for door in DOORS:
        if door == first:
            continue
        again = post(proxy, door, body_for(door, group))
        assert again.status_code == 200, (door, again.text)
        assert again.headers["x-llmproxy-cache"] == "hit", door
        assert again.headers["x-llmproxy-cost"] == "0"
        assert answer_text(door, again.json()) == ANSWER, door
    assert len(fake.requests) == 1  # only the first reached the upstream


@pytest.mark.parametrize("first", ["messages", "responses"])
@pytest.mark.parametrize("group", GROUPS)
def test_a_streamed_answer_is_cached_for_every_door(fake, start_proxy, group, first) -> None:
    """A stream through Messages or Responses (passed through or translated) fills the cache;
    the whole answers replay through the other doors."""
    proxy = start_proxy({**config(fake), "litellm_settings": {"cache": True}},
                        master_key=MASTER_KEY)  # fmt: skip
    fake.set_default(reply(ANSWER))
    streamed = post(proxy, first, body_for(first, group, stream=True))
    assert streamed.status_code == 200
    assert stream_text(first, streamed.text) == ANSWER

    def hit(door: str) -> httpx.Response | None:
        again = post(proxy, door, body_for(door, group))
        return again if again.headers.get("x-llmproxy-cache") == "hit" else None

    for door in DOORS:
        # the stream's answer is stored as the stream ends: wait for it, not for a time
        again = wait_for(lambda door=door: hit(door), f"a cache hit through {door}")
        assert answer_text(door, again.json()) == ANSWER, door
    assert len(fake.requests) == 1


@pytest.mark.parametrize("door", ["messages", "responses"])
@pytest.mark.parametrize("group", GROUPS)
def test_a_cached_answer_replays_as_a_stream_in_the_doors_format(
    fake, start_proxy, group, door
) -> None:
    proxy = start_proxy({**config(fake), "litellm_settings": {"cache": True}},
                        master_key=MASTER_KEY)  # fmt: skip
    fake.set_default(reply(ANSWER))
    assert post(proxy, "chat", body_for("chat", group)).headers["x-llmproxy-cache"] == "miss"
    if door == "messages":
        sdk = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
        with sdk, sdk.messages.stream(**body_for(door, group)) as s:
            headers = s.response.headers
            final = s.get_final_message()
        text = "".join(b.text for b in final.content if b.type == "text")
        assert final.stop_reason == "end_turn"
    else:
        doc = body_for(door, group)
        with proxy.openai().responses.stream(
            model=doc["model"], input=doc["input"], max_output_tokens=doc["max_output_tokens"]
        ) as s:
            numbers = [event.sequence_number for event in s]
            final = s.get_final_response()
        headers = post(proxy, door, {**doc, "stream": True}).headers
        text = final.output_text
        assert numbers == sorted(set(numbers))
    assert headers["x-llmproxy-cache"] == "hit"
    assert text == ANSWER
    assert len(fake.requests) == 1


# ---- fallbacks across providers ----


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", [error(500, "upstream broke"), rate_limit(1)],
                         ids=["500", "429"])  # fmt: skip
def test_a_failing_anthropic_group_falls_back_to_openai_for_messages(
    fake, start_proxy, failure, stream
) -> None:
    proxy = start_proxy(config(fake, fallbacks=[{"claude": ["gpt"]}]), master_key=MASTER_KEY)
    for key in (KEY_A, KEY_B):
        fake.script(*[failure] * 4, key=key)
    fake.script(reply(ANSWER), key=KEY_O)
    # Mid-conversation, as Claude Code would be: signed thinking, a tool call and its result,
    # cache_control: all of it must reach the OpenAI fallback as a valid Chat request.
    history = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Weather in Paris?",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should look it up.", "signature": "sig=="},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}],
        },
    ]
    tools = [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    params = {"model": "claude", "max_tokens": 64, "system": "Be brief.", "tools": tools,
              "messages": history}  # fmt: skip
    with anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as sdk:
        if stream:
            with sdk.messages.stream(**params) as s:
                headers = s.response.headers
                message = s.get_final_message()
        else:
            raw = sdk.messages.with_raw_response.create(**params)
            headers, message = raw.headers, raw.parse()
    assert message.type == "message" and message.model == "claude"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == ANSWER
    assert message.stop_reason == "end_turn"
    assert headers["x-llmproxy-fallback"] == "gpt"
    assert headers["x-llmproxy-deployment"] == "gpt-o"
    assert headers["x-llmproxy-provider"] == "openai"
    assert {s.key for s in fake.calls(path="/v1/messages")} == {KEY_A, KEY_B}
    (chat,) = fake.calls(path="/v1/chat/completions")  # translated, and the fake took it
    assert chat.body["model"] == GPT_MODEL
    roles = [m["role"] for m in chat.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert chat.body["messages"][2]["tool_calls"][0]["id"] == "toolu_01"
    assert chat.body["messages"][3]["tool_call_id"] == "toolu_01"


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_openai_group_falls_back_to_anthropic_for_responses(
    fake, start_proxy, stream
) -> None:
    proxy = start_proxy(config(fake, fallbacks=[{"gpt": ["claude"]}]), master_key=MASTER_KEY)
    fake.script(*[error(500, "upstream broke")] * 4, key=KEY_O)
    fake.set_default(reply(ANSWER))
    client = proxy.openai()
    if stream:
        with client.responses.stream(model="gpt", input=QUESTION) as s:
            kinds = [event.type for event in s]
            response = s.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        headers = post(proxy, "responses", {"model": "gpt", "input": QUESTION}).headers
    else:
        raw = client.responses.with_raw_response.create(model="gpt", input=QUESTION)
        headers, response = raw.headers, raw.parse()
    assert response.output_text == ANSWER
    assert headers["x-llmproxy-fallback"] == "claude"
    assert headers["x-llmproxy-provider"] == "anthropic"
    assert fake.calls(path="/v1/messages")


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("door", ["messages", "responses"])
def test_a_stream_failing_before_its_first_byte_moves_to_another_deployment(
    fake, start_proxy, door, group
) -> None:
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="claude-a", model=CLAUDE_MODEL, order=1),
        anthropic_deployment("claude", fake, KEY_B, id="claude-b", model=CLAUDE_MODEL, order=2),
        openai_deployment("gpt", fake, KEY_O, id="gpt-o", model=f"openai/{GPT_MODEL}", order=1),
        openai_deployment("gpt", fake, KEY_B, id="gpt-b", model=f"openai/{GPT_MODEL}", order=2),
    ]
    proxy = start_proxy({"model_list": deps, "router_settings": {"num_retries": 1}},
                        master_key=MASTER_KEY)  # fmt: skip
    fake.script(stream_error_first(), key=KEY_A if group == "claude" else KEY_O)
    fake.set_default(reply(ANSWER))
    response = post(proxy, door, body_for(door, group, stream=True))
    assert response.status_code == 200
    assert stream_text(door, response.text) == ANSWER
    names = [data["type"] if door == "responses" else name
             for name, data in sse_events(response.text)]  # fmt: skip
    assert "error" not in names and "response.failed" not in names
    assert response.headers["x-llmproxy-deployment"].endswith("-b")
    assert response.headers["x-llmproxy-attempts"] == "2"


async def test_concurrent_streams_through_both_doors_all_complete(proxy, fake) -> None:
    fake.set_default(reply(ANSWER, chunk_delay=0.01))
    ant_client = anthropic.AsyncAnthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
    oai_client = proxy.async_openai()

    async def messages(group: str) -> str:
        async with ant_client.messages.stream(**body_for("messages", group)) as s:
            final = await s.get_final_message()
        return "".join(b.text for b in final.content if b.type == "text")

    async def responses(group: str) -> str:
        doc = body_for("responses", group)
        async with oai_client.responses.stream(model=group, input=doc["input"]) as s:
            final = await s.get_final_response()
        return final.output_text

    try:
        jobs = [call(g) for _ in range(5) for call in (messages, responses) for g in GROUPS]
        answers = await asyncio.gather(*jobs)
    finally:
        await ant_client.close()
        await oai_client.close()
    assert answers == [ANSWER] * 20
    assert len(fake.requests) == 20

    def all_rows() -> bool:
        rows = [r for r in proxy.state()["recent"] if r["status"] == 200]
        return len(rows) == 20

    await asyncio.to_thread(wait_for, all_rows, "20 rows")


# ---- usage rows, cost, events and metrics name the door and the client ----


def test_usage_rows_cost_events_and_metrics_carry_door_and_client(proxy, fake, ant) -> None:
    fake.set_default(reply(ANSWER, usage={"prompt_tokens": 100, "completion_tokens": 20}))
    timeout = httpx.Timeout(30, read=15)
    with proxy.client() as admin, admin.stream("GET", "/llmproxy/events", timeout=timeout) as ev:
        lines = ev.iter_lines()
        costs: dict[str, float] = {}
        ids: dict[str, tuple[str, str, str]] = {}
        raw_m = ant.messages.with_raw_response.create(
            model="claude", max_tokens=64, messages=[{"role": "user", "content": QUESTION}]
        )
        raw_t = ant.messages.with_raw_response.create(
            model="gpt", max_tokens=64, messages=[{"role": "user", "content": QUESTION}]
        )
        responses = proxy.openai().responses
        raw_r = responses.with_raw_response.create(model="gpt", input=QUESTION)
        raw_s = responses.with_raw_response.create(model="claude", input=QUESTION)
        for raw, door, group in (
            (raw_m, "messages", "claude"),
            (raw_t, "messages", "gpt"),
            (raw_r, "responses", "gpt"),
            (raw_s, "responses", "claude"),
        ):
            rid = raw.headers["x-request-id"]
            ids[rid] = (door, SDK_CLIENTS[door], group)
            costs[rid] = float(raw.headers["x-llmproxy-cost"])
            assert costs[rid] > 0
        finished: dict[str, dict[str, Any]] = {}
        event = ""
        for line in lines:  # the server's heartbeat bounds each wait
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "events":
                for e in json.loads(line[6:]):
                    if e["type"] == "request_finished" and e["id"] in ids:
                        finished[e["id"]] = e
            if len(finished) == len(ids):
                break
    for rid, (door, client, group) in ids.items():
        e = finished[rid]
        assert (e["front_door"], e["client"], e["group"]) == (door, client, group), e
        assert e["cost"] == pytest.approx(costs[rid])
    recent = {r["id"]: r for r in proxy.state()["recent"]}
    for rid, (door, client, _group) in ids.items():
        assert (recent[rid]["front_door"], recent[rid]["client"]) == (door, client)
        assert recent[rid]["cost"] == pytest.approx(costs[rid])
    assert proxy.runtime.ledger.flush(10)
    with sqlite3.connect(proxy.usage_db) as db:
        rows = db.execute(
            "SELECT id, front_door, client, grp, status, prompt_tokens, completion_tokens, cost "
            "FROM requests"
        ).fetchall()
    by_id = {row[0]: row[1:] for row in rows}
    for rid, (door, client, group) in ids.items():
        assert by_id[rid][:4] == (door, client, group, 200)
        assert by_id[rid][4:6] == (100, 20)  # the upstream's own counts
        assert by_id[rid][6] == pytest.approx(costs[rid])
    with proxy.client() as admin:
        metrics = admin.get("/metrics").text
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(metrics) for s in f.samples}  # fmt: skip
    for group in GROUPS:
        served = sum(
            v
            for (name, labels), v in found.items()
            if name == "llmproxy_requests_total" and ("group", group) in labels
        )
        assert served == 2, group
        tokens = found[("llmproxy_tokens_total", (("direction", "input"), ("group", group)))]
        assert tokens == 200
        spent = found[("llmproxy_cost_usd_total", (("group", group),))]
        assert spent == pytest.approx(sum(c for r, c in costs.items() if ids[r][2] == group))


def test_streams_are_usage_rows_with_door_and_client_too(proxy, fake, ant) -> None:
    fake.set_default(reply(ANSWER))
    with ant.messages.stream(
        model="gpt", max_tokens=64, messages=[{"role": "user", "content": QUESTION}]
    ) as s:
        message_id = s.response.headers["x-request-id"]
        assert "x-llmproxy-cost" not in s.response.headers  # a stream's cost is known at its end
        s.get_final_message()
    with proxy.openai().responses.stream(model="claude", input=QUESTION) as s:
        s.get_final_response()
    wanted = {("messages", "anthropic-python", "gpt"), ("responses", "openai-python", "claude")}

    def recent() -> set[tuple[str, str, str]]:
        rows = proxy.state()["recent"]
        got = {(r["front_door"], r["client"], r["group"]) for r in rows if r["status"] == 200}
        return got if got >= wanted else set()

    wait_for(recent, "both streams in /llmproxy/state recent")
    row = next(r for r in proxy.state()["recent"] if r["id"] == message_id)
    assert row["stream"] is True and row["completion_tokens"] > 0


@pytest.mark.parametrize("door", ["messages", "responses"])
def test_a_passed_through_stream_is_priced_from_the_upstreams_usage(proxy, fake, door) -> None:
    """Messages to Anthropic and Responses to OpenAI relay the upstream's own events; usage and
    cost still come from them (message_start / message_delta, response.completed)."""
    group = "claude" if door == "messages" else "gpt"
    fake.script(reply(ANSWER, usage={"input_tokens": 1000, "output_tokens": 300}))
    response = post(proxy, door, body_for(door, group, stream=True))
    assert stream_text(door, response.text) == ANSWER
    rid = response.headers["x-request-id"]
    assert response.headers["x-llmproxy-provider"] == ("anthropic" if group == "claude"
                                                       else "openai")  # fmt: skip

    def row() -> dict[str, Any] | None:
        return next((r for r in proxy.state()["recent"] if r["id"] == rid), None)

    found = wait_for(row, "the stream's row")
    assert (found["front_door"], found["status"], found["stream"]) == (door, 200, True)
    assert (found["prompt_tokens"], found["completion_tokens"]) == (1000, 300)
    assert found["tokens_estimated"] is False
    assert found["cost"] == pytest.approx(1000 * 0.000001 + 300 * 0.000002)


# ---- the x-llmproxy-* headers on every door ----


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("door", DOORS)
def test_llmproxy_headers_on_every_door(proxy, fake, door, group, stream) -> None:
    response = post(proxy, door, body_for(door, group, stream=stream),
                    headers={"x-request-id": f"hdr-{door}-{group}-{stream}"})  # fmt: skip
    assert response.status_code == 200, response.text
    h = response.headers
    assert h["x-request-id"] == f"hdr-{door}-{group}-{stream}"
    assert h["x-llmproxy-deployment"] in (("claude-a", "claude-b") if group == "claude"
                                          else ("gpt-o",))  # fmt: skip
    assert h["x-llmproxy-provider"] == ("anthropic" if group == "claude" else "openai")
    assert h["x-llmproxy-attempts"] == "1"
    assert h["x-llmproxy-cache"] == "off"
    assert "x-llmproxy-fallback" not in h
    if stream:
        assert h["content-type"].startswith("text/event-stream")
        assert stream_text(door, response.text) == DEFAULT_CONTENT
    else:
        assert float(h["x-llmproxy-cost"]) > 0
        assert answer_text(door, response.json()) == DEFAULT_CONTENT
    for value in h.values():
        assert KEY_A not in value and KEY_B not in value and KEY_O not in value


# ---- a stream cut by the upstream ends with the client's own error event ----


@pytest.mark.parametrize("group", GROUPS)
def test_a_cut_messages_stream_ends_with_an_error_event(proxy, fake, ant, group) -> None:
    fake.script(stream_cut(3))
    response = post(proxy, "messages", body_for("messages", group, stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert "content_block_delta" in names  # what arrived before the cut was relayed
    assert names[-1] == "error", names
    assert "message_stop" not in names
    err = events[-1][1]
    assert err["type"] == "error"
    assert err["error"]["type"] in ("api_error", "overloaded_error")
    assert err["error"]["message"]
    assert KEY_A not in response.text and KEY_O not in response.text
    # The SDK sees the error event as an error, not as a finished message.
    fake.script(stream_cut(3))
    with (
        pytest.raises(anthropic.APIStatusError),
        ant.messages.stream(**body_for("messages", group)) as s,
    ):
        s.get_final_message()


@pytest.mark.parametrize("group", GROUPS)
def test_a_cut_responses_stream_ends_with_a_failure_event(proxy, fake, group) -> None:
    fake.script(stream_cut(3))
    response = post(proxy, "responses", body_for("responses", group, stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    kinds = [data["type"] for _, data in events]
    assert kinds[0] == "response.created"
    assert "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.failed", "error"), kinds
    assert "response.completed" not in kinds
    assert all(name == data["type"] for name, data in events)  # `event:` names its type
    last = events[-1][1]
    if last["type"] == "response.failed":
        assert last["response"]["status"] == "failed"
        assert last["response"]["error"]["message"]
    else:
        assert last["message"] and last["code"]
    assert KEY_A not in response.text and KEY_O not in response.text


def test_a_cut_passthrough_responses_stream_keeps_sequence_numbers_increasing(proxy, fake) -> None:
    fake.script(stream_cut(3))
    response = post(proxy, "responses", body_for("responses", "gpt", stream=True))
    numbers = [data["sequence_number"] for _, data in sse_events(response.text)]
    assert sse_events(response.text)[-1][1]["type"] in ("response.failed", "error")
    assert all(b > a for a, b in zip(numbers, numbers[1:], strict=False)), numbers


# ---- a client that goes away, an upstream that never answers ----


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("door", ["messages", "responses"])
def test_a_client_leaving_mid_stream_is_a_499_row(proxy, fake, door, group) -> None:
    words = " ".join(f"word{i}" for i in range(60))
    fake.set_default(reply(words, chunk_delay=0.1))  # about 6 s to send it all
    rid = f"gone-{door}-{group}"
    started = time.monotonic()
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=TIMEOUT) as c:
        doc = body_for(door, group, stream=True)
        with c.stream("POST", DOOR_PATHS[door], json=doc, headers={"x-request-id": rid}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if "word0" in line:
                    break  # the first text arrived: hang up
    fake_calls = len(fake.requests)

    def row() -> dict[str, Any] | None:
        return next((x for x in proxy.state()["recent"] if x["id"] == rid), None)

    found = wait_for(row, "the abandoned stream's row")
    assert time.monotonic() - started < 5  # reported when the client left, not at the end
    assert (found["status"], found["front_door"], found["group"]) == (499, door, group)
    assert len(fake.requests) == fake_calls == 1  # not retried elsewhere


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", DOORS)
def test_an_upstream_that_never_answers_is_a_504_in_the_doors_shape(
    fake, start_proxy, door, stream
) -> None:
    deps = [
        anthropic_deployment("claude", fake, KEY_A, id="slow-a", model=CLAUDE_MODEL,
                             timeout=0.5, stream_timeout=0.5),
    ]  # fmt: skip
    proxy = start_proxy({"model_list": deps, "router_settings": {"num_retries": 0}},
                        master_key=MASTER_KEY)  # fmt: skip
    fake.set_default(hang(30))
    started = time.monotonic()
    response = post(proxy, door, body_for(door, "claude", stream=stream))
    assert time.monotonic() - started < 10
    assert response.status_code == 504, response.text
    doc = response.json()
    if door == "messages":
        assert anthropic_shaped(doc) and doc["error"]["type"] == "timeout_error"
    else:
        assert openai_shaped(doc)
    assert "slow-a" in response.text  # names the deployment tried, by id
    assert KEY_A not in response.text


# ---- hostile bodies: a 4xx in the route's shape, never a 5xx ----


def anthropic_shaped(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("type") == "error"
        and isinstance(doc.get("error"), dict)
        and isinstance(doc["error"].get("type"), str)
        and isinstance(doc["error"].get("message"), str)
        and bool(doc["error"]["message"])
    )


def openai_shaped(doc: Any) -> bool:
    err = doc.get("error") if isinstance(doc, dict) else None
    return (
        isinstance(err, dict)
        and {"message", "type", "param", "code"} <= set(err)
        and isinstance(err["message"], str)
        and bool(err["message"])
    )


def j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


OK_MESSAGE = [{"role": "user", "content": "hi"}]
ANY_JSON: list[tuple[str, bytes]] = [
    ("not json", b"{not json"),
    ("empty", b""),
    ("truncated", b'{"model": "gpt", "messages": ['),
    ("array", b"[]"),
    ("null", b"null"),
    ("number", b"42"),
    ("string", b'"hello"'),
    ("nan", b'{"model": "gpt", "max_tokens": NaN, "messages": []}'),
    ("invalid utf-8", b'{"model": "\xff\xfe", "max_tokens": 5, "messages": []}'),
    ("deep nesting", b'{"model": "gpt", "max_tokens": 5, "messages": '
     + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("integer beyond 64 bits", b'{"model": "gpt", "max_tokens": 1' + b"0" * 40
     + b', "messages": [{"role": "user", "content": "hi"}]}'),
]  # fmt: skip
MESSAGES_BODIES: list[tuple[str, bytes]] = [
    *ANY_JSON,
    ("missing model", j({"max_tokens": 5, "messages": OK_MESSAGE})),
    ("model not a string", j({"model": 5, "max_tokens": 5, "messages": OK_MESSAGE})),
    ("model empty", j({"model": "", "max_tokens": 5, "messages": OK_MESSAGE})),
    ("missing messages", j({"model": "{group}", "max_tokens": 5})),
    ("messages not a list", j({"model": "{group}", "max_tokens": 5, "messages": "hi"})),
    ("message not an object", j({"model": "{group}", "max_tokens": 5, "messages": [1]})),
    ("unknown role", j({"model": "{group}", "max_tokens": 5,
                        "messages": [{"role": "wizard", "content": "x"}]})),
    ("content a number", j({"model": "{group}", "max_tokens": 5,
                            "messages": [{"role": "user", "content": 5}]})),
    ("text block text a number", j({"model": "{group}", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": 5}]}]})),
    ("block not an object", j({"model": "{group}", "max_tokens": 5, "messages": [
        {"role": "user", "content": ["just a string"]}]})),
    ("tool_use without id", j({"model": "{group}", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": {}}]},
        {"role": "user", "content": "again"}]})),
    ("image without data", j({"model": "{group}", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]})),
    ("missing max_tokens", j({"model": "{group}", "messages": OK_MESSAGE})),
    ("max_tokens a string", j({"model": "{group}", "max_tokens": "ten", "messages": OK_MESSAGE})),
    ("max_tokens negative", j({"model": "{group}", "max_tokens": -1, "messages": OK_MESSAGE})),
    ("stream a string", j({"model": "{group}", "max_tokens": 5, "stream": "yes",
                           "messages": OK_MESSAGE})),
    ("system a number", j({"model": "{group}", "max_tokens": 5, "system": 5,
                           "messages": OK_MESSAGE})),
    ("tools not a list", j({"model": "{group}", "max_tokens": 5, "tools": "x",
                            "messages": OK_MESSAGE})),
    ("tool without name", j({"model": "{group}", "max_tokens": 5, "tools": [{"input_schema": {}}],
                             "messages": OK_MESSAGE})),
    ("tool_choice unknown", j({"model": "{group}", "max_tokens": 5,
                               "tool_choice": {"type": "sometimes"}, "messages": OK_MESSAGE})),
    ("thinking unknown", j({"model": "{group}", "max_tokens": 5, "thinking": {"type": "maybe"},
                            "messages": OK_MESSAGE})),
    ("metadata a string", j({"model": "{group}", "max_tokens": 5, "metadata": "x",
                             "messages": OK_MESSAGE})),
    ("stop_sequences a string", j({"model": "{group}", "max_tokens": 5,
                                   "stop_sequences": "STOP", "messages": OK_MESSAGE})),
    ("temperature a string", j({"model": "{group}", "max_tokens": 5, "temperature": "hot",
                                "messages": OK_MESSAGE})),
]  # fmt: skip
COUNT_BODIES: list[tuple[str, bytes]] = [
    *[(name, raw) for name, raw in ANY_JSON if 'max_tokens": 1' not in raw.decode("latin-1")],
    ("messages an integer beyond 64 bits", b'{"model": "gpt", "messages": 1' + b"0" * 40 + b"}"),
    ("missing model", j({"messages": OK_MESSAGE})),
    ("model not a string", j({"model": ["gpt"], "messages": OK_MESSAGE})),
    ("missing messages", j({"model": "{group}"})),
    ("messages not a list", j({"model": "{group}", "messages": {"role": "user"}})),
    ("unknown model", j({"model": "no-such-group", "messages": OK_MESSAGE})),
]
RESPONSES_BODIES: list[tuple[str, bytes]] = [
    *ANY_JSON,
    ("missing model", j({"input": "hi"})),
    ("model not a string", j({"model": 5, "input": "hi"})),
    ("unknown model", j({"model": "no-such-group", "input": "hi"})),
    ("missing input", j({"model": "{group}"})),
    ("input a number", j({"model": "{group}", "input": 5})),
    ("input an object", j({"model": "{group}", "input": {"role": "user"}})),
    ("input item not an object", j({"model": "{group}", "input": [1]})),
    ("message content a number", j({"model": "{group}",
                                    "input": [{"role": "user", "content": 5}]})),
    ("unknown role", j({"model": "{group}", "input": [{"role": "wizard", "content": "x"}]})),
    ("function_call_output without call_id", j({"model": "{group}", "input": [
        {"type": "function_call_output", "output": "x"}]})),
    ("unknown item type", j({"model": "{group}", "input": [{"type": "hologram"}]})),
    ("tools not a list", j({"model": "{group}", "input": "hi", "tools": "x"})),
    ("function tool without name", j({"model": "{group}", "input": "hi",
                                      "tools": [{"type": "function"}]})),
    ("tool_choice a number", j({"model": "{group}", "input": "hi", "tool_choice": 5})),
    ("max_output_tokens negative", j({"model": "{group}", "input": "hi",
                                      "max_output_tokens": -1})),
    ("max_output_tokens a string", j({"model": "{group}", "input": "hi",
                                      "max_output_tokens": "big"})),
    ("temperature a string", j({"model": "{group}", "input": "hi", "temperature": "hot"})),
    ("reasoning a string", j({"model": "{group}", "input": "hi", "reasoning": "deep"})),
    ("text a string", j({"model": "{group}", "input": "hi", "text": "plain"})),
    ("instructions a number", j({"model": "{group}", "input": "hi", "instructions": 5})),
    ("stream a string", j({"model": "{group}", "input": "hi", "stream": "yes"})),
    ("background", j({"model": "{group}", "input": "hi", "background": True})),
    ("conversation", j({"model": "{group}", "input": "hi", "conversation": "conv_1"})),
]  # fmt: skip
ROUTES = {
    "/v1/messages": (MESSAGES_BODIES, anthropic_shaped),
    "/v1/messages/count_tokens": (COUNT_BODIES, anthropic_shaped),
    "/v1/responses": (RESPONSES_BODIES, openai_shaped),
}


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("path", list(ROUTES))
def test_hostile_bodies_are_4xx_in_the_routes_shape(proxy, fake, path, group) -> None:
    bodies, shaped = ROUTES[path]
    wrong: dict[str, tuple[int, str]] = {}
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=TIMEOUT) as c:
        for name, raw in bodies:
            content = raw.replace(b"{group}", group.encode())
            r = c.post(path, content=content, headers={"content-type": "application/json"})
            if not (400 <= r.status_code < 500) or not _shaped(shaped, r):
                wrong[name] = (r.status_code, r.text[:200])
    assert wrong == {}


def _shaped(shaped: Callable[[Any], bool], response: httpx.Response) -> bool:
    try:
        return shaped(response.json())
    except ValueError:
        return False


@pytest.mark.parametrize("path", list(ROUTES))
def test_other_methods_are_405_in_the_routes_shape(proxy, fake, path) -> None:
    _bodies, shaped = ROUTES[path]
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=TIMEOUT) as c:
        for method in ("GET", "PUT", "DELETE"):
            r = c.request(method, path)
            assert r.status_code == 405, (method, r.status_code)
            assert "POST" in r.headers["allow"]
            assert _shaped(shaped, r), (method, r.text[:200])


@pytest.mark.parametrize("path", list(ROUTES))
def test_wrong_content_type_and_huge_bodies_are_4xx_in_the_routes_shape(proxy, fake, path):
    _bodies, shaped = ROUTES[path]
    ok = j({"model": "gpt", "max_tokens": 5, "messages": OK_MESSAGE, "input": "hi"})
    huge = b'{"model": "gpt", "max_tokens": 5, "input": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    cases = [
        ("text/plain", ok, 415),
        ("application/x-www-form-urlencoded", b"model=gpt&input=hi", 415),
        ("multipart/form-data; boundary=x", b"--x--", 415),
        ("application/json", huge, 413),
    ]
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=TIMEOUT) as c:
        for content_type, content, status in cases:
            r = c.post(path, content=content, headers={"content-type": content_type})
            assert r.status_code == status, (content_type, r.status_code, r.text[:200])
            assert _shaped(shaped, r), (content_type, r.text[:200])
        # The same huge body without a Content-Length (chunked): cut off as it grows.
        pieces = (huge[i : i + 1024 * 1024] for i in range(0, len(huge), 1024 * 1024))
        try:
            r = c.post(path, content=pieces, headers={"content-type": "application/json"})
        except httpx.WriteError:
            pass  # the proxy answered and closed while the body was still being sent
        else:
            assert r.status_code == 413, (r.status_code, r.text[:200])
            assert _shaped(shaped, r), r.text[:200]
    assert fake.requests == []
