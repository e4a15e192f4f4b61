"""OpenAI chat body → Bedrock Converse body (pure, no I/O).

The request is first made an Anthropic Messages body (`anthropic.request.build_body`: the
same turn rules, tool and tool_choice mapping, response_format as a forced tool, refused or
dropped parameters, max_tokens limits and thinking budgets), whose blocks map one to one onto
Converse's: text, image, document, toolUse, toolResult, reasoningContent and cachePoint.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import BadRequest
from proxy.providers.anthropic.request import build_body

Block = dict[str, Any]
_INFERENCE = (
    ("max_tokens", "maxTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("stop_sequences", "stopSequences"),
)
_CACHE_POINT: Block = {"cachePoint": {"type": "default"}}
_TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")


def is_anthropic(model: str) -> bool:
    """Whether a Bedrock model id (or inference profile) names an Anthropic model, which
    takes Anthropic's own fields (thinking, top_k) in `additionalModelRequestFields`."""
    return "anthropic." in model


def converse_body(
    body: dict[str, Any], model: str, *, drop_params: bool, max_output: int | None
) -> dict[str, Any]:
    """Returns the Converse (or ConverseStream) body for an OpenAI chat body.

    A model other than Anthropic's gets `maxTokens` only when the client (or the deployment's
    `max_output_tokens`) set one: each Bedrock model has its own default and maximum.

    Raises:
        BadRequest: as `build_body`, or an image given by URL (Converse takes bytes only).
    """
    anthropic = is_anthropic(model)
    asked = any(body.get(field) for field in _TOKEN_FIELDS)
    msg = build_body(body, model, stream=False, drop_params=drop_params, max_output=max_output)
    out: dict[str, Any] = {"messages": [_turn(turn) for turn in msg["messages"]]}
    system = _system(msg.get("system"))
    if system:
        out["system"] = system
    inference = {dst: msg[src] for src, dst in _INFERENCE if src in msg}
    if not anthropic and not asked and max_output is None:
        inference.pop("maxTokens", None)
    if inference:
        out["inferenceConfig"] = inference
    if msg.get("tools"):
        out["toolConfig"] = _tool_config(msg["tools"], msg.get("tool_choice"))
    extra = {k: msg[k] for k in ("thinking", "top_k") if k in msg} if anthropic else {}
    if extra:
        out["additionalModelRequestFields"] = extra
    return out


def _system(system: Any) -> list[Block]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    out: list[Block] = []
    for block in system or []:
        out.append({"text": block["text"]})
        if "cache_control" in block:
            out.append(dict(_CACHE_POINT))
    return out


def _turn(turn: dict[str, Any]) -> dict[str, Any]:
    content: list[Block] = []
    for block in turn["content"]:
        content.append(_block(block))
        if "cache_control" in block:
            content.append(dict(_CACHE_POINT))
    return {"role": turn["role"], "content": content}


def _block(block: Block) -> Block:
    kind = block["type"]
    if kind == "text":
        return {"text": block["text"]}
    if kind == "tool_use":
        return {
            "toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}
        }
    if kind == "tool_result":
        text = block.get("content")
        result: Block = {
            "toolUseId": block["tool_use_id"],
            "content": [{"text": text if isinstance(text, str) and text else "-"}],
        }
        if block.get("is_error"):
            result["status"] = "error"
        return {"toolResult": result}
    if kind == "thinking":
        text = {"text": block["thinking"], "signature": block["signature"]}
        return {"reasoningContent": {"reasoningText": text}}
    if kind == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block["data"]}}
    return _media(block)


def _media(block: Block) -> Block:
    source = block["source"]
    if source.get("type") != "base64":
        raise BadRequest("Bedrock takes images as base64 data URLs, not links.", param="messages")
    fmt = str(source["media_type"]).split("/", 1)[1]
    if block["type"] == "image":
        return {"image": {"format": fmt, "source": {"bytes": source["data"]}}}
    return {"document": {"format": fmt, "name": "document", "source": {"bytes": source["data"]}}}


def _tool_config(tools: list[Block], choice: dict[str, Any] | None) -> dict[str, Any]:
    specs = []
    for tool in tools:
        spec: Block = {"name": tool["name"], "inputSchema": {"json": tool["input_schema"]}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        specs.append({"toolSpec": spec})
    out: dict[str, Any] = {"tools": specs}
    kind = choice.get("type") if choice else None
    if kind == "any":
        out["toolChoice"] = {"any": {}}
    elif kind == "tool" and choice is not None:
        out["toolChoice"] = {"tool": {"name": choice["name"]}}
    elif kind == "auto":
        out["toolChoice"] = {"auto": {}}
    return out
