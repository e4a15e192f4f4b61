"""The sampling and shape parameters a client set, read from its own body in any of the three
wire formats (Chat Completions, Messages, Responses) and cut to small scalars, for the request
log: never message text, never a whole tool list."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import msgspec

MAX_CHARS = 40
"""Characters of any one string value kept (a client's `stop` or tool name is its own)."""
_SCALARS = (
    "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens",
    "max_output_tokens", "seed", "n", "reasoning_effort", "parallel_tool_calls", "stream",
)  # fmt: skip
"""Keys taken as they are when their value is a number, a bool or a string."""


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def client_params(
    body: Mapping[str, Any], bulk: Mapping[str, bytes] | None = None
) -> dict[str, Any]:
    """Returns the parameters `body` sets, in a fixed order of fixed keys: the scalars above;
    `stop` / `stop_sequences` (a string, or a list's count); `tools` (a count); `tool_choice`
    (`auto`, `function:name`, ...); `response_format` / `text.format` (its type);
    `reasoning.effort`; `thinking` (its type) and `thinking.budget_tokens`. O(keys): nothing
    is walked, every string cut to MAX_CHARS."""
    out: dict[str, Any] = {}
    for name in _SCALARS:
        value = body.get(name)
        if value is not None and (value := _scalar(value)) is not None:
            out[name] = value
    for name in ("stop", "stop_sequences"):
        stop = body.get(name)
        if isinstance(stop, str):
            out[name] = stop[:MAX_CHARS]
        elif isinstance(stop, list):
            out[name] = len(stop)
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = len(tools)
    elif bulk and "tools" in bulk:  # left undecoded (`load_body_lazily`): counted, not built
        with contextlib.suppress(msgspec.MsgspecError):  # not a list: the upstream refuses it
            out["tools"] = len(_ITEMS.decode(bulk["tools"]))
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    _typed(out, "response_format", body.get("response_format"))
    text = body.get("text")
    _typed(out, "text.format", text.get("format") if isinstance(text, Mapping) else None)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    if isinstance(effort, str):
        out["reasoning.effort"] = effort[:MAX_CHARS]
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping):
        _typed(out, "thinking", thinking)
        budget = _scalar(thinking.get("budget_tokens"))
        if isinstance(budget, int | float) and not isinstance(budget, bool):
            out["thinking.budget_tokens"] = budget
    return out


def _scalar(value: Any) -> bool | int | float | str | None:
    if isinstance(value, bool | int | float):
        return value
    return value[:MAX_CHARS] if isinstance(value, str) else None


def _tool_choice(choice: Any) -> str | None:
    """`"auto"` as is; an object as its type, with the tool it names (`function:get_weather`,
    `tool:search`, `any`)."""
    if isinstance(choice, str):
        return choice[:MAX_CHARS]
    if not isinstance(choice, Mapping):
        return None
    kind = choice.get("type")
    function = choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
    head = kind if isinstance(kind, str) else "?"
    return (f"{head}:{name}" if isinstance(name, str) else head)[:MAX_CHARS]


def _typed(out: dict[str, Any], key: str, value: Any) -> None:
    """Sets `out[key]` to the `type` of an object like `{"type": "json_schema", ...}`."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    if isinstance(kind, str):
        out[key] = kind[:MAX_CHARS]
