"""Pipeline.handle end to end without sockets: the local cache, exactly one usage report per
request (answers, failures, streams read to the end, closed early or cut), and its cost.
"""

from __future__ import annotations

import json

import pytest

from proxy.errors import AllTargetsFailed, UnknownModel
from proxy.schema import CacheControl
from tests.fakes.recorded import sse_events
from tests.unit.parts import HELLO, anthropic_dep, chat, mock_dep, openai_dep
from tests.unit.scripted import error, fixture_bytes, ok, ok_stream

# Prices set in model_info, so the expected costs do not depend on the bundled price table.
PRICED = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
ANSWER_COST = 19 * 1e-6 + 10 * 2e-6  # the recorded answer: 19 prompt, 10 completion tokens
STREAM_COST = 9 * 1e-6 + 2 * 2e-6  # the recorded stream: 9 prompt, 2 completion tokens


def config(*deps, cache=False, ttl=None, **router):
    deps = deps or (openai_dep("gpt", "a", model_info=PRICED),)
    doc = {"model_list": list(deps), "router_settings": {"num_retries": 1, **router}}
    if cache:
        params = {"type": "local"} if ttl is None else {"type": "local", "ttl": ttl}
        doc["litellm_settings"] = {"cache": True, "cache_params": params}
    return doc


async def read(answer):
    return b"".join([piece async for piece in answer.stream])


def texts(body: bytes) -> str:
    """The answer text a client assembles from an SSE body."""
    out = []
    for _, data in sse_events(body.decode()):
        if isinstance(data, dict):
            for choice in data.get("choices") or []:
                out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)


# ---- the cache ----


async def test_a_repeat_is_served_from_the_cache(make, upstream) -> None:
    parts = make(config(cache=True))
    first = await parts.handle(chat())
    second = await parts.handle(chat())
    assert first.headers["x-llmproxy-cache"] == "miss"
    assert second.headers["x-llmproxy-cache"] == "hit"
    assert second.headers["x-llmproxy-attempts"] == "0"
    assert second.headers["x-llmproxy-cost"] == "0"
    assert second.headers["x-llmproxy-deployment"] == "a"
    assert first.body == second.body == fixture_bytes("openai", "chat_completion.json")
    assert len(upstream.calls) == 1
    miss, hit = parts.reports
    assert (miss.cache, hit.cache) == ("miss", "hit")
    assert hit.cost == 0 and hit.cost_saved == pytest.approx(miss.cost)
    assert hit.prompt_tokens == 19 and hit.attempts == 0
    snap = parts.cache.snapshot()
    assert (snap["hits"], snap["misses"], snap["entries"]) == (1, 1, 1)
    assert snap["tokens_saved"] == 29


async def test_a_field_that_changes_the_answer_misses(make, upstream) -> None:
    parts = make(config(cache=True))
    await parts.handle(chat(temperature=0.2))
    other = await parts.handle(chat(temperature=0.9))
    same = await parts.handle(chat(temperature=0.2, user="someone-else"))
    assert other.headers["x-llmproxy-cache"] == "miss"
    assert same.headers["x-llmproxy-cache"] == "hit"  # `user` does not change the answer
    assert len(upstream.calls) == 2


async def test_cache_entries_expire_after_their_ttl(make, upstream, clock) -> None:
    parts = make(config(cache=True, ttl=10))
    await parts.handle(chat())
    clock.advance(9.9)
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "hit"
    clock.advance(0.2)
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "miss"
    assert len(upstream.calls) == 2


async def test_a_per_request_ttl_wins(make, upstream, clock) -> None:
    parts = make(config(cache=True, ttl=3600))
    await parts.handle(chat(), CacheControl(ttl=2))
    clock.advance(2.01)
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "miss"


async def test_no_cache_bypasses_the_cache_and_stores_nothing(make, upstream) -> None:
    parts = make(config(cache=True))
    answer = await parts.handle(chat(), CacheControl(no_cache=True))
    assert answer.headers["x-llmproxy-cache"] == "off"
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "miss"
    assert len(upstream.calls) == 2
    assert parts.cache.bypassed == 1
    assert parts.cache.snapshot()["misses"] == 1


async def test_without_a_cache_every_request_goes_upstream(make, upstream) -> None:
    parts = make(config())
    for _ in range(3):
        assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "off"
    assert len(upstream.calls) == 3


async def test_a_failed_request_is_not_cached(make, upstream) -> None:
    parts = make(config(cache=True, num_retries=0))
    upstream.script("a", error(500))
    with pytest.raises(AllTargetsFailed):
        await parts.handle(chat())
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "miss"
    assert len(upstream.calls) == 2


