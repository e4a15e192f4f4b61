"""The Responses front door passed through to an `openai/` deployment, through the real proxy:
the openai SDK's `client.responses` (create, stream) reach the fake's `/v1/responses` with the
client's body (only `model` replaced), reasoning items and their encrypted content round-trip,
usage and cost are recorded from the neutral form, a Chat-only upstream is detected once and
answered translated, and OpenAI-compatible vendors are always translated.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tests.agents import harness
from tests.conftest import MASTER_KEY, openai_deployment
from tests.e2e import test_agents as agents
from tests.fakes.recorded import sse_events
from tests.fakes.responses_wire import decrypt
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream, error, reply

KEY = "sk-upstream-responses-7777dddd"
GROUP = "gpt"
UPSTREAM_MODEL = "gpt-5"
RESPONSES = "/v1/responses"
CHAT = "/v1/chat/completions"
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files (freeform)"},
]  # fmt: skip
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+hi "there"\n*** End Patch\n'


def config(fake: FakeUpstream, model: str = f"openai/{UPSTREAM_MODEL}", **extra: Any) -> Any:
    entry = openai_deployment(GROUP, fake, KEY, model=model, id="oa-1")
    return {"model_list": [entry], **extra}


@pytest.fixture
def proxy(fake, start_proxy):
    return start_proxy(config(fake), master_key=MASTER_KEY)


def post(proxy: Any, body: dict[str, Any]) -> httpx.Response:
    with proxy.client() as c:
        return c.post("/v1/responses", json=body)


def model_calls(fake: FakeUpstream) -> list[Any]:
    return [s for s in fake.requests if s.path in (RESPONSES, CHAT)]


def codex_like(**extra: Any) -> dict[str, Any]:
    """A body with the fields a translation would drop or rewrite."""
    return {
        "model": GROUP,
        "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "hi there"}]}],
        "tools": [*TOOLS, {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "client_metadata": {"x-codex-turn": "1"},
        "reasoning": {"effort": "medium", "summary": "auto"},
        "text": {"verbosity": "low"},
        "service_tier": "auto",
        **extra,
    }  # fmt: skip


# -- the body reaches /v1/responses as sent -----------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_body_passes_through_with_only_the_model_replaced(fake, proxy, stream) -> None:
    body = codex_like(stream=stream) if stream else codex_like()
    answer = post(proxy, body)
    assert answer.status_code == 200, answer.text
    [seen] = model_calls(fake)
    assert seen.path == RESPONSES
    assert seen.body == {**body, "model": UPSTREAM_MODEL}
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert answer.headers["x-llmproxy-provider"] == "openai"
    assert answer.headers["x-llmproxy-deployment"] == "oa-1"
    if stream:
        events = sse_events(answer.text)
        assert all(name == data["type"] for name, data in events)
        assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
        # the upstream's own events: its obfuscation padding survives, and no [DONE]
        assert any("obfuscation" in d for _, d in events)
        assert events[-1][1]["response"]["id"].startswith("resp_fake")
    else:
        assert answer.json()["id"].startswith("resp_fake")  # the upstream's own object


def test_sdk_create_plain(fake, proxy) -> None:
    client = proxy.openai()
    answer = client.responses.create(model=GROUP, input="hi there", instructions="Be brief.")
    assert answer.status == "completed" and answer.output_text == DEFAULT_CONTENT
    assert answer.model == UPSTREAM_MODEL and answer.id.startswith("resp_fake")
    assert answer.usage.input_tokens == 4 and answer.usage.output_tokens == 6
    [seen] = model_calls(fake)
    assert seen.path == RESPONSES
    assert seen.body == {"model": UPSTREAM_MODEL, "input": "hi there", "instructions": "Be brief."}


def test_sdk_stream_with_tools_and_reasoning(fake, proxy) -> None:
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}},
             {"name": "apply_patch", "input": PATCH}]  # fmt: skip
    fake.script(reply(tool_calls=calls, reasoning="plan the edit"))
    client = proxy.openai()
    with client.responses.stream(
        model=GROUP, input="go", tools=TOOLS, include=["reasoning.encrypted_content"]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert [o.type for o in final.output] == ["reasoning", "function_call", "custom_tool_call"]
    assert json.loads(final.output[1].arguments) == {"city": "Paris"}
    assert final.output[2].input == PATCH
    assert decrypt(final.output[0].encrypted_content) == "plan the edit"
    assert "response.custom_tool_call_input.delta" in kinds  # never in a translated stream
    [seen] = model_calls(fake)
    assert seen.path == RESPONSES and seen.body["stream"] is True
    assert seen.body["model"] == UPSTREAM_MODEL and seen.body["tools"] == TOOLS


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_items_round_trip(fake, proxy, stream) -> None:
    fake.script(reply("first", reasoning="think it over"), reply("second"))
    client = proxy.openai()
    first_input = [{"role": "user", "content": "hi"}]
    asked: dict[str, Any] = {"model": GROUP, "include": ["reasoning.encrypted_content"],
                             "store": False}  # fmt: skip
    if stream:
        with client.responses.stream(input=first_input, **asked) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(input=first_input, **asked)
    reasoning = first.output[0].model_dump(exclude_none=True)
    assert reasoning["type"] == "reasoning"
    assert decrypt(reasoning["encrypted_content"]) == "think it over"
    replay = [*first_input, reasoning, {"role": "assistant", "content": "first"},
              {"role": "user", "content": "again"}]  # fmt: skip
    second = client.responses.create(input=replay, **asked)
    assert second.output_text == "second"  # the fake verified the encrypted content
    assert [s.path for s in model_calls(fake)] == [RESPONSES, RESPONSES]
    assert fake.requests[-1].body["input"][1] == reasoning


# -- usage, cost, the state document --------------------------------------------------------


def table_price(**usage: int) -> float:
    price = calc_price(PriceUsage(**usage), model_ref=UPSTREAM_MODEL, provider_id="openai")
    return float(price.total_price)


@pytest.mark.parametrize("stream", [False, True])
def test_usage_and_cost_recorded(fake, proxy, stream) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "cached_tokens": 400}
    fake.script(reply("priced answer", usage=usage))
    answer = post(proxy, {"model": GROUP, "input": "price this", "stream": stream})
    assert answer.status_code == 200
    expected = table_price(input_tokens=1000, output_tokens=500, cache_read_tokens=400)
    assert expected > 0
    if not stream:
        assert float(answer.headers["x-llmproxy-cost"]) == pytest.approx(expected)
        assert answer.json()["usage"]["input_tokens"] == 1000  # the upstream's, unchanged
    row = proxy.state()["recent"][-1]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 500)
    assert row["cached_tokens"] == 400 and row["tokens_estimated"] is False
    assert row["cost"] == pytest.approx(expected)
    assert (row["front_door"], row["provider"], row["status"]) == ("responses", "openai", 200)
    assert row["preview"] == "priced answer"
    if stream:
        assert row["ttft_ms"] is not None


def test_cached_answer_replays_translated(fake, start_proxy) -> None:
    cache = {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}}
    proxy = start_proxy(config(fake, **cache), master_key=MASTER_KEY)
    fake.script(reply(tool_calls=[{"name": "apply_patch", "input": PATCH}]))
    body = {"model": GROUP, "input": "patch it", "tools": TOOLS}
    first, second = post(proxy, body), post(proxy, body)
    assert first.headers["x-llmproxy-cache"] == "miss"
    assert second.headers["x-llmproxy-cache"] == "hit"
    [call] = second.json()["output"]
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert call["input"] == PATCH == first.json()["output"][0]["input"]
    assert len(model_calls(fake)) == 1


# -- a Chat-only upstream ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_chat_only_upstream_detected_and_answered_translated(fake, proxy, stream) -> None:
    fake.responses_api = False
    client = proxy.openai()
    for _ in range(2):
        if stream:
            with client.responses.stream(model=GROUP, input="hi there") as events:
                answer = events.get_final_response()
        else:
            answer = client.responses.create(model=GROUP, input="hi there")
        assert answer.status == "completed" and answer.output_text == DEFAULT_CONTENT
    paths = [s.path for s in model_calls(fake)]
    assert paths == [RESPONSES, CHAT, CHAT]  # probed once, then straight to chat
    chat = fake.requests[-1].body
    assert chat["model"] == UPSTREAM_MODEL and chat["messages"][-1]["content"] == "hi there"
    dep = proxy.deployment("oa-1")
    assert dep["health"] == "ok" and dep["errors"] == 0
    assert dep["fails_this_minute"] == 0 and dep["cooldown_until"] is None
    rows = proxy.state()["recent"][-2:]
    assert [r["status"] for r in rows] == [200, 200] and [r["attempts"] for r in rows] == [1, 1]


def test_chat_only_fallback_is_not_seen_by_the_client(fake, proxy) -> None:
    fake.responses_api = False
    answer = post(proxy, {"model": GROUP, "input": "hi"})
    assert answer.status_code == 200 and answer.headers["x-llmproxy-attempts"] == "1"
    assert answer.json()["object"] == "response" and answer.json()["status"] == "completed"


@pytest.mark.parametrize("stream", [False, True])
def test_chat_only_upstream_gets_the_whole_translation(fake, proxy, stream) -> None:
    """A body sent as is first is translated in full for the Chat retry: its tools, and the
    custom tool's call rendered back as a custom_tool_call."""
    fake.responses_api = False  # a Chat upstream calls the custom tool as a function
    fake.script(reply(tool_calls=[{"name": "apply_patch", "arguments": {"input": PATCH}}]))
    body = {"model": GROUP, "input": "patch it", "tools": TOOLS, "max_output_tokens": 99}
    if stream:
        with proxy.openai().responses.stream(**body) as events:
            output = events.get_final_response().output
    else:
        output = proxy.openai().responses.create(**body).output
    [call] = output
    assert call.type == "custom_tool_call" and call.name == "apply_patch" and call.input == PATCH
    chat = fake.requests[-1].body
    assert fake.requests[-1].path == CHAT and 99 in (
        chat.get("max_tokens"),
        chat.get("max_completion_tokens"),
    )
    assert [t["function"]["name"] for t in chat["tools"]] == [t["name"] for t in TOOLS]


