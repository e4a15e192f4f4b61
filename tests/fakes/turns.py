"""Reading an agent's request in any of the three wire formats: which tools it offers and
whether its latest turn carries a tool result. `decide` turns a ToolLoop into the Reply for one
request.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.exchange import Exchange, content_text
from tests.fakes.steps import Reply, ToolLoop

RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")
RESULT_CHARS = 300
"""How much of a tool result `{result}` quotes (whitespace collapsed)."""


def decide(loop: ToolLoop, exchange: Exchange) -> Reply:
    """Returns: the reply `loop` gives this request (see steps.tool_loop)."""
    result = tool_result(exchange)
    if result is not None:
        flat = " ".join(result.split())[:RESULT_CHARS]
        return Reply(content=loop.final.replace("{result}", flat))
    offered = offered_tools(exchange)
    for name, arguments in loop.calls:
        if name not in offered:
            continue
        call: dict[str, Any] = {"name": name, "arguments": arguments}
        if isinstance(arguments, str):  # freeform input: as is to a custom tool, else wrapped
            call = {"name": name, "input": arguments}
            if offered[name] != "custom":
                call["arguments"] = {_string_parameter(exchange, name): arguments}
        return Reply(tool_calls=(call,), reasoning=loop.reasoning)
    return Reply(content=loop.other)


def _string_parameter(exchange: Exchange, name: str) -> str:
    """Returns: the first string parameter of tool `name` (where a translator put a custom
    tool's freeform input), else "input"."""
    for tool in exchange.body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if function.get("name") != name:
            continue
        schema = function.get("input_schema") or function.get("parameters") or {}
        properties = schema.get("properties") if isinstance(schema, dict) else None
        for key, spec in (properties or {}).items():
            if isinstance(spec, dict) and spec.get("type") == "string":
                return str(key)
    return "input"


def offered_tools(exchange: Exchange) -> dict[str, str]:
    """Returns: tool name -> kind ("function", "custom", or "namespace:<name>" for a function
    nested in a Responses `namespace` tool) for every named tool the request offers."""
    tools = exchange.body.get("tools")
    found: dict[str, str] = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found[function["name"]] = "function"  # Chat Completions
        elif tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            for inner in tool["tools"]:
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    found[inner["name"]] = f"namespace:{tool.get('name')}"
        elif isinstance(tool.get("name"), str):
            found[tool["name"]] = "custom" if tool.get("type") == "custom" else "function"
    return found


def tool_result(exchange: Exchange) -> str | None:
    """Returns: the text of the tool results that end the conversation (system and developer
    messages after them aside), or None when it ends otherwise."""
    if exchange.path == RESPONSES:
        return _responses_result(exchange.body.get("input"))
    messages = exchange.body.get("messages")
    if not isinstance(messages, list):
        return None
    if exchange.path.startswith(MESSAGES):
        return _messages_result(messages)
    return _chat_result(messages)


def _chat_result(messages: list[Any]) -> str | None:
    texts: list[str] = []
    for message in reversed(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            texts.append(content_text(message.get("content")))
        elif role not in ("system", "developer"):
            break
    return " ".join(reversed(texts)) if texts else None


def _messages_result(messages: list[Any]) -> str | None:
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [
            b
            for b in (content if isinstance(content, list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        return " ".join(content_text(b.get("content")) for b in blocks) if blocks else None
    return None


def _responses_result(items: Any) -> str | None:
    texts: list[str] = []
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        if item.get("type") in TOOL_OUTPUTS:
            output = item.get("output")
            texts.append(output if isinstance(output, str) else _parts_text(output))
        elif item.get("role") not in ("system", "developer"):
            break
    return " ".join(reversed(texts)) if texts else None


def _parts_text(output: Any) -> str:
    if isinstance(output, list):
        return " ".join(
            p["text"] for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return json.dumps(output)