async def test_a_streamed_answer_is_cached_and_replayed(make, upstream) -> None:
    parts = make(config(cache=True))
    streamed = await read(await parts.handle(chat(stream=True)))
    replayed_answer = await parts.handle(chat(stream=True))
    assert replayed_answer.headers["x-llmproxy-cache"] == "hit"
    replayed = await read(replayed_answer)
    assert texts(streamed) == texts(replayed) == "Hello!"
    assert replayed.endswith(b"data: [DONE]\n\n")
    whole = await parts.handle(chat())  # the same question without streaming: the same answer
    assert whole.headers["x-llmproxy-cache"] == "hit"
    assert json.loads(whole.body)["choices"][0]["message"]["content"] == "Hello!"
    assert len(upstream.calls) == 1


async def test_a_stream_closed_early_is_not_cached(make, upstream) -> None:
    parts = make(config(cache=True))
    answer = await parts.handle(chat(stream=True))
    await anext(answer.stream)
    await answer.stream.aclose()
    assert (await parts.handle(chat())).headers["x-llmproxy-cache"] == "miss"
    assert len(upstream.calls) == 2


# ---- one usage report per request ----


async def test_an_answer_is_reported_once_with_its_usage_and_cost(make, upstream, clock) -> None:
    parts = make(config())
    reply = ok()
    reply.takes = 0.25
    upstream.script("a", reply)
    started = clock.wall()
    answer = await parts.handle(chat())
    assert answer.headers["x-llmproxy-cost"] == f"{ANSWER_COST:.8f}"
    (report,) = parts.reports
    assert (report.status, report.deployment, report.provider) == (200, "a", "openai")
    assert (report.prompt_tokens, report.completion_tokens) == (19, 10)
    assert not report.tokens_estimated
    assert report.cost == pytest.approx(ANSWER_COST)
    assert report.latency_ms == pytest.approx(250)
    assert report.time == started and report.stream is False
    assert report.attempts == 1 and report.attempt_log[0]["status"] == 200
    assert report.preview == "Hello! How can I assist you today?"


async def test_a_failed_request_is_reported_once(make, upstream) -> None:
    parts = make(config(num_retries=1))
    upstream.answer_always("a", error(500))
    with pytest.raises(AllTargetsFailed) as info:
        await parts.handle(chat())
    (report,) = parts.reports
    assert report.status == info.value.status == 502
    assert report.error == info.value.message
    assert report.deployment == "a" and report.attempts == 2
    assert [a["status"] for a in report.attempt_log] == [500, 500]
    assert report.cost is None


async def test_an_unknown_model_is_not_reported(make, upstream) -> None:
    parts = make(config())
    with pytest.raises(UnknownModel):
        await parts.handle(chat("no-such-model"))
    assert parts.reports == [] and upstream.calls == []


async def test_a_stream_is_reported_once_when_it_ends(make, upstream, clock) -> None:
    parts = make(config())
    reply = ok_stream()
    reply.takes = 0.3
    upstream.script("a", reply)
    answer = await parts.handle(chat(stream=True))
    assert answer.headers["x-llmproxy-deployment"] == "a"
    assert parts.reports == []  # not before it has ended
    body = await read(answer)
    assert texts(body) == "Hello!" and body.endswith(b"data: [DONE]\n\n")
    assert b'"choices":[]' not in body  # the usage-only chunk: the client did not ask for it
    (report,) = parts.reports
    assert report.status == 200 and report.stream is True
    assert (report.prompt_tokens, report.completion_tokens) == (9, 2)
    assert not report.tokens_estimated
    assert report.cost == pytest.approx(STREAM_COST)
    assert report.ttft_ms == pytest.approx(300)
    assert report.preview == "Hello!"
    row = parts.state("a")
    assert row["in_flight"] == 0 and row["errors"] == 0
    assert upstream.closed == upstream.opened == 1


async def test_a_stream_relays_the_usage_chunk_when_asked(make) -> None:
    parts = make(config())
    req = chat(stream=True, stream_options={"include_usage": True})
    body = await read(await parts.handle(req))
    usage = [d["usage"] for _, d in sse_events(body.decode()) if isinstance(d, dict) and d["usage"]]
    assert usage and usage[-1]["total_tokens"] == 11


