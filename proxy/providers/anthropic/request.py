"""OpenAI chat request body → Anthropic Messages request body (pure, no I/O).

Owns the parameter mapping: max_tokens defaults and clamping to the model's output limit,
sampling, stop sequences, tools and tool_choice, response_format (as a forced tool),
reasoning_effort (as thinking), tool-call history without tools (as text), and which OpenAI
parameters are dropped silently, dropped under drop_params, or refused with a 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.config.model_limits import known_max_output
from proxy.errors import BadRequest
from proxy.providers.anthropic.messages import Block, Turn, convert_messages
from proxy.providers.openai_params import refuse_shape_changing
from proxy.schema import SharedTools

JSON_TOOL = "json_output"
"""The forced tool that carries a `response_format` JSON answer."""
DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest `thinking.budget_tokens`."""


def build_body(
    body: dict[str, Any],
    model: str,
    *,
    stream: bool,
    drop_params: bool,
    max_output: int | None = None,
) -> dict[str, Any]:
    """Returns the Anthropic Messages body for an OpenAI chat body (model already resolved).

    `max_tokens` (or `max_completion_tokens`) above `max_output` (the deployment's
    `max_output_tokens`), else above the model's known maximum, is clamped to it; with none
    asked, that limit is sent (4096 for a model of unknown limit).

    Raises:
        BadRequest: a parameter Anthropic lacks that would change the answer's shape (unless
            `drop_params`), or a value that cannot be translated.
    """
    refuse_shape_changing(body, drop_params, "Anthropic")
    system, messages = convert_messages(body.get("messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}
    if system:
        cached = any("cache_control" in block for block in system)
        out["system"] = system if cached else "\n\n".join(b["text"] for b in system)
    tools, tool_choice = _tools(body)
    if tools:
        out["tools"] = tools
        if tool_choice:
            out["tool_choice"] = tool_choice
    else:
        _flatten_tool_history(messages)
    out.update(_sampling(body))
    budget = _thinking_budget(body, tool_choice, messages) if _thinks(model) else None
    _apply_limits(out, body, max_output or known_max_output(model), budget)
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if stream:
        out["stream"] = True
    return out


def max_tokens_for(model: str) -> int:
    """Returns the default `max_tokens` for an Anthropic model (4096 when unknown)."""
    return known_max_output(model) or DEFAULT_MAX_TOKENS


def _thinks(model: str) -> bool:
    # Claude 3 and 3.5 models refuse `thinking`; reasoning_effort is then only a hint.
    name = model.lower().replace(".", "-")
    return not ("claude-3-" in name and "3-7" not in name)


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI 0-2, Anthropic 0-1
    if isinstance(top_p, int | float) and not isinstance(top_p, bool) and "temperature" not in out:
        out["top_p"] = float(top_p)  # recent models refuse temperature and top_p together
    if isinstance(body.get("top_k"), int):
        out["top_k"] = body["top_k"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s.strip()]
    if stops:
        out["stop_sequences"] = stops
    return out


def _apply_limits(
    out: dict[str, Any], body: dict[str, Any], limit: int | None, budget: int | None
) -> None:
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if requested is not None and (
        isinstance(requested, bool) or not isinstance(requested, int) or requested < 1
    ):
        raise BadRequest("max_tokens must be a positive integer.", param="max_tokens")
    max_tokens = requested or limit or DEFAULT_MAX_TOKENS
    if limit is not None:
        max_tokens = min(max_tokens, limit)  # more than the model gives is Anthropic's 400
    if budget is not None and max_tokens <= budget:
        # thinking counts against max_tokens: keep the asked-for answer room on top of it
        max_tokens = min(max_tokens + budget, limit or max_tokens + budget)
    if budget is not None and budget >= max_tokens:
        # the limit leaves no room for this budget: think with half of what there is
        budget = max_tokens // 2 if max_tokens // 2 >= MIN_THINKING_BUDGET else None
    if budget is not None and budget < max_tokens:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        out.pop("temperature", None)  # thinking requires the default temperature and top_k
        out.pop("top_k", None)
        if out.get("top_p", 1.0) < 0.95:
            out.pop("top_p")
    out["max_tokens"] = max_tokens


def _thinking_budget(
    body: dict[str, Any], tool_choice: dict[str, Any] | None, messages: list[Turn]
) -> int | None:
    asked = _asked_budget(body)
    effort = body.get("reasoning_effort")
    if asked is None and (effort is None or effort == "none"):
        return None
    if asked is None and effort not in THINKING_BUDGETS:
        raise BadRequest(
            f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)}.",
            param="reasoning_effort",
        )
    if tool_choice and tool_choice["type"] in ("any", "tool"):
        return None  # Anthropic refuses thinking with a forced tool
    last = next((t for t in reversed(messages) if t["role"] == "assistant"), None)
    if (
        last
        and any(b["type"] == "tool_use" for b in last["content"])
        and last["content"][0]["type"] not in ("thinking", "redacted_thinking")
    ):
        return None  # mid tool loop without the signed thinking blocks: Anthropic would refuse
    return asked if asked is not None else THINKING_BUDGETS[str(effort)]


