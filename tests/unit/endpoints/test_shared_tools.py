"""An agent's tools, sent unchanged on every turn, are converted once (`convert_tools_json`):
the requests that send the same bytes share the chat tools and the Anthropic blocks built
from them, and get exactly what converting their own tools would give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest

from proxy.endpoints import anthropic_messages, openai_responses
from proxy.endpoints.openai_chat import MAX_SHARED_BYTES
from proxy.endpoints.openai_responses.tools import convert_tools, convert_tools_json
from proxy.errors import BadRequest
from proxy.providers.anthropic.request import build_body
from proxy.schema import SharedTools

_SPEC = importlib.util.spec_from_file_location(
    "agent_payloads", Path(__file__).resolve().parents[3] / "bench" / "agent_payloads.py"
)
assert _SPEC is not None and _SPEC.loader is not None
ap = importlib.util.module_from_spec(_SPEC)  # the benchmark's agent-sized bodies
_SPEC.loader.exec_module(ap)


def _parse(body: dict[str, object]) -> tuple[dict[str, object], openai_responses.ResponsesRequest]:
    req, _, info = openai_responses.parse(orjson.dumps(body), {})
    return req.body, info


def test_the_same_tools_are_converted_once_and_equal_a_fresh_conversion() -> None:
    body = ap.responses_body("m")
    first, info = _parse(body)
    second, _ = _parse({**body, "input": "another turn"})
    assert isinstance(first["tools"], SharedTools)
    assert second["tools"] is first["tools"]  # shared, not converted again
    tools, table = convert_tools(body["tools"])
    assert list(first["tools"]) == tools
    assert dict(info.tools) == table
    assert info.bulk.keys() == {"tools"}  # the translated parse left only the tools undecoded


def test_other_tools_get_their_own_conversion() -> None:
    body = ap.responses_body("m")
    first, _ = _parse(body)
    fewer = {**body, "tools": body["tools"][:3]}
    other, info = _parse(fewer)
    assert other["tools"] is not first["tools"]
    assert len(other["tools"]) == 3 and len(info.tools) == 3


def test_anthropic_blocks_are_built_once_and_never_changed_by_a_request() -> None:
    chat, _ = _parse(ap.responses_body("m"))
    json_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    one = build_body({**chat, "response_format": json_format}, "claude-sonnet-4-5",
                     stream=False, drop_params=True)  # fmt: skip
    two = build_body(chat, "claude-sonnet-4-5", stream=False, drop_params=True)
    assert one["tools"][-1]["name"] == "json_output"  # appended to this request's list only
    assert len(two["tools"]) == len(chat["tools"])
    assert two["tools"][0] is one["tools"][0]  # the blocks themselves are shared
    fresh = build_body({**chat, "tools": list(chat["tools"])}, "claude-sonnet-4-5",
                       stream=False, drop_params=True)  # fmt: skip
    assert fresh["tools"] == two["tools"]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (b'{"type": "function"}', "'tools' must be an array"),
        (b'[{"type": "function", "parameters": {}}]', r"tools\[0\].name"),
        (b"[" + b"[" * 300 + b"]" * 300 + b"]", "nested too deeply"),
    ],
)
def test_a_bad_tool_list_is_refused_every_time(tools: bytes, message: str) -> None:
    for _ in range(2):  # an error is not kept: the second request is refused the same way
        with pytest.raises(BadRequest, match=message):
            convert_tools_json(tools)


def test_a_null_tool_list_is_no_tools() -> None:
    tools, table = convert_tools_json(b"null")
    assert list(tools) == [] and dict(table) == {}


def test_a_huge_tool_list_is_converted_each_time_never_kept() -> None:
    tool = {"type": "function", "name": "big", "parameters": {"type": "object"}}
    huge = [{**tool, "description": "x" * (MAX_SHARED_BYTES + 1)}]
    data = orjson.dumps(huge)
    first, _ = convert_tools_json(data)
    second, _ = convert_tools_json(data)
    assert first == second and first is not second
    small = orjson.dumps([tool])
    assert convert_tools_json(small)[0] is convert_tools_json(small)[0]


def test_messages_tools_are_converted_once_and_equal_a_fresh_conversion() -> None:
    body = ap.messages_body("m")
    first, _, _ = anthropic_messages.parse(orjson.dumps(body), {})
    later = {**body, "messages": [{"role": "user", "content": "another turn"}]}
    second, _, _ = anthropic_messages.parse(orjson.dumps(later), {})
    assert isinstance(first.body["tools"], SharedTools)
    assert second.body["tools"] is first.body["tools"]
    decoded, _, _ = anthropic_messages.parse(orjson.dumps({**body, "tools": body["tools"][:2]}), {})
    assert decoded.body["tools"] is not first.body["tools"]
    assert list(decoded.body["tools"]) == list(first.body["tools"])[:2]
