"""A request whose serving task is cancelled (its client left) is reported once as a 499 with
the prompt's estimated tokens and cost, frees its slot and counts against no deployment; at
shutdown `end_requests` ends what is in flight with a 503. Long streams keep a bounded preview."""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy.errors import ProxyError
from proxy.schema import CacheControl, UpstreamRequest, text_preview
from tests.unit.parts import build, chat, openai_dep
from tests.unit.scripted import FakeResponse, Hang, Reply, ScriptedUpstream

PRICED = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}


def config(**router):
    deps = [openai_dep("gpt", "a", model_info=PRICED), openai_dep("gpt", "b", model_info=PRICED)]
    return {"model_list": deps, "router_settings": {"num_retries": 2, **router}}


class Watched(ScriptedUpstream):
    """The scripted upstream, telling the test when a request reached it."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.reached = asyncio.Event()

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> FakeResponse:
        self.reached.set()
        return await super().send(request, stream=stream)


@pytest.fixture
def upstream(clock) -> Watched:
    return Watched(clock)


@pytest.fixture
def make(clock, upstream):
    return lambda doc: build(doc, upstream, clock)


async def started(parts, req):
    """Runs `req` in a task until the upstream holds it; returns the task."""
    task = asyncio.ensure_future(parts.pipeline.handle(req, CacheControl()))
    await parts.upstream.reached.wait()
    return task


@pytest.mark.parametrize("stream", [False, True])
async def test_a_cancelled_request_is_a_499_row_and_frees_its_slot(make, upstream, stream) -> None:
    parts = make(config())
    upstream.script("a", Hang())
    upstream.script("b", Hang())
    task = await started(parts, chat(text="x" * 400, stream=stream))
    (host,) = upstream.hosts()
    assert parts.state(host)["in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (report,) = parts.reports
    assert (report.status, report.deployment, report.error) == (499, host, "the client went away")
    assert (report.prompt_tokens, report.completion_tokens) == (100, 0)
    assert report.tokens_estimated and report.cost == pytest.approx(100 * 0.000001)
    assert report.attempt_log[-1]["status"] == 499
    for dep in ("a", "b"):
        row = parts.state(dep)
        assert (row["in_flight"], row["errors"], row["health"]) == (0, 0, "ok")
    assert len(upstream.calls) == 1  # not retried on the other deployment


async def test_end_requests_answers_what_is_in_flight_with_a_503(make, upstream) -> None:
    parts = make(config())
    upstream.script("a", Hang())
    upstream.script("b", Hang())
    task = await started(parts, chat())
    assert parts.pipeline.end_requests() == 1
    with pytest.raises(ProxyError) as info:
        await task
    assert (info.value.status, info.value.code) == (503, "shutting_down")
    assert [r.status for r in parts.reports] == [503]
    assert parts.pipeline.end_requests() == 0  # each request is let go once it is reported
    assert all(parts.state(d)["in_flight"] == 0 for d in ("a", "b"))


async def test_a_long_stream_keeps_only_its_preview(make, upstream) -> None:
    parts = make(config())
    words = [f"w{i} " for i in range(5000)]
    events = [
        b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                "model": "m", "choices": [{"index": 0, "delta": {"content": w},
                                "finish_reason": None}]}).encode() + b"\n\n"
        for w in words
    ] + [b"data: [DONE]\n\n"]  # fmt: skip
    upstream.answer_always("a", Reply(200, events=events))
    upstream.answer_always("b", Reply(200, events=events))
    answer = await parts.pipeline.handle(chat(stream=True), CacheControl())
    body = b"".join([piece async for piece in answer.stream])
    assert body.count(b"chat.completion.chunk") == 5000
    (report,) = parts.reports
    assert report.status == 200
    assert report.preview == text_preview("".join(words))
    assert report.tokens_estimated  # about a token a chunk, though only the preview was read
    assert 4500 <= report.completion_tokens <= 5500, report.completion_tokens
