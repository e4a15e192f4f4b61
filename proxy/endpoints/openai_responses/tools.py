"""Responses `tools` and `tool_choice` → OpenAI chat function tools (pure, no I/O).

Owns the tool table: `function` tools map one to one; `custom` (freeform, such as Codex's
`apply_patch`) become a function with one string argument, `input`; `namespace` tools are
flattened to `namespace__name` (Codex's canonical flat name); hosted tools (web_search,
tool_search, file_search, ...) are dropped, since only OpenAI runs them. The table maps each
flat name back to how the client defined it, so calls are rendered as the client expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import orjson

from proxy.endpoints.openai_chat import shared_conversion
from proxy.errors import BadRequest
from proxy.schema import SharedTools

CUSTOM_ARGUMENT = "input"
"""The one string argument a custom tool gets as a function."""


class ToolRef(NamedTuple):
    """How the client defined a tool that the upstream sees as the function `flat_name`
    (a tuple: it is made for each of an agent's tools on every turn)."""

    kind: Literal["function", "custom"]
    name: str
    namespace: str | None = None


ToolTable = Mapping[str, ToolRef]


def flat_name(namespace: str | None, name: str) -> str:
    """Returns the function name for `name` in `namespace` (`ns__name`; `name` without one)."""
    if not namespace:
        return name
    return f"{namespace.rstrip('_')}__{name.lstrip('_')}"


def convert_tools(value: Any) -> tuple[list[dict[str, Any]], dict[str, ToolRef]]:
    """Returns the chat tools and the table of flat name → client definition.

    Raises:
        BadRequest: `tools` is not an array, or a function, custom or namespace tool lacks a
            name or has ill-typed fields.
    """
    if value is None:
        return [], {}
    if not isinstance(value, list):
        raise BadRequest("'tools' must be an array.", param="tools")
    tools: list[dict[str, Any]] = []
    table: dict[str, ToolRef] = {}
    for i, tool in enumerate(value):
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            where = f"tools[{i}]"
            namespace = _name(tool, where)
            children = tool.get("tools")
            if not isinstance(children, list):
                raise BadRequest(f"{where}.tools must be an array.", param=f"{where}.tools")
            for j, child in enumerate(children):
                _add(child, i, j, namespace, tools, table)
        else:
            _add(tool, i, None, None, tools, table)
    return tools, table


def _shared_tools(value: Any) -> tuple[list[dict[str, Any]], Mapping[str, ToolRef]]:
    tools, table = convert_tools(value)
    return SharedTools(tools), table


convert_tools_json = shared_conversion("tools", _shared_tools)
"""`convert_tools` for the JSON bytes of `tools` (checked JSON, left undecoded by the parse),
made once per distinct list (`shared_conversion`): the requests that send the same bytes share
the chat tools (`SharedTools`, read-only), as they share the Anthropic blocks built from them.
Raises BadRequest as `convert_tools` does, or for a list nested too deeply."""


def _add(
    tool: Any,
    i: int,
    j: int | None,
    namespace: str | None,
    tools: list[dict[str, Any]],
    table: dict[str, ToolRef],
) -> None:
    """Adds tool `tools[i]` (or `tools[i].tools[j]` of a namespace); its path is made only
    for an error."""
    if not isinstance(tool, dict):
        where = _path(i, j)
        raise BadRequest(f"{where} must be an object.", param=where)
    kind = tool.get("type")
    if kind not in ("function", "custom"):
        return  # a hosted tool: only OpenAI runs it
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        name = _name(tool, _path(i, j))  # raises
    flat = flat_name(namespace, name)
    function: dict[str, Any] = {"name": flat}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if kind == "function":
        parameters = tool.get("parameters")
        if not isinstance(parameters, dict):
            parameters = _parameters(parameters, _path(i, j))
        function["parameters"] = parameters
        if tool.get("strict") is True:
            function["strict"] = True
    else:
        function["parameters"] = _custom_parameters(tool.get("format"))
    tools.append({"type": "function", "function": function})
    table[flat] = ToolRef(kind, name, namespace)


def _path(i: int, j: int | None) -> str:
    return f"tools[{i}]" if j is None else f"tools[{i}].tools[{j}]"


def _name(tool: Mapping[str, Any], where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string.", param=f"{where}.name")
    return name


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}.parameters must be an object.", param=f"{where}.parameters")
    return value


def _custom_parameters(fmt: Any) -> dict[str, Any]:
    description = "The tool's raw input, free-form text."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else "lark"
        definition = fmt.get("definition") if isinstance(fmt.get("definition"), str) else ""
        description = f"The tool's raw input, following this {syntax} grammar:\n{definition}"
    return {
        "type": "object",
        "properties": {CUSTOM_ARGUMENT: {"type": "string", "description": description}},
        "required": [CUSTOM_ARGUMENT],
        "additionalProperties": False,
    }


def convert_tool_choice(value: Any) -> Any:
    """Returns the chat `tool_choice` for a Responses one (None when there is none).

    A choice of a hosted tool, which is dropped, becomes `auto`.

    Raises:
        BadRequest: an unknown string, or a function/custom choice without a name.
    """
    if value is None or value in ("auto", "none", "required"):
        return value
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(kind, str):
        raise BadRequest(
            "tool_choice must be 'auto', 'none', 'required' or an object with a 'type'.",
            param="tool_choice",
        )
    if kind in ("function", "custom"):
        name = _name(value, "tool_choice")
        namespace = value.get("namespace") if isinstance(value.get("namespace"), str) else None
        return {"type": "function", "function": {"name": flat_name(namespace, name)}}
    if kind == "allowed_tools":
        return "required" if value.get("mode") == "required" else "auto"
    return "auto"


def custom_input(arguments: Any) -> str:
    """Returns a custom tool's raw input from the function arguments the upstream produced.

    `{"input": "..."}` gives its string; a JSON string or an object with one string value
    gives that string; anything else (the model wrote the raw input itself) is kept as is.
    """
    if not isinstance(arguments, str):
        return ""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict):
        if isinstance(value.get(CUSTOM_ARGUMENT), str):
            return str(value[CUSTOM_ARGUMENT])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
    return value if isinstance(value, str) else arguments