def test_a_missing_model_is_not_taken_for_a_chat_only_upstream(fake, proxy) -> None:
    fake.script(error(404, "The model `gpt-5` does not exist.", code="model_not_found"))
    assert post(proxy, {"model": GROUP, "input": "hi"}).status_code == 404
    assert post(proxy, {"model": GROUP, "input": "hi"}).status_code == 200
    assert [s.path for s in model_calls(fake)] == [RESPONSES, RESPONSES]


# -- only openai/ passes through -----------------------------------------------------------


@pytest.mark.parametrize("model", ["groq/llama-3.3-70b", "ollama/qwen3", "openrouter/openai/gpt-5"])
def test_openai_compatible_vendors_are_translated(fake, start_proxy, model) -> None:
    proxy = start_proxy(config(fake, model=model), master_key=MASTER_KEY)
    answer = proxy.openai().responses.create(model=GROUP, input="hi there")
    assert answer.output_text == DEFAULT_CONTENT
    assert [s.path for s in model_calls(fake)] == [CHAT]


# -- the real Codex CLI ----------------------------------------------------------------------


def test_codex_tool_round_trip_passes_through(fake, proxy, tmp_path) -> None:
    """Codex through an `openai/` group: every turn reaches /v1/responses, and the encrypted
    reasoning item of the tool-calling answer comes back in the next turn as the fake gave it."""
    problem = harness.missing_agents()
    if problem:
        pytest.fail(problem, pytrace=False)
    agents.script(fake, "tool")
    run = agents.run_agent("codex", "tool", tmp_path, root=proxy.url, key=MASTER_KEY, model=GROUP)
    agents.check_answer("codex", "tool", run, fake, tmp_path / "work")
    calls = agents.model_calls(fake)
    assert {s.path for s in calls} == {RESPONSES}, run.report()
    assert any(agents.replayed_reasoning("codex", s) for s in calls), run.report()


# -- a body passed through is parsed lazily, and still checked ------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt", "input": [{"role": "user", "content": "\xff"}]}',
        b'{"model": "gpt", "input": [{"role": "user", "content": "hi"},,]}',
        b'{"model": "gpt", "input": "hi", "tools": {"type": "function"}}',
    ],
    ids=["bad-utf8-in-input", "bad-json-in-input", "tools-not-a-list"],
)
def test_bad_input_in_a_skimmed_field_is_a_400_before_the_upstream(fake, proxy, raw) -> None:
    with proxy.client() as c:
        answer = c.post(RESPONSES, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert model_calls(fake) == []


def test_a_skimmed_body_goes_upstream_byte_for_byte(fake, proxy) -> None:
    raw = b'{"model":"gpt","input":[{"role":"user","content":"h\\u00e9 \\"x\\""}] ,"tools":[]}'
    with proxy.client() as c:
        answer = c.post(RESPONSES, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    [seen] = model_calls(fake)
    assert seen.raw == raw.replace(b'"gpt"', b'"gpt-5"', 1)
