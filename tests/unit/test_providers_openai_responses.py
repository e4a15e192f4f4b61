"""The OpenAI adapter's Responses pass-through: which requests go to `/responses` as sent, the
Response object and its SSE stream read into the neutral chat form (what the cache, usage,
cost and the dashboard see), errors, and a Chat-only upstream's 404 answered translated inside
one attempt. Upstream bodies come from the fake's Responses API, which speaks the real format.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import orjson
import pytest

from proxy.config.types import Deployment
from proxy.endpoints import openai_responses as front
from proxy.errors import UpstreamError
from proxy.providers.openai import OpenAIProvider, OpenAIStream
from proxy.providers.openai_responses import ResponsesStreamDecoder, tail_usage
from proxy.routing import attempt
from proxy.schema import ChatRequest, Chunk, NativeBody, SSEEvent
from proxy.secret import Secret
from proxy.sse import SSEDecoder
from proxy.stream_assembly import assemble
from tests.fakes import responses_wire
from tests.fakes import steps as st
from tests.fakes.exchange import Exchange
from tests.unit.parts import openai_dep
from tests.unit.scripted import Reply, ScriptedUpstream, ok, ok_stream

KEY = "sk-proj-secret-value-0000abcd"
_ids = itertools.count(1)
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files (freeform)"},
    {"type": "namespace", "name": "agents", "description": "Sub-agents",
     "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
]  # fmt: skip
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+say "hi"\\n\n*** End Patch\n'
CALLS = (
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "apply_patch", "input": PATCH},
    {"name": "spawn", "arguments": {}},
)


def dep(provider: str = "openai", **changes: Any) -> Deployment:
    """A deployment on its own host (`http://<id>.test/v1`), unique per call."""
    dep_id = changes.pop("id", f"oa-{next(_ids)}")
    base = Deployment(
        id=dep_id,
        group="gpt",
        provider=provider,
        wire="openai",
        model="gpt-5",
        api_base=f"http://{dep_id}.test/v1",
        key=Secret(KEY),
        key_env=None,
    )
    return dataclasses.replace(base, **changes)


def responses_request(**body: Any) -> tuple[ChatRequest, dict[str, Any]]:
    """A request as the Responses front door hands it on: translated, the client's body beside."""
    doc = {"model": "gpt", "input": "hi there", **body}
    req, _ctl, info = front.parse(orjson.dumps(doc), {})
    req.native = NativeBody("openai_responses", info.body)
    req.request_id = f"req-{next(_ids)}"
    return req, doc


def upstream_answer(step: st.Reply, **body: Any) -> Any:
    """The fake's Responses answer (body or events) to a request with `body`."""
    exchange = Exchange("/v1/responses", {"model": "gpt-5", "input": "go", **body}, KEY, 7)
    return responses_wire.render(step, exchange)


def decode(events: list[bytes], decoder: ResponsesStreamDecoder) -> list[Chunk]:
    sse = SSEDecoder()
    return [chunk for data in events for event in sse.feed(data) for chunk in decoder.feed(event)]


def decoder_for(d: Deployment) -> ResponsesStreamDecoder:
    req, _ = responses_request(stream=True)
    out = OpenAIProvider().open_stream(req, d)
    assert isinstance(out, ResponsesStreamDecoder)
    return out