def _asked_budget(body: dict[str, Any]) -> int | None:
    """The budget of an Anthropic-style `thinking: {type: enabled, budget_tokens: N}` in the
    body (a deployment's default `thinking`), when it is a usable one."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= MIN_THINKING_BUDGET:
        return budget
    return None


def _tools(body: dict[str, Any]) -> tuple[list[Block], dict[str, Any] | None]:
    listed = body.get("tools") or []
    blocks = listed.derived.get("anthropic") if isinstance(listed, SharedTools) else None
    if blocks is None:
        blocks = [_tool(tool, i) for i, tool in enumerate(listed)]
        if isinstance(listed, SharedTools):  # the same tools as earlier requests: built once
            listed.derived["anthropic"] = blocks
    tools = list(blocks)
    choice = _tool_choice(body.get("tool_choice")) if tools else None
    json_tool = _json_tool(body.get("response_format"))
    if json_tool is not None:
        if not tools:
            choice = {"type": "tool", "name": JSON_TOOL}
        elif choice is None or choice["type"] == "auto":
            choice = {"type": "any"}
        tools.append(json_tool)
    if tools and body.get("parallel_tool_calls") is False and choice is None:
        choice = {"type": "auto"}
    if choice and choice["type"] != "none" and body.get("parallel_tool_calls") is False:
        choice["disable_parallel_tool_use"] = True
    return tools, choice


def _tool(tool: Any, i: int) -> Block:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
    ):
        where = f"tools[{i}]"
        raise BadRequest(f"{where}: only function tools with a name are supported.", param=where)
    schema = function.get("parameters")
    schema = dict(schema) if isinstance(schema, dict) else {"properties": {}}
    schema.setdefault("type", "object")
    out: Block = {"name": function["name"], "input_schema": schema}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    named = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(choice, str) and choice in named:
        return {"type": named[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise BadRequest(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
    )


def _json_tool(fmt: Any) -> Block | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema: Any = {"type": "object"}
    elif kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        schema = schema if isinstance(schema, dict) else {"type": "object"}
        if schema.get("type", "object") != "object":
            raise BadRequest(
                "response_format json_schema: the root must be an object.", param="response_format"
            )
    else:
        raise BadRequest(
            f"response_format type {kind!r} is not supported.", param="response_format"
        )
    return {
        "name": JSON_TOOL,
        "description": "Give the answer as JSON matching this schema.",
        "input_schema": {"type": "object", **schema},
    }


def _flatten_tool_history(messages: list[Turn]) -> None:
    """Rewrites tool_use / tool_result blocks as text, in place, for a request without tools.

    Anthropic refuses a request whose messages hold tool_use or tool_result blocks but that
    defines no tools, and agents send exactly that for their title and summary calls (the
    conversation so far, no tools). Text keeps every call's name, arguments and result where
    they were, so the model reads the same history; stub tool definitions would instead invite
    new tool calls the client cannot run, and would still be refused for an unanswered call or
    a tool loop without its signed thinking blocks. `cache_control` stays on its block.
    """
    names: dict[str, str] = {}
    for turn in messages:
        for i, block in enumerate(turn["content"]):
            if block["type"] == "tool_use":
                names[block["id"]] = block["name"]
                args = orjson.dumps(block["input"]).decode()
                text = f"[called tool {block['name']} with {args}]"
            elif block["type"] == "tool_result":
                name = names.get(block.get("tool_use_id", ""))
                head = f"[tool result from {name}]" if name else "[tool result]"
                text = f"{head} {block.get('content', '')}".rstrip()
            else:
                continue
            flat: Block = {"type": "text", "text": text}
            if "cache_control" in block:
                flat["cache_control"] = block["cache_control"]
            turn["content"][i] = flat
