"""The SSE fast paths read exactly what the general ones do: a one-line `data:` block (after
an optional `event:` line) parsed without splitting it, and the pipeline's own whole
`data:` events rendered by the front doors without an SSE decoder."""

from __future__ import annotations

import orjson
import pytest

from proxy.endpoints.anthropic_messages import MessagesStream
from proxy.endpoints.openai_responses import ResponsesStream
from proxy.endpoints.openai_responses import parse as parse_responses
from proxy.sse import SSEDecoder, _parse_block, _parse_lines, whole_data_events

BLOCKS = [
    b"event: a\ndata: {}",
    b"event:  a\ndata:  x",
    b"data: ",
    b"data: x",
    b"data:x",
    b"event: a",
    b"event: a\ndata: x\ndata: y",
    b"\ndata: x",
    b": comment\ndata: x",
    b"event: a\n: comment",
    b"id: 1\ndata: x",
    b"data: x\nevent: y",
    b"event: \ndata: ",
    b"event: a\ndata: \xff\xfe",
    b"event: a\ndata: " + b"x" * 20_000,
]


@pytest.mark.parametrize("block", BLOCKS)
def test_a_block_parses_as_the_line_by_line_reader_does(block: bytes) -> None:
    assert _parse_block(block) == _parse_lines(block)
    assert _parse_block(bytearray(block)) == _parse_lines(bytearray(block))


def test_the_decoder_finds_every_blank_line_however_the_stream_is_cut() -> None:
    stream = b"event: a\ndata: 1\n\ndata: 2\n\n\n\ndata: 3\ndata: 4\n\n: c\n\nevent: b\ndata: 5\n\n"
    whole = SSEDecoder().feed(stream)
    assert [(e.event, e.data) for e in whole] == [
        ("a", "1"), (None, "2"), (None, "3\n4"), ("b", "5"),
    ]  # fmt: skip
    for cut in range(1, len(stream)):
        dec = SSEDecoder()
        assert dec.feed(stream[:cut]) + dec.feed(stream[cut:]) == whole, cut
        assert not dec.pending


def test_pending_names_a_held_event() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: 1\n")
    assert dec.pending
    assert [e.data for e in dec.feed(b"\n")] == ["1"]
    assert not dec.pending


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"data: {}\n\ndata: [DONE]\n\n", [b"{}", b"[DONE]"]),
        (b"data: \n\n", [b""]),
        (b"data: {}\n\n\n\ndata: {}\n\n", None),
        (b"data: {}\n", None),
        (b"event: x\ndata: {}\n\n", None),
        (b"data: {}\r\n\r\n", None),
        (b"data: a\ndata: b\n\n", None),
        (b"", None),
    ],
)
def test_whole_data_events_takes_only_the_pipelines_shape(
    data: bytes, expected: list[bytes] | None
) -> None:
    assert whole_data_events(data) == expected


def _chunks() -> list[bytes]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [
        {"role": "assistant", "content": "Hel"},
        {"content": "lo"},
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]},
    ]
    out = [
        orjson.dumps({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
        for d in deltas
    ]
    out.append(orjson.dumps({**base, "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "tool_calls"}]}))  # fmt: skip
    out.append(orjson.dumps({**base, "choices": [], "usage": {"prompt_tokens": 3,
                                                           "completion_tokens": 4}}))  # fmt: skip
    return out


def _renderers() -> list[tuple[str, object]]:
    body = orjson.dumps({"model": "m", "input": "hi", "stream": True})
    _, _, info = parse_responses(body, {})
    return [("messages", lambda: MessagesStream("m")), ("responses", lambda: ResponsesStream(info))]


@pytest.mark.parametrize(("name", "make"), _renderers())
def test_a_front_door_renders_whole_events_as_it_renders_cut_ones(name: str, make) -> None:
    sse = b"".join(b"data: " + c + b"\n\n" for c in _chunks()) + b"data: [DONE]\n\n"
    whole = make()
    fast = whole.feed_sse(sse) + whole.finish()
    assert fast, name
    for cut in (1, 7, len(sse) // 2, len(sse) - 3):
        cut_up = make()
        slow = cut_up.feed_sse(sse[:cut]) + cut_up.feed_sse(sse[cut:]) + cut_up.finish()
        assert _normalized(slow) == _normalized(fast), (name, cut)


def _normalized(out: bytes) -> list[object]:
    """The events without the ids and times each renderer makes up per stream."""
    events = []
    for block in out.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                events.append(_scrub(orjson.loads(line[6:])))
    return events


def _scrub(value: object) -> object:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in ("id", "item_id", "created_at")}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
