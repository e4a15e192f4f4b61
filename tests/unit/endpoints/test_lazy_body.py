"""A passed-through body parsed lazily (`load_body_lazily`): its bulk fields stay bytes, yet the
body is checked as `load_body` checks it, written back as it came, and decoded whole for what
reads every value (a deferred translation, the stored bodies, the request log's tool count)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.endpoints import anthropic_messages, openai_responses
from proxy.endpoints.openai_chat import MAX_DEPTH, decode_lazy, load_body, load_body_lazily
from proxy.endpoints.params import client_params
from proxy.errors import BadRequest
from proxy.schema import NativeBody

_SPEC = importlib.util.spec_from_file_location(
    "agent_payloads", Path(__file__).resolve().parents[3] / "bench" / "agent_payloads.py"
)
assert _SPEC is not None and _SPEC.loader is not None
ap = importlib.util.module_from_spec(_SPEC)  # the benchmark's agent-sized bodies
_SPEC.loader.exec_module(ap)

RESPONSES = ("input", "tools")
_HI = b'[{"role": "user", "content": "hi"}]'


def _error(raw: bytes, lazy: tuple[str, ...]) -> str:
    with pytest.raises(BadRequest) as caught:
        load_body_lazily(raw, lazy)
    return caught.value.message


def _full_error(raw: bytes) -> str:
    with pytest.raises(BadRequest) as caught:
        load_body(raw)
    return caught.value.message


@pytest.mark.parametrize(
    ("maker", "lazy"),
    [(ap.responses_body, RESPONSES), (ap.messages_body, ("messages",))],
)
def test_an_agent_body_round_trips(maker: Any, lazy: tuple[str, ...]) -> None:
    raw = orjson.dumps(maker("m"))
    body, bulk = load_body_lazily(raw, lazy)
    assert sorted(bulk) == sorted(lazy)
    for name in lazy:
        assert isinstance(body[name], orjson.Fragment)  # not decoded
    assert orjson.loads(orjson.dumps(body)) == load_body(raw)  # written back as it came
    assert decode_lazy(body, bulk) == load_body(raw)
    assert NativeBody("x", body, raw, bulk).decoded() == load_body(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1, 2]",
        b'{"model": "m", "input": [1, 2,, 3]}',  # bad JSON inside the skimmed field
        b'{"model": "m", "input": "\xff\xfe"}',  # bad UTF-8 inside it
        b'{"model": "m", "input": [] } trailing',
        b'{"model": "m", "input": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"model": "m", "metadata": ' + b"[" * 230 + b"]" * 230 + b"}",  # a decoded field
        b'{"model": "m", "metadata": 1e400, "input": []}',  # msgspec takes it, orjson not
        b'{"model": "m", "metadata": ' + b"[" * 1100 + b"]" * 1100 + b"}",
    ],
)
def test_bad_bodies_get_the_same_400_as_a_full_parse(raw: bytes) -> None:
    assert _error(raw, RESPONSES) == _full_error(raw)


def test_a_deep_bulk_field_is_depth_checked_when_decoded() -> None:
    raw = b'{"model": "m", "input": ' + b"[" * (MAX_DEPTH + 20) + b"]" * (MAX_DEPTH + 20) + b"}"
    body, bulk = load_body_lazily(raw, RESPONSES)  # skimmed: the upstream reads it
    with pytest.raises(BadRequest, match="nested too deeply"):
        decode_lazy(body, bulk)


def test_responses_pass_through_defers_its_translation_and_counts_its_tools() -> None:
    raw = orjson.dumps(ap.responses_body("m"))
    eager, _, _ = openai_responses.parse(raw, {})
    req, _, info = openai_responses.parse(raw, {}, translate=False)
    assert set(info.bulk) == set(RESPONSES)
    assert req.pending is not None
    req.settle()
    assert req.body == eager.body  # the deferred translation decodes the skimmed fields
    tools = len(ap.responses_body("m")["tools"])
    assert client_params(info.body, info.bulk)["tools"] == tools
    assert "tools" not in client_params(info.body)  # without the bytes it cannot count


def test_responses_pass_through_still_refuses_tools_that_are_not_a_list() -> None:
    raw = orjson.dumps({"model": "m", "input": "hi", "tools": {"a": 1}})
    with pytest.raises(BadRequest, match="'tools' must be an array") as caught:
        openai_responses.parse(raw, {}, translate=False)
    assert caught.value.param == "tools"


def test_messages_pass_through_skims_messages_unless_they_hold_thinking() -> None:
    body = ap.messages_body("m")
    _, _, info = anthropic_messages.parse(orjson.dumps(body), {}, translate=False)
    assert set(info.bulk) == {"messages", "tools"}
    thinking = {"type": "thinking", "thinking": "hm", "signature": ""}
    body["messages"].append({"role": "assistant", "content": [thinking]})
    _, _, info = anthropic_messages.parse(orjson.dumps(body), {}, translate=False)
    assert info.bulk == {}  # decoded, so that unsigned thinking is left out upstream
    assert isinstance(info.body["messages"], list)


def test_messages_pass_through_refuses_messages_that_are_not_a_list() -> None:
    raw = orjson.dumps({"model": "m", "max_tokens": 5, "messages": {"role": "user"}})
    with pytest.raises(BadRequest, match="'messages' is required") as caught:
        anthropic_messages.parse(raw, {}, translate=False)
    assert caught.value.param == "messages"


@pytest.mark.parametrize(
    "value",
    [b"[1e400]", b'[{"a": -1e999}]'],  # JSON, yet out of the range orjson reads
)
def test_a_skimmed_field_orjson_cannot_read_is_a_400_where_it_is_read(value: bytes) -> None:
    for field in ("input", "tools"):
        raw = b'{"model": "m", "' + field.encode() + b'": ' + value + b"}"
        with pytest.raises(BadRequest, match="not valid JSON"):
            openai_responses.parse(raw, {})  # translated: the tools are read at once
        req, _, info = openai_responses.parse(raw, {}, translate=False)
        assert field in info.bulk  # skimmed: msgspec reads it
        with pytest.raises(BadRequest, match=f"not valid JSON.*in '{field}'"):
            req.settle()  # a deferred translation reads it when it must
        stored = NativeBody("openai_responses", info.body, raw, info.bulk).decoded()
        assert orjson.dumps(stored[field]) == value  # stored as the bytes came


@pytest.mark.parametrize(
    "tools",
    [
        b'{"name": "x"}',
        b"[1]",
        b'[{"input_schema": {}}]',
        b'[{"name": ""}]',
        b'[{"name": 7}]',
        b'[{"name": "x", "input_schema": []}]',
        b'[{"name": "x", "input_schema": "{}"}]',
        b'[{"name": "x", "type": "custom", "input_schema": 3}]',
        b'[{"name": "x"}, {"type": null, "name": null}]',
    ],
)
def test_messages_pass_through_refuses_bad_tools_as_a_full_parse_does(tools: bytes) -> None:
    raw = b'{"model": "m", "max_tokens": 5, "messages": ' + _HI + b', "tools": ' + tools + b"}"
    with pytest.raises(BadRequest) as full:
        anthropic_messages.parse(raw, {})
    with pytest.raises(BadRequest) as skimmed:
        anthropic_messages.parse(raw, {}, translate=False)
    assert skimmed.value.message == full.value.message
    assert skimmed.value.param == full.value.param


def test_messages_pass_through_refuses_tools_orjson_cannot_read() -> None:
    raw = b'{"model": "m", "max_tokens": 5, "messages": ' + _HI + b', "tools": [{"type": 1e400}]}'
    with pytest.raises(BadRequest, match="not valid JSON.*in 'tools'"):
        anthropic_messages.parse(raw, {}, translate=False)


def test_messages_pass_through_skims_good_tools_and_sends_them_as_they_came() -> None:
    tools = (
        b'[{"name": "a", "input_schema": {"type": "object"}}, {"name": "b"},'
        b' {"type": "web_search_20250305", "name": "web_search"},'
        b' {"type": "custom", "name": "c", "input_schema": null, "defer_loading": true}]'
    )
    raw = b'{"model": "m", "max_tokens": 5, "messages": ' + _HI + b', "tools": ' + tools + b"}"
    req, _, info = anthropic_messages.parse(raw, {}, translate=False)
    assert info.bulk["tools"] == tools
    assert orjson.dumps(info.body["tools"]) == tools
    assert client_params(info.body, info.bulk)["tools"] == 4
    req.settle()  # the deferred translation reads them
    assert [t["function"]["name"] for t in req.body["tools"]] == ["a", "b", "c"]