async def test_a_stream_closed_early_is_reported_once_and_frees_its_slot(make, upstream) -> None:
    parts = make(config())
    answer = await parts.handle(chat(stream=True))
    await anext(answer.stream)
    assert parts.state("a")["in_flight"] == 1
    await answer.stream.aclose()
    await answer.stream.aclose()  # closing twice changes nothing
    (report,) = parts.reports
    assert report.status == 499
    assert report.tokens_estimated  # the usage chunk never came
    row = parts.state("a")
    assert row["in_flight"] == 0 and row["errors"] == 0 and row["health"] == "ok"
    assert upstream.closed == upstream.opened == 1


@pytest.mark.parametrize("cached", [False, True])
async def test_a_stream_closed_before_its_first_read_is_reported_once(
    make, upstream, cached
) -> None:
    parts = make(config(cache=cached))
    if cached:
        await read(await parts.handle(chat(stream=True)))
        parts.reports.clear()
    answer = await parts.handle(chat(stream=True))
    await answer.stream.aclose()
    assert [r.status for r in parts.reports] == [499]
    assert parts.state("a")["in_flight"] == 0
    assert upstream.closed == upstream.opened


async def test_a_stream_cut_after_its_first_bytes_ends_with_an_error_event(make, upstream) -> None:
    parts = make(config(allowed_fails=5))
    upstream.script("a", ok_stream(cut_after=2))
    body = await read(await parts.handle(chat(stream=True)))
    events = sse_events(body.decode())
    assert events[-1][1] == "[DONE]"
    assert events[-2][1]["error"]["code"] == "upstream_connection"
    assert texts(body) == "Hello"
    (report,) = parts.reports
    assert report.status == 502 and "connection failed" in report.error
    row = parts.state("a")
    assert row["in_flight"] == 0 and row["errors"] == 1 and row["health"] == "failing"
    assert upstream.closed == upstream.opened == 1


async def test_a_cached_stream_closed_early_is_reported_once(make) -> None:
    parts = make(config(cache=True))
    await read(await parts.handle(chat(stream=True)))
    answer = await parts.handle(chat(stream=True))
    await anext(answer.stream)
    await answer.stream.aclose()
    assert [(r.cache, r.status) for r in parts.reports] == [("miss", 200), ("hit", 499)]


async def test_a_streams_tokens_count_toward_tpm(make) -> None:
    parts = make(config(openai_dep("gpt", "a", tpm=1000)))
    await read(await parts.handle(chat(stream=True)))
    assert parts.state("a")["tpm_used"] == 11
    await parts.handle(chat())
    assert parts.state("a")["tpm_used"] == 40


# ---- cost ----


async def test_cost_comes_from_the_price_table_without_model_info(make) -> None:
    parts = make(config(openai_dep("gpt", "a")))
    answer = await parts.handle(chat())
    (report,) = parts.reports
    # genai-prices' gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    assert report.cost == pytest.approx(19 * 0.15e-6 + 10 * 0.6e-6)
    assert answer.headers["x-llmproxy-cost"] == f"{report.cost:.8f}"


async def test_an_unknown_price_is_reported_as_none(make) -> None:
    parts = make(config(openai_dep("gpt", "a", model="openai/some-private-model")))
    answer = await parts.handle(chat())
    assert "x-llmproxy-cost" not in answer.headers
    assert parts.reports[0].cost is None and parts.reports[0].prompt_tokens == 19


async def test_an_anthropic_answer_is_priced_from_its_translated_usage(make, upstream) -> None:
    dep = anthropic_dep("claude", "c")
    dep["model_info"].update(PRICED)
    parts = make(config(dep))
    answer = await parts.handle(chat("claude"))
    doc = json.loads(answer.body)
    assert doc["object"] == "chat.completion"
    assert upstream.calls[0].url == "http://c.test/v1/messages"
    (report,) = parts.reports
    usage = doc["usage"]
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert report.cost == pytest.approx(expected) and report.prompt_tokens > 0


async def test_a_mock_deployment_answers_locally_for_free(make, upstream) -> None:
    parts = make(config(mock_dep("gpt", "m", reply="Hi")))
    answer = await parts.handle(chat())
    assert json.loads(answer.body)["choices"][0]["message"]["content"] == "Hi"
    body = await read(await parts.handle(chat(stream=True)))
    assert texts(body) == "Hi"
    assert upstream.calls == []
    assert [(r.status, r.cost, r.prompt_tokens) for r in parts.reports] == [
        (200, 0.0, len(HELLO.split())),
        (200, 0.0, len(HELLO.split())),
    ]
    assert parts.state("m")["in_flight"] == 0