# -- which requests pass through ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_the_clients_body_goes_to_responses_with_only_the_model_replaced(stream) -> None:
    d = dep()
    req, doc = responses_request(
        stream=stream, store=False, include=["reasoning.encrypted_content"], tools=TOOLS,
        input=[{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
               {"type": "message", "role": "user", "content": "hi"}],
        reasoning={"effort": "high", "summary": "auto"}, text={"verbosity": "low"},
    )  # fmt: skip
    sent = OpenAIProvider().build_request(req, d)
    assert sent.method == "POST" and sent.url == d.api_base + "/responses"
    assert orjson.loads(sent.content) == {**doc, "model": "gpt-5"}  # no stream_options added
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"


def test_proxy_only_fields_stay_out_of_the_passed_body() -> None:
    req, doc = responses_request(cache={"no-cache": True}, api_key="sk-client", store=False)
    sent = orjson.loads(OpenAIProvider().build_request(req, dep()).content)
    assert "cache" not in sent and "api_key" not in sent and sent["store"] is False


@pytest.mark.parametrize("provider", ["groq", "openrouter", "deepseek", "ollama", "hosted_vllm"])
def test_openai_compatible_vendors_are_translated(provider) -> None:
    req, _ = responses_request()
    sent = OpenAIProvider().build_request(req, dep(provider))
    assert sent.url.endswith("/chat/completions")
    assert orjson.loads(sent.content)["messages"] == [{"role": "user", "content": "hi there"}]


def test_plain_chat_requests_are_unchanged() -> None:
    req = ChatRequest("gpt", {"model": "gpt", "messages": [{"role": "user", "content": "x"}]})
    sent = OpenAIProvider().build_request(req, dep())
    assert sent.url.endswith("/chat/completions")
    assert orjson.loads(sent.content)["model"] == "gpt-5"


# -- a Chat-only upstream ------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405])
def test_a_404_or_405_marks_the_deployment_chat_only(status) -> None:
    provider, d = OpenAIProvider(), dep()
    req, _ = responses_request(stream=True)
    body = (
        b'{"error":{"message":"Invalid URL (POST /v1/responses)","type":"invalid_request_error"}}'
    )
    assert provider.lacks_native(req, d, status, body)
    assert (d.id, d.api_base) in provider.chat_only
    assert provider.build_request(req, d).url.endswith("/chat/completions")
    assert isinstance(provider.open_stream(req, d), OpenAIStream)
    # a concurrent request's 404 from /responses still means the same
    assert provider.lacks_native(req, d, status, body)
    moved = dataclasses.replace(d, api_base="http://elsewhere.test/v1")
    assert provider.build_request(req, moved).url.endswith("/responses")  # asked again


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b'{"error":{"message":"The model does not exist","code":"model_not_found"}}'),
        (400, b'{"error":{"message":"bad"}}'),
        (500, b'{"error":{"message":"boom"}}'),
    ],
)
def test_other_errors_do_not_mark_it(status, body) -> None:
    provider, d = OpenAIProvider(), dep()
    req, _ = responses_request()
    assert not provider.lacks_native(req, d, status, body)
    assert provider.chat_only == set()


def test_a_translated_request_is_never_marked() -> None:
    provider = OpenAIProvider()
    req, _ = responses_request()
    assert not provider.lacks_native(req, dep("groq"), 404, b"")
    chat = ChatRequest("gpt", {"model": "gpt", "messages": []})
    assert not provider.lacks_native(chat, dep(), 404, b"")
    assert provider.chat_only == set()


CHAT_ONLY_404 = Reply(404, b'{"detail":"Not Found"}', {"content-type": "application/json"})


async def test_an_attempt_retries_a_chat_only_404_translated() -> None:
    provider, d, up = OpenAIProvider(), dep(), ScriptedUpstream()
    up.script(d.id, CHAT_ONLY_404, ok())
    req, _ = responses_request()
    resp = await attempt.complete(up, provider, req, d, 10.0)
    assert resp.native is None and resp.preview  # the translated chat answer
    assert [c.url for c in up.calls] == [
        d.api_base + "/responses",
        d.api_base + "/chat/completions",
    ]
    await attempt.complete(up, provider, req, d, 10.0)
    assert up.calls[-1].url.endswith("/chat/completions") and len(up.calls) == 3


class Interleaved(ScriptedUpstream):
    """Lets every other task run before each answer, as concurrent requests on a network do."""

    async def send(self, request: Any, *, stream: bool = False) -> Any:
        await asyncio.sleep(0)
        return await super().send(request, stream=stream)


