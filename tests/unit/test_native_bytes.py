"""A passed-through body goes upstream as the client's bytes with only the model's value
replaced, and re-encoded whenever anything else changed or the bytes are ambiguous."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.providers.base import native_bytes, replace_model
from proxy.schema import NativeBody


def _native(raw: bytes) -> NativeBody:
    return NativeBody("anthropic_messages", orjson.loads(raw), raw)


def test_only_the_model_value_changes_and_the_rest_keeps_its_bytes() -> None:
    raw = b'{"model" : "claude-x", "max_tokens":  5,\n "messages":[{"role":"user","content":"hi"}]}'
    native = _native(raw)
    body = {**native.body, "model": "claude-sonnet-4-5"}
    sent = native_bytes(native, body)
    assert sent == raw.replace(b'"claude-x"', b'"claude-sonnet-4-5"')
    assert orjson.loads(sent) == body


def test_a_changed_value_is_encoded_again() -> None:
    raw = b'{"model":"claude-x","max_tokens":999999,"messages":[]}'
    native = _native(raw)
    body = {**native.body, "model": "claude-sonnet-4-5", "max_tokens": 64000}
    assert native_bytes(native, body) == orjson.dumps(body)


def test_an_added_or_dropped_key_is_encoded_again() -> None:
    raw = b'{"model":"claude-x","messages":[],"temperature":1}'
    native = _native(raw)
    added = {**native.body, "model": "m", "top_p": 0.5}
    dropped = {k: v for k, v in native.body.items() if k != "temperature"} | {"model": "m"}
    assert native_bytes(native, added) == orjson.dumps(added)
    assert native_bytes(native, dropped) == orjson.dumps(dropped)


def test_without_the_clients_bytes_the_body_is_encoded() -> None:
    body: dict[str, Any] = {"model": "m", "messages": []}
    assert native_bytes(NativeBody("openai_responses", {"model": "x", "messages": []}), body) == (
        orjson.dumps(body)
    )


@pytest.mark.parametrize(
    "raw",
    [
        # a nested key of the same name: which one is the top-level's is not plain in bytes
        b'{"metadata":{"model":"claude-x"},"model":"claude-x","messages":[]}',
        # a value "model" elsewhere, and the model not the first key
        b'{"tools":[{"name":"model"}],"model":"claude-x"}',
        # the model written with an escape orjson would not write
        b'{"model":"claude\\u002dx","messages":[]}',
        # the key written with an escape: the only literal "model" is a quoted string's end
        b'{"mo\\u0064el":"claude-x","messages":[{"content":"say \\"model\\": \\"claude-x\\""}]}',
    ],
)
def test_ambiguous_bytes_are_left_to_the_encoder(raw: bytes) -> None:
    assert replace_model(raw, orjson.loads(raw)["model"], "other") is None


def test_a_quote_inside_a_string_is_not_taken_for_the_key() -> None:
    raw = b'{"messages":[{"content":"x \\"model\\": \\"claude-x\\""}],"model":"claude-x"}'
    # two literal "model" tokens? No: the one in the string is \"model\" (escaped quotes)
    out = replace_model(raw, "claude-x", "upstream")
    assert out is not None
    doc = orjson.loads(out)
    assert doc["model"] == "upstream"
    assert doc["messages"][0]["content"] == 'x "model": "claude-x"'


def test_a_first_key_model_is_the_top_level_one_whatever_follows() -> None:
    raw = b'{ "model":"claude-x","metadata":{"model":"claude-x"},"messages":[]}'
    out = replace_model(raw, "claude-x", "upstream")
    assert out is not None
    assert orjson.loads(out) == {"model": "upstream", "metadata": {"model": "claude-x"},
                                 "messages": []}  # fmt: skip
