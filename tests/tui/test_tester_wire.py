"""The tester's three APIs on their own: the request each builds, and the reading of recorded
streams (Anthropic's and OpenAI's own recordings in tests/fixtures, and the proxy's Messages and
Responses streams recorded in tests/tui/fixtures) fed in pieces of every size."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.fakes.recorded import fixture_lines, sse_bytes
from tui.screens.tester_wire import FORMATS, Delta, Prompt, StreamReader, error_message

HERE = Path(__file__).parent / "fixtures"
MOCK_ANSWER = (
    "# A mock answer\n\nThe **tester** renders Markdown as it streams in:\n\n- keys rotate\n"
    "- requests retry and fall back\n- answers are cached and cost is tracked"
)


def read(wire: str, body: bytes, piece: int) -> Delta:
    """Feeds `body` in `piece`-byte chunks; returns everything it added up to."""
    reader = StreamReader(FORMATS[wire])
    deltas: list[Delta] = []
    for start in range(0, len(body), piece):
        deltas += reader.feed(body[start : start + piece])
    deltas += reader.close()
    total = Delta()
    for delta in deltas:
        total.text += delta.text
        total.usage.update(delta.usage)
        total.error = delta.error or total.error
    return total


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20])
def test_anthropic_recorded_stream(piece: int) -> None:
    body = sse_bytes(fixture_lines("anthropic/stream.jsonl"))
    got = read("messages", body, piece)
    assert (got.text, got.error) == ("Hello!", None)
    assert got.usage == {"prompt_tokens": 25, "completion_tokens": 15}  # start, then delta


@pytest.mark.parametrize("piece", [1, 13, 1 << 20])
def test_proxy_messages_stream(piece: int) -> None:
    got = read("messages", (HERE / "messages_stream.sse").read_bytes(), piece)
    assert (got.text, got.error) == (MOCK_ANSWER, None)
    assert got.usage == {"prompt_tokens": 3, "completion_tokens": 29}


@pytest.mark.parametrize("piece", [1, 13, 1 << 20])
def test_proxy_responses_stream(piece: int) -> None:
    got = read("responses", (HERE / "responses_stream.sse").read_bytes(), piece)
    assert (got.text, got.error) == (MOCK_ANSWER, None)  # output_text.delta only, not .done
    assert got.usage == {"prompt_tokens": 3, "completion_tokens": 29}


def test_openai_recorded_chat_stream() -> None:
    got = read("chat", sse_bytes(fixture_lines("openai/chat_stream.jsonl")), 5)
    assert got.text.startswith("Hello") and got.error is None
    assert got.usage == {"prompt_tokens": 9, "completion_tokens": 2}


def test_errors_in_each_stream() -> None:
    anthropic = read("messages", sse_bytes(fixture_lines("anthropic/stream_error.jsonl")), 3)
    assert anthropic.error == "Overloaded"
    chat = read("chat", sse_bytes(fixture_lines("openai/stream_error_first.jsonl")), 3)
    assert chat.error is not None and chat.error.startswith("The server had an error")
    error = {"code": "server_error", "message": "upstream went away"}
    failed = {"type": "response.failed", "response": {"status": "failed", "error": error}}
    mid = (HERE / "responses_stream.sse").read_bytes().split(b"\n\n")[:7]  # 3 deltas
    body = b"\n\n".join(mid) + b"\n\n" + sse_bytes([("response.failed", failed)])
    got = read("responses", body, 11)
    assert got.error == "upstream went away" and got.text == "# A mock"
    bare = sse_bytes([("error", {"type": "error", "code": "x", "message": "bad input"})])
    assert read("responses", bare, 4).error == "bad input"
    assert read("chat", b"data: {not json\n\n", 4).error == "unreadable event: {not json"


def test_each_api_gets_its_own_body_and_headers() -> None:
    prompt = Prompt("claude", "hi", system="be brief", temperature=0.2)
    chat = FORMATS["chat"].build(prompt)
    assert chat["messages"][0] == {"role": "system", "content": "be brief"}
    assert chat["stream_options"] == {"include_usage": True}
    messages = FORMATS["messages"].build(prompt)
    assert messages == {
        "model": "claude", "max_tokens": 1024, "stream": True, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
    }  # fmt: skip
    responses = FORMATS["responses"].build(prompt)
    assert responses == {
        "model": "claude", "stream": True, "store": False, "instructions": "be brief",
        "input": [{"role": "user", "content": "hi"}], "temperature": 0.2,
    }  # fmt: skip
    assert "system" not in FORMATS["messages"].build(Prompt("claude", "hi"))
    assert [f.path for f in FORMATS.values()] == [
        "/v1/chat/completions", "/v1/messages", "/v1/responses",
    ]  # fmt: skip
    assert FORMATS["messages"].headers("sk-1") == {
        "x-api-key": "sk-1", "anthropic-version": "2023-06-01",
    }  # fmt: skip
    assert FORMATS["responses"].headers("sk-1") == {"Authorization": "Bearer sk-1"}
    assert FORMATS["chat"].headers(None) == {}


def test_error_bodies_of_both_shapes() -> None:
    anthropic = {"type": "error", "error": {"type": "not_found_error", "message": "no model"}}
    assert error_message(404, orjson.dumps(anthropic)) == "HTTP 404: no model"
    openai = {"error": {"message": "bad key", "type": "invalid_request_error"}}
    assert error_message(401, orjson.dumps(openai)) == "HTTP 401: bad key"
    assert error_message(502, b"<html>") == "HTTP 502: <html>"