async def test_concurrent_first_requests_both_fall_back() -> None:
    provider, d, up = OpenAIProvider(), dep(), Interleaved()
    up.script(d.id, CHAT_ONLY_404, CHAT_ONLY_404, ok(), ok())
    first, _ = responses_request()
    second, _ = responses_request()
    answers = await asyncio.gather(
        attempt.complete(up, provider, first, d, 10.0),
        attempt.complete(up, provider, second, d, 10.0),
    )
    assert all(a.native is None for a in answers)
    paths = [c.url.rsplit("/", 1)[-1] for c in up.calls]
    assert paths == ["responses", "responses", "completions", "completions"]


async def test_a_chat_only_upstream_that_also_404s_chat_is_not_retried_again() -> None:
    provider, d, up = OpenAIProvider(), dep(), ScriptedUpstream()
    up.script(d.id, CHAT_ONLY_404, CHAT_ONLY_404)
    req, _ = responses_request()
    with pytest.raises(UpstreamError) as info:
        await attempt.complete(up, provider, req, d, 10.0)
    assert info.value.status == 404 and len(up.calls) == 2


async def test_a_stream_attempt_retries_a_chat_only_404_translated() -> None:
    provider, d, up = OpenAIProvider(), dep(), ScriptedUpstream()
    up.script(d.id, CHAT_ONLY_404, ok_stream())
    req, _ = responses_request(stream=True)
    opened = await attempt.open_stream(up, provider, req, d, 10.0)
    assert opened.native is False
    assert [c.url.rsplit("/", 1)[-1] for c in up.calls] == ["responses", "completions"]
    await opened.close()
    assert up.opened == up.closed == 2


async def test_the_router_counts_the_chat_only_404_against_nothing(make) -> None:
    dep_id = f"oa-router-{next(_ids)}"
    parts = make({"model_list": [openai_dep("gpt", dep_id, model="openai/gpt-5")]})
    parts.upstream.script(dep_id, CHAT_ONLY_404, ok())
    req, _ = responses_request()
    resp, served, trace = await parts.complete(req)
    assert served.id == dep_id and resp.native is None
    assert [a.status for a in trace.attempts] == [200]
    state = parts.state(dep_id)
    assert state["errors"] == 0 and state["fails_this_minute"] == 0
    assert state["health"] == "ok"


async def test_a_native_answer_passes_through_an_attempt() -> None:
    d, up = dep(), ScriptedUpstream()
    answer = upstream_answer(st.Reply(content="native hello"))
    up.script(d.id, Reply(200, answer.body, {"content-type": "application/json"}))
    req, _ = responses_request()
    resp = await attempt.complete(up, OpenAIProvider(), req, d, 10.0)
    assert resp.native == answer.body and resp.preview == "native hello"


async def test_a_native_stream_carries_the_upstreams_events() -> None:
    d, up = dep(), ScriptedUpstream()
    answer = upstream_answer(st.Reply(content="streamed hi"), stream=True)
    up.script(d.id, Reply(200, events=answer.events, headers={"content-type": "text/event-stream"}))
    req, _ = responses_request(stream=True)
    opened = await attempt.open_stream(up, OpenAIProvider(), req, d, 10.0)
    chunks = list(opened.first)
    async for batch in opened.batches(5.0):
        chunks.extend(batch)
    await opened.close()
    assert opened.native is True
    assert b"".join(c.native for c in chunks if c.native) == b"".join(answer.events)
    assert "".join(c.text for c in chunks) == "streamed hi"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].completion_tokens == 2


# -- a Response object → the neutral answer --------------------------------------------------


def parse(body: bytes, d: Deployment | None = None) -> Any:
    req, _ = responses_request()
    return OpenAIProvider().parse_response(req, d or dep(), body)


