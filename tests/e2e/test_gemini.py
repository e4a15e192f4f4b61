"""`gemini/` end to end: the openai and anthropic SDKs, through the proxy, to the fake Gemini API.

The fake answers 400 to any request the real API would refuse (unknown fields, roles, empty
parts, unanswered function calls, a Gemini 3 function call replayed without its thought
signature), so every 200 here also proves the translated request was valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.gemini_wire import SIGNATURE
from tests.fakes.openai_wire import embedding_vector
from tests.fakes.upstream import error, rate_limit, reply, stream_cut, stream_error_first

KEY_A = "AIzaSy-fake-key-aaaa"
KEY_B = "AIzaSy-fake-key-bbbb"
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
GENERATE = "/v1beta/models/{}:generateContent"
STREAM = "/v1beta/models/{}:streamGenerateContent"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    up = FakeGemini().start()
    try:
        yield up
    finally:
        up.stop()


def entry(group: str, fake: FakeGemini, key: str, dep_id: str, **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {
            "model": params.pop("model", "gemini/gemini-2.5-flash"),
            "api_base": fake.base,
            "api_key": key,
            **params,
        },
        "model_info": {"id": dep_id},
    }


@pytest.fixture
def proxy(gemini, start_proxy) -> Any:
    deps = [
        entry("flash", gemini, KEY_A, "ga", order=1),
        entry("flash", gemini, KEY_B, "gb", order=2),
        entry("g3", gemini, KEY_A, "g3", model="gemini/gemini-3-pro-preview"),
        entry("embed", gemini, KEY_A, "ge", model="gemini/gemini-embedding-001"),
    ]
    settings = {"num_retries": 2, "cooldown_time": 1}
    return start_proxy({"model_list": deps, "router_settings": settings}, master_key=MASTER_KEY)


@pytest.fixture
def client(proxy) -> Iterator[Any]:
    with proxy.openai() as c:
        yield c


def last(fake: FakeGemini) -> Any:
    return fake.requests[-1]


def test_plain_answer_system_instruction_and_usage(gemini, proxy, client) -> None:
    gemini.script(reply("Hi from Gemini", usage={"prompt_tokens": 7, "cached_tokens": 3}))
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    raw = client.chat.completions.with_raw_response.create(
        model="flash", messages=messages, temperature=0.3, max_tokens=50, stop=["END"]
    )
    answer = raw.parse()
    assert raw.headers["x-llmproxy-provider"] == "gemini"
    assert raw.headers["x-llmproxy-deployment"] == "ga"
    assert float(raw.headers["x-llmproxy-cost"]) > 0  # Google's gemini-2.5-flash prices
    assert answer.choices[0].message.content == "Hi from Gemini"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gemini-2.5-flash"
    assert answer.usage.prompt_tokens == 7 and answer.usage.completion_tokens == 3
    assert answer.usage.prompt_tokens_details.cached_tokens == 3
    seen = last(gemini)
    assert seen.path == GENERATE.format("gemini-2.5-flash")
    assert seen.headers["x-goog-api-key"] == KEY_A
    assert seen.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert seen.body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
    config = seen.body["generationConfig"]
    assert config == {"temperature": 0.3, "maxOutputTokens": 50, "stopSequences": ["END"]}


def test_stream_with_usage(gemini, proxy, client) -> None:
    gemini.script(reply("one two three four"))
    stream = client.chat.completions.create(
        model="flash", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.prompt_tokens == 2
    seen = last(gemini)
    assert seen.path == STREAM.format("gemini-2.5-flash") and seen.query == "alt=sse"


def test_tool_call_round_trip_keeps_the_thought_signature(gemini, proxy, client) -> None:
    gemini.script(reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    gemini.script(reply("It is sunny in Paris."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="g3", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = last(gemini).body
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"] == WEATHER_TOOL["function"]["parameters"]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'})
    second = client.chat.completions.create(model="g3", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is sunny in Paris."
    model_turn, answer_turn = last(gemini).body["contents"][1:]
    assert model_turn["parts"][0]["thoughtSignature"] == SIGNATURE
    assert model_turn["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    response = answer_turn["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"sky": "sunny"}}


def test_streamed_tool_call(gemini, proxy, client) -> None:
    gemini.script(reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    stream = client.chat.completions.create(
        model="flash", messages=HELLO, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c for c in stream if c.choices]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [c.function.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_thinking_from_reasoning_effort(gemini, proxy, client) -> None:
    gemini.script(reply("42", reasoning="Let me think about it"))
    answer = client.chat.completions.create(model="flash", messages=HELLO, reasoning_effort="high")
    config = last(gemini).body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}
    message = answer.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == "Let me think about it"
    assert answer.usage.completion_tokens_details.reasoning_tokens == 5
    assert answer.usage.completion_tokens == 6  # the answer's one word and the thoughts


def test_messages_request_to_a_gemini_group(gemini, proxy) -> None:
    gemini.script(reply("Bonjour"), reply("Bonjour again"))
    with anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as claude:
        message = claude.messages.create(
            model="flash", max_tokens=100, system="Be kind.", messages=HELLO
        )
        assert message.content[0].text == "Bonjour"
        assert message.stop_reason == "end_turn"
        assert message.usage.input_tokens == 4 and message.usage.output_tokens == 1
        with claude.messages.stream(model="flash", max_tokens=100, messages=HELLO) as stream:
            text = "".join(stream.text_stream)
    assert text == "Bonjour again"
    assert gemini.requests[0].body["systemInstruction"] == {"parts": [{"text": "Be kind."}]}


def test_messages_tool_loop_to_gemini_3_keeps_the_signature(gemini, proxy) -> None:
    gemini.script(reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}]))
    gemini.script(reply("Rome is warm."))
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Rome?"}]
    with anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as claude:
        first = claude.messages.create(model="g3", max_tokens=200, messages=messages, tools=[tool])
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        assert use.name == "get_weather" and use.input == {"city": "Rome"}
        said = [b.model_dump(exclude_none=True) for b in first.content]
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "warm"}
        messages += [{"role": "assistant", "content": said}, {"role": "user", "content": [result]}]
        second = claude.messages.create(model="g3", max_tokens=200, messages=messages, tools=[tool])
    assert second.content[0].text == "Rome is warm."
    model_turn, answer_turn = last(gemini).body["contents"][1:]
    assert model_turn["parts"][-1]["thoughtSignature"] == SIGNATURE
    response = answer_turn["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"output": "warm"}}


def test_429_honours_retry_delay_and_fails_over_to_the_second_key(gemini, proxy, client) -> None:
    gemini.script(rate_limit(37), key=KEY_A)
    raw = client.chat.completions.with_raw_response.create(model="flash", messages=HELLO)
    assert raw.headers["x-llmproxy-deployment"] == "gb"
    assert [s.key for s in gemini.requests] == [KEY_A, KEY_B]
    first = proxy.deployment("ga")
    assert first["health"] == "cooling_down"
    assert first["cooldown_remaining_s"] > 30  # RetryInfo's 37s, not the 1s cooldown_time
    gemini.script(rate_limit(37), key=KEY_B)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="flash", messages=HELLO)
    assert int(caught.value.response.headers["retry-after"]) > 30


def test_stream_error_event_moves_on_and_a_cut_stream_fails(gemini, proxy, client) -> None:
    gemini.script(stream_error_first("The model is overloaded."), key=KEY_A)
    stream = client.chat.completions.create(model="flash", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert [s.key for s in gemini.requests] == [KEY_A, KEY_B]
    gemini.script(stream_cut(3), key=KEY_A)
    with pytest.raises(openai.APIError):  # the error event after the first chunks
        "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="flash", messages=HELLO, stream=True)
            if c.choices
        )


def test_client_error_comes_back_and_a_bad_key_moves_on(gemini, proxy, client) -> None:
    gemini.script(error(400, "* GenerateContentRequest.contents[0]: bad thing\n"), key=KEY_A)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="flash", messages=HELLO)
    assert "bad thing" in caught.value.message
    assert len(gemini.requests) == 1  # the request's fault: no other key tried
    gemini.rejected_keys.add(KEY_A)
    raw = client.chat.completions.with_raw_response.create(model="flash", messages=HELLO)
    assert raw.headers["x-llmproxy-deployment"] == "gb"
    assert proxy.deployment("ga")["health"] == "key_rejected"


def test_embeddings_float_and_base64(gemini, proxy, client) -> None:
    vectors = client.embeddings.create(model="embed", input=["alpha", "beta"])  # base64
    assert vectors.data[1].embedding == pytest.approx(embedding_vector("beta"), abs=1e-6)
    seen = last(gemini)
    assert seen.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert len(seen.body["requests"]) == 2
    plain = client.embeddings.create(
        model="embed", input="alpha", encoding_format="float", dimensions=8
    )
    assert plain.data[0].embedding == pytest.approx(embedding_vector("alpha"), abs=1e-6)
    assert last(gemini).body["requests"][0]["outputDimensionality"] == 8
