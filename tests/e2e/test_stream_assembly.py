"""assemble/replay: merging real-shaped chunks, round trips, and the openai SDK reading replays."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.stream_assembly import assemble, replay

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "gpt-4o-mini"}  # fmt: skip


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps({**HEAD, "choices": choices, **extra})


def strip_none(obj: Any) -> Any:
    """Semantic form: keys whose value is None are the same as absent keys."""
    if isinstance(obj, dict):
        return {k: strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [strip_none(v) for v in obj]
    return obj


USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}

TEXT_ANSWER = {
    "id": "chatcmpl-9", "object": "chat.completion", "created": 1700000001, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant",
                                          "content": "Hello there, how can I help you today?"},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": USAGE,
}  # fmt: skip

TOOL_ANSWER = {
    "id": "chatcmpl-7", "object": "chat.completion", "created": 1700000002, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}},
    ]}, "finish_reason": "tool_calls", "logprobs": None}],
    "usage": {**USAGE, "prompt_tokens_details": {"cached_tokens": 4}},
}  # fmt: skip

REASONING_ANSWER = {
    "id": "chatcmpl-r", "object": "chat.completion", "created": 1700000003, "model": "ds-r1",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "42",
                                          "reasoning_content": "Think step by step..."},
                 "finish_reason": "stop"}],
    "usage": USAGE,
}  # fmt: skip

MULTI_CHOICE = {
    "id": "chatcmpl-n", "object": "chat.completion", "created": 1700000004, "model": "gpt-4o",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "one"}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "two!"},
         "finish_reason": "length"},
    ],
    "usage": USAGE,
}  # fmt: skip

ANSWERS = [TEXT_ANSWER, TOOL_ANSWER, REASONING_ANSWER, MULTI_CHOICE]


def test_assemble_openai_shaped_stream():
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, finish="stop"),
        chunk(None, usage=USAGE),
    ]
    out = orjson.loads(assemble(chunks))
    assert out["object"] == "chat.completion"
    assert (out["id"], out["created"], out["model"]) == ("chatcmpl-1", 1700000000, "gpt-4o-mini")
    assert out["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello"},
         "finish_reason": "stop", "logprobs": None}
    ]  # fmt: skip
    assert out["usage"] == USAGE
    ChatCompletion.model_validate(out)


def test_assemble_tool_calls_by_index():
    chunks = [
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "g", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        chunk({}, finish="tool_calls"),
    ]  # fmt: skip
    message = orjson.loads(assemble(chunks))["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


def test_assemble_reasoning_and_missing_usage():
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "hmm "}),
        chunk({"reasoning_content": "ok"}),
        chunk({"content": "yes"}, finish="stop"),
    ]
    out = orjson.loads(assemble(chunks))
    assert out["choices"][0]["message"]["reasoning_content"] == "hmm ok"
    assert out["choices"][0]["message"]["content"] == "yes"
    assert out["usage"] is None


@pytest.mark.parametrize("answer", ANSWERS, ids=["text", "tools", "reasoning", "n2"])
def test_round_trip(answer):
    body = orjson.dumps(answer)
    chunks = replay(body)
    assert strip_none(orjson.loads(assemble(chunks))) == strip_none(answer)


@pytest.mark.parametrize("answer", ANSWERS, ids=["text", "tools", "reasoning", "n2"])
def test_replay_shape_parses_with_sdk_types(answer):
    chunks = replay(orjson.dumps(answer))
    parsed = [ChatCompletionChunk.model_validate_json(c) for c in chunks]
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    assert parsed[-1].usage.total_tokens == 19
    assert all(p.object == "chat.completion.chunk" and p.id == answer["id"] for p in parsed)
    finishes = [c.finish_reason for p in parsed for c in p.choices if c.finish_reason]
    assert finishes == [c["finish_reason"] for c in answer["choices"]]
    text_chunks = [c for p in parsed for c in p.choices if c.delta.content]
    if answer is TEXT_ANSWER:
        assert len(text_chunks) > 1  # split into pieces, like a real stream


def test_replay_without_usage_still_ends_with_usage_chunk():
    answer = {**TEXT_ANSWER, "usage": None}
    last = orjson.loads(replay(orjson.dumps(answer))[-1])
    assert last["choices"] == [] and last["usage"] is None


async def _serve_sse(chunks: list[bytes]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        payload = b"".join(b"data: " + c + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
            + f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("answer", [TEXT_ANSWER, TOOL_ANSWER], ids=["text", "tools"])
async def test_openai_sdk_reads_replayed_stream(answer):
    server = await _serve_sse(replay(orjson.dumps(answer)))
    port = server.sockets[0].getsockname()[1]
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0
    )
    try:
        async with client.chat.completions.stream(
            model="g", messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            final = await stream.get_final_completion()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    want = answer["choices"][0]["message"]
    got = final.choices[0].message
    assert got.content == want["content"]
    assert final.usage is not None and final.usage.total_tokens == 19
    calls = [(c.id, c.function.name, c.function.arguments) for c in got.tool_calls or []]
    assert calls == [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in want.get("tool_calls") or []
    ]