def test_text_and_usage() -> None:
    step = st.Reply(content="Hello there", usage={"input_tokens": 120, "output_tokens": 30,
                                                  "cached_tokens": 100})  # fmt: skip
    body = upstream_answer(step).body
    resp = parse(body)
    assert resp.native == body and resp.preview == "Hello there" and resp.model == "gpt-5"
    doc = orjson.loads(resp.body)
    assert doc["object"] == "chat.completion" and doc["id"] == "chatcmpl-fake00000007"
    [choice] = doc["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hello there"}
    assert choice["finish_reason"] == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (120, 30)
    assert resp.usage.total_tokens == 150 and resp.usage.cached_tokens == 100
    assert doc["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}


def test_tool_calls_and_reasoning() -> None:
    step = st.Reply(tool_calls=CALLS, reasoning="plan the edit")
    body = upstream_answer(step, tools=TOOLS, include=["reasoning.encrypted_content"]).body
    resp = parse(body)
    message = orjson.loads(resp.body)["choices"][0]["message"]
    assert message["content"] is None and message["reasoning_content"] == "plan the edit"
    weather, patch, spawn = message["tool_calls"]
    assert weather["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert weather["id"].startswith("call_") and weather["type"] == "function"
    assert orjson.loads(patch["function"]["arguments"]) == {"input": PATCH}
    assert spawn["function"]["name"] == "agents__spawn"  # the front door's flat name
    assert orjson.loads(resp.body)["choices"][0]["finish_reason"] == "tool_calls"
    assert resp.usage.reasoning_tokens == 3


def test_the_neutral_answer_renders_back_as_the_clients_tools() -> None:
    """A cache hit is rendered from the neutral form: it must come back as the client's items."""
    body = upstream_answer(st.Reply(tool_calls=CALLS), tools=TOOLS).body
    _req, _ctl, info = front.parse(orjson.dumps({"model": "gpt", "input": "go", "tools": TOOLS}),
                                   {})  # fmt: skip
    rendered = orjson.loads(front.render(parse(body).body, info))
    native = orjson.loads(body)["output"]
    assert [o["type"] for o in rendered["output"]] == [o["type"] for o in native]
    assert rendered["output"][1]["input"] == PATCH
    assert rendered["output"][2]["name"] == "spawn"
    assert rendered["output"][2]["namespace"] == "agents"


def test_an_incomplete_response_finishes_with_length() -> None:
    body = upstream_answer(st.Reply(content="cut", finish_reason="length")).body
    assert orjson.loads(parse(body).body)["choices"][0]["finish_reason"] == "length"


def test_a_refusal() -> None:
    doc = {"id": "resp_1", "object": "response", "created_at": 5, "status": "completed",
           "model": "gpt-5", "usage": None,
           "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                       "status": "completed", "content": [{"type": "refusal",
                                                           "refusal": "I can't."}]}]}  # fmt: skip
    resp = parse(orjson.dumps(doc))
    message = orjson.loads(resp.body)["choices"][0]["message"]
    assert message["refusal"] == "I can't." and message["content"] == ""
    assert resp.usage is None and "usage" not in orjson.loads(resp.body)


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        ({"code": "server_error", "message": "boom"}, 500, True),
        ({"code": "rate_limit_exceeded", "message": "slow down"}, 429, True),
        ({"code": "invalid_prompt", "message": "no"}, 400, False),
        ({"code": "something_new", "message": "?"}, 502, True),
    ],
)
def test_a_failed_response_is_an_upstream_error(error, status, retryable) -> None:
    doc = {"id": "resp_1", "object": "response", "status": "failed", "error": error,
           "output": []}  # fmt: skip
    with pytest.raises(UpstreamError) as info:
        parse(orjson.dumps(doc))
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert error["message"] in info.value.message


def test_a_body_that_is_not_a_response() -> None:
    with pytest.raises(UpstreamError) as info:
        parse(b"<html>")
    assert info.value.status == 502 and info.value.retryable


def test_an_echoed_key_is_redacted_from_errors() -> None:
    doc = {"status": "failed", "error": {"code": "server_error", "message": f"bad key {KEY}"}}
    with pytest.raises(UpstreamError) as info:
        parse(orjson.dumps(doc))
    assert KEY not in info.value.message


