"""The SSE decoder gives the same events however a stream is cut into reads, with LF, CRLF or
CR line endings, for streams the fake upstream renders in OpenAI's and Anthropic's formats."""

from __future__ import annotations

import pytest

from proxy.schema import SSEEvent
from proxy.sse import EventTooLargeError, SSEDecoder
from tests.fakes import anthropic_wire, openai_wire, responses_wire
from tests.fakes.exchange import Exchange
from tests.fakes.steps import reply

MESSAGES = [{"role": "user", "content": "hi"}]
CALL = {"name": "lookup", "arguments": {"q": "a b"}, "id": "call_1"}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


def _stream(render, path: str, body: dict) -> bytes:
    answer = render(reply("one, two\nfour", tool_calls=[CALL]), Exchange(path, body, "k", 1))
    assert answer.events, "the fake rendered no stream"
    return b"".join(answer.events)


def _recorded() -> dict[str, bytes]:
    chat = {"model": "m", "messages": MESSAGES, "stream": True, "tools": TOOLS}
    messages = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 9,
                "tools": [{"name": "lookup", "input_schema": {}}]}  # fmt: skip
    responses = {"model": "m", "input": "hi", "stream": True}
    return {
        "openai": _stream(openai_wire.render, "/v1/chat/completions", chat),
        "anthropic": _stream(anthropic_wire.render, "/v1/messages", messages),
        "responses": _stream(responses_wire.render, "/v1/responses", responses),
    }


RECORDED = _recorded()
ENDINGS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def _decode(reads: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for data in reads for event in decoder.feed(data)]
    return events + decoder.flush()


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("vendor", RECORDED)
def test_a_stream_cut_at_every_byte_gives_the_same_events(vendor: str, ending: str) -> None:
    raw = RECORDED[vendor].replace(b"\n", ENDINGS[ending])
    whole = _decode([raw])
    assert len(whole) >= 5, whole
    assert whole == _decode([RECORDED[vendor]])  # the ending changes nothing
    for cut in range(1, len(raw)):
        assert _decode([raw[:cut], raw[cut:]]) == whole, (vendor, ending, cut)


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_stream_fed_byte_by_byte_gives_the_same_events(ending: str) -> None:
    raw = RECORDED["anthropic"].replace(b"\n", ENDINGS[ending])
    assert _decode([raw[i : i + 1] for i in range(len(raw))]) == _decode([raw])


def test_a_crlf_cut_between_reads_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(None, "a\nb")]


def test_a_lone_cr_then_crlf_is_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r\ndata: b\n\n") == [SSEEvent(None, "a"), SSEEvent(None, "b")]


def test_an_event_longer_than_the_limit_is_refused_not_kept() -> None:
    decoder = SSEDecoder(limit=1000)
    decoder.feed(b"data: " + b"x" * 600)
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"x" * 600)
    assert decoder.feed(b"\n\ndata: ok\n\n")[-1] == SSEEvent(None, "ok")


def test_a_long_event_in_many_reads_is_one_event() -> None:
    decoder = SSEDecoder()
    text = "y" * 300_000
    raw = f"event: big\ndata: {text}\n\n".encode()
    events = [e for i in range(0, len(raw), 97) for e in decoder.feed(raw[i : i + 97])]
    assert events == [SSEEvent("big", text)]


def _relay(reads: list[bytes], wanted: frozenset[bytes] | None) -> tuple[list[SSEEvent], bytes]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    pieces: list[bytes] = []
    for data in reads:
        got, piece = decoder.relay(data, wanted)
        events += got
        pieces.append(piece)
    return events, b"".join(pieces)


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("vendor", RECORDED)
def test_a_relay_passes_every_byte_and_reads_only_the_wanted_events(
    vendor: str, ending: str
) -> None:
    """A pass-through relays each read's whole events as one piece: the pieces are the stream
    (line endings made LF), however it is cut; only the wanted names are decoded."""
    raw = RECORDED[vendor].replace(b"\n", ENDINGS[ending])
    everything = _decode([RECORDED[vendor]])
    names = {e.event for e in everything if e.event}
    wanted = frozenset(n.encode() for n in sorted(names)[: max(1, len(names) // 2)])
    expected = [e for e in everything if e.event is None or e.event.encode() in wanted]
    assert _relay([raw], None) == (everything, RECORDED[vendor])
    for cut in range(1, len(raw), 7):
        assert _relay([raw[:cut], raw[cut:]], wanted) == (expected, RECORDED[vendor]), cut


def test_a_relayed_piece_holds_only_whole_events() -> None:
    decoder = SSEDecoder()
    events, piece = decoder.relay(b"event: a\ndata: 1\n\nevent: b\nda", frozenset({b"b"}))
    assert (events, piece) == ([], b"event: a\ndata: 1\n\n")
    events, piece = decoder.relay(b"ta: 2\n\n", frozenset({b"b"}))
    assert (events, piece) == ([SSEEvent("b", "2")], b"event: b\ndata: 2\n\n")