# -- a Responses stream → neutral chunks ------------------------------------------------------


def test_a_text_stream() -> None:
    d = dep()
    answer = upstream_answer(st.Reply(content="one two three"), stream=True)
    decoder = decoder_for(d)
    chunks = decode(answer.events, decoder)
    assert decoder.done
    assert "".join(c.text for c in chunks) == "one two three"
    first = orjson.loads(chunks[0].data)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["id"] == "chatcmpl-fake00000007" and first["model"] == "gpt-5"
    usage_chunk = chunks[-1]
    assert usage_chunk.usage_only and usage_chunk.usage.total_tokens == 1 + 3  # "go"; three words
    assert orjson.loads(chunks[-2].data)["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("named", [True, False])
def test_a_stream_assembles_into_the_same_answer_as_the_whole_body(named) -> None:
    step = st.Reply(content="calling", tool_calls=CALLS, reasoning="plan the edit")
    body = {"tools": TOOLS, "include": ["reasoning.encrypted_content"]}
    events = upstream_answer(step, stream=True, **body).events
    if not named:  # a server that sends no `event:` lines: dispatched by `type`
        events = [e.split(b"\n", 1)[1] for e in events]
    chunks = decode(events, decoder_for(dep()))
    streamed = orjson.loads(assemble([c.data for c in chunks if c.data]))
    whole = orjson.loads(parse(upstream_answer(step, **body).body).body)
    assert streamed["choices"][0]["message"] == whole["choices"][0]["message"]
    assert streamed["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert streamed["usage"] == whole["usage"]


def test_a_lean_decoder_reads_the_same_text_usage_and_finish() -> None:
    """A pass-through nobody caches decodes neither `response.created` nor the whole
    `response.completed`, and still reports what the full decoder does."""
    step = st.Reply(content="calling", tool_calls=CALLS, reasoning="plan the edit")
    events = upstream_answer(step, stream=True, tools=TOOLS).events
    full = decode(events, decoder_for(dep()))
    lean_decoder = ResponsesStreamDecoder(dep(), lambda status, body: UpstreamError("x"), lean=True)
    lean = decode(events, lean_decoder)
    assert lean_decoder.done and all(c.data is None for c in lean if not c.usage_only)
    assert "".join(c.text for c in lean) == "".join(c.text for c in full) == "calling"
    assert lean[-1].usage == full[-1].usage and lean[-1].usage.total_tokens > 0
    finishes = [c.finish for c in full if c.finish]
    assert [c.finish for c in lean if c.finish] == finishes == ["tool_calls"]


@pytest.mark.parametrize(
    ("tail", "usage"),
    [
        ('"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":1},"output_tokens":2}'
         ',"user":null}}', {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 1},
                             "output_tokens": 2}),
        ('"usage": {"input_tokens": 3}}}', {"input_tokens": 3}),
        ('"usage":null}}', None),
        ('"usage":{"input_tokens":5},"text":{"format":{"schema":{"properties":{"usage":{'
         '"type":"object"}}}}}}}', None),  # a later "usage" that is not it: decode it all
        ('"metadata":{"usage":"x"}}}', None),
        ('"usage":{"input_tokens":5', None),
    ],
)  # fmt: skip
def test_the_usage_read_from_a_completed_events_tail(tail, usage) -> None:
    head = (
        '{"type":"response.completed","response":{"tools":[{"name":"t","parameters":{"usage":1}}],'
    )
    assert tail_usage(head + tail) == usage


def test_a_lean_decoder_decodes_a_completed_event_it_cannot_read_from_the_tail() -> None:
    lean = ResponsesStreamDecoder(dep(), lambda status, body: UpstreamError("x"), lean=True)
    data = {"type": "response.completed", "response": {"status": "completed", "usage": {
        "input_tokens": 4, "output_tokens": 1}, "metadata": {"usage": "later"}}}  # fmt: skip
    [*_, last] = lean.feed(SSEEvent("response.completed", orjson.dumps(data).decode()))
    assert last.usage is not None and last.usage.prompt_tokens == 4


def test_a_custom_call_sent_only_as_a_done_item() -> None:
    decoder = decoder_for(dep())
    item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_9", "name": "apply_patch",
            "input": PATCH, "status": "completed"}  # fmt: skip
    done = {"type": "response.output_item.done", "output_index": 0, "item": item}
    chunks = decoder.feed(SSEEvent(None, orjson.dumps(done).decode()))
    chunks += decoder.feed(SSEEvent(None, orjson.dumps(done).decode()))  # repeated: no-op
    message = orjson.loads(assemble([c.data for c in chunks if c.data]))["choices"][0]["message"]
    [call] = message["tool_calls"]
    assert call["id"] == "call_9" and orjson.loads(call["function"]["arguments"]) == {
        "input": PATCH
    }


def test_events_the_proxy_does_not_read_are_not_decoded() -> None:
    decoder = decoder_for(dep())
    for name in ("response.in_progress", "response.output_text.done", "response.content_part.done"):
        assert decoder.feed(SSEEvent(name, "{not json")) == []
    assert not decoder.done


@pytest.mark.parametrize(
    ("event", "status", "retryable"),
    [
        (SSEEvent("error", '{"type":"error","code":"server_error","message":"boom"}'), 500, True),
        (SSEEvent(None, '{"type":"error","code":"overloaded_error","message":"busy"}'), 502, True),
        (SSEEvent("error", '{"type":"error","code":"rate_limit_exceeded","message":"x"}'), 429,
         True),
        (SSEEvent("response.failed", '{"type":"response.failed","response":{"status":"failed",'
                  '"error":{"code":"invalid_prompt","message":"flagged"}}}'), 400, False),
    ],
)  # fmt: skip
def test_stream_failures_are_upstream_errors(event, status, retryable) -> None:
    decoder = decoder_for(dep())
    with pytest.raises(UpstreamError) as info:
        decoder.feed(event)
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert decoder.done


def test_the_fakes_first_event_error_is_retryable() -> None:
    answer = upstream_answer(st.StreamErrorFirst("The server had an error", "server_error"))
    with pytest.raises(UpstreamError) as info:
        decode(answer.events, decoder_for(dep()))
    assert info.value.retryable and "The server had an error" in info.value.message


def test_an_event_that_is_not_json() -> None:
    with pytest.raises(UpstreamError) as info:
        decoder_for(dep()).feed(SSEEvent("response.output_text.delta", "{cut"))
    assert info.value.status == 502 and info.value.retryable


def test_an_incomplete_stream_finishes_with_length() -> None:
    answer = upstream_answer(st.Reply(content="cut", finish_reason="length"), stream=True)
    decoder = decoder_for(dep())
    chunks = decode(answer.events, decoder)
    assert decoder.done
    finishes = [orjson.loads(c.data)["choices"] for c in chunks if c.data and not c.usage_only]
    assert finishes[-1][0]["finish_reason"] == "length"


def test_a_custom_call_without_its_done_item_still_ends_as_json() -> None:
    decoder = decoder_for(dep())
    item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_9", "name": "apply_patch",
            "input": "", "status": "in_progress"}  # fmt: skip
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.custom_tool_call_input.delta", "output_index": 0, "delta": 'a "b"\n'},
        {"type": "response.completed", "response": {"status": "completed", "usage": None}},
    ]
    chunks = [c for e in events for c in decoder.feed(SSEEvent(None, orjson.dumps(e).decode()))]
    doc = orjson.loads(assemble([c.data for c in chunks if c.data]))
    [call] = doc["choices"][0]["message"]["tool_calls"]
    assert orjson.loads(call["function"]["arguments"]) == {"input": 'a "b"\n'}
    assert doc["choices"][0]["finish_reason"] == "tool_calls"
