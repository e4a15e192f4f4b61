"""Strict validation of Messages API request bodies, like the real API's 400s.

`problem(body)` names the first violation the way Anthropic does (`field.path: what is wrong`).
It takes what current Claude Code sends (../shared/agents.md §1.3): `output_config`,
`thinking: {"type": "adaptive"}` and `display`, and `{"role": "system"}` entries after the first
message (a leading one is still refused).
"""

from __future__ import annotations

import re
from typing import Any

ALLOWED = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "output_config",
}  # fmt: skip
COUNT_TOKENS_ALLOWED = {
    "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
    "context_management", "output_config",
}  # fmt: skip
BLOCK_TYPES = ("text", "image", "document", "tool_use", "tool_result", "thinking",
               "redacted_thinking")  # fmt: skip
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
REQUIRED: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "tool_result": (("tool_use_id", str),),
    "thinking": (("thinking", str), ("signature", str)),
    "redacted_thinking": (("data", str),),
}
MEDIA = ("image/jpeg", "image/png", "image/gif", "image/webp")


class InvalidBodyError(Exception):
    """One violation; its text is the error message to answer with."""


def problem(body: Any, *, count_tokens: bool = False) -> str | None:
    """Returns: the message of the first violation in `body` (a messages body, or with
    `count_tokens` a /v1/messages/count_tokens body), or None when it is valid."""
    try:
        _check(body, count_tokens)
    except InvalidBodyError as exc:
        return str(exc)
    return None


def _check(body: Any, count_tokens: bool = False) -> None:
    if not isinstance(body, dict):
        raise InvalidBodyError("Request body must be a JSON object")
    allowed = COUNT_TOKENS_ALLOWED if count_tokens else ALLOWED
    for name in body:
        if name not in allowed:
            raise InvalidBodyError(f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages") if count_tokens else ("model", "max_tokens", "messages"):
        if name not in body:
            raise InvalidBodyError(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise InvalidBodyError("model: Input should be a valid string")
    if count_tokens:
        _check_system(body.get("system"))
        _check_tools(body)
        _check_messages(body["messages"])
        return
    tokens = body["max_tokens"]
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        raise InvalidBodyError("max_tokens: Input should be a valid integer")
    if tokens < 1:
        raise InvalidBodyError("max_tokens: Input should be greater than or equal to 1")
    _check_options(body)
    _check_system(body.get("system"))
    _check_tools(body)
    _check_messages(body["messages"])


def _check_options(body: dict[str, Any]) -> None:
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidBodyError("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise InvalidBodyError("stop_sequences: Input should be a valid list of strings")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidBodyError(f"{name}: Input should be a valid number")
        if not 0 <= value <= 1:
            raise InvalidBodyError(f"{name}: Input should be less than or equal to 1")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidBodyError("metadata: Input should be a valid dictionary")
        extra = [k for k in metadata if k != "user_id"]
        if extra:
            raise InvalidBodyError(f"metadata.{extra[0]}: Extra inputs are not permitted")
    _check_thinking(body)


def _check_thinking(body: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in (
        "enabled",
        "disabled",
        "adaptive",
    ):
        raise InvalidBodyError("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise InvalidBodyError(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if budget >= body["max_tokens"]:
            raise InvalidBodyError("`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidBodyError("system: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidBodyError(f"system.{i}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str):
            raise InvalidBodyError(f"system.{i}.text: Field required")


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidBodyError("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise InvalidBodyError(f"tools.{i}: Input should be a valid dictionary")
            if tool.get("type") not in (None, "custom"):
                continue  # server tools (web_search_…, bash_…) carry no input_schema
            for name in ("name", "input_schema"):
                if name not in tool:
                    raise InvalidBodyError(f"tools.{i}.{name}: Field required")
            if not isinstance(tool["name"], str) or not TOOL_NAME.match(tool["name"]):
                raise InvalidBodyError(
                    f"tools.{i}.name: String should match pattern '{TOOL_NAME.pattern}'"
                )
            if not isinstance(tool["input_schema"], dict):
                raise InvalidBodyError(
                    f"tools.{i}.input_schema: Input should be a valid dictionary"
                )
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidBodyError(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    if kind == "tool" and not isinstance(choice.get("name"), str):
        raise InvalidBodyError("tool_choice.tool.name: Field required")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise InvalidBodyError("messages: Input should be a valid list")
    if not messages:
        raise InvalidBodyError("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidBodyError(f"messages.{i}: Input should be a valid dictionary")
    conversation = [i for i, m in enumerate(messages) if i == 0 or m.get("role") != "system"]
    for i in range(1, len(messages)):
        if i not in conversation:
            _check_system_entry(messages[i], i)
    previous_tool_ids: list[str] = []
    for n, i in enumerate(conversation):
        message = messages[i]
        _check_role(messages, conversation, n)
        last = n == len(conversation) - 1
        blocks = _check_content(message, i, last)
        if message["role"] == "user":
            _check_tool_results(blocks, previous_tool_ids, i)
            previous_tool_ids = []
        else:
            previous_tool_ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            if previous_tool_ids and not last:
                _require_answers(messages[conversation[n + 1]], previous_tool_ids, i)


def _check_system_entry(message: dict[str, Any], i: int) -> None:
    content = message.get("content")
    if isinstance(content, str) and content:
        return
    if isinstance(content, list) and content:
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise InvalidBodyError(f"messages.{i}.content.{j}.type: Input should be 'text'")
        return
    raise InvalidBodyError(f"messages.{i}: system messages must have non-empty text content")


def _check_role(messages: list[Any], conversation: list[int], n: int) -> None:
    i = conversation[n]
    role = messages[i].get("role")
    if role == "system":
        raise InvalidBodyError(
            'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
            'parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        raise InvalidBodyError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if i == 0 and role != "user":
        raise InvalidBodyError('messages: first message must use the "user" role')
    if n and messages[conversation[n - 1]].get("role") == role:
        raise InvalidBodyError(
            f'messages: roles must alternate between "user" and "assistant", but found multiple '
            f'"{role}" roles in a row'
        )


def _check_content(message: dict[str, Any], i: int, last: bool) -> list[dict[str, Any]]:
    """Returns: the message's content as blocks (a string becomes one text block)."""
    if "content" not in message:
        raise InvalidBodyError(f"messages.{i}.content: Field required")
    content = message["content"]
    empty_ok = last and message["role"] == "assistant"
    if isinstance(content, str):
        if not content and not empty_ok:
            raise InvalidBodyError(
                f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidBodyError(f"messages.{i}.content: Input should be a valid string or list")
    if not content and not empty_ok:
        raise InvalidBodyError(
            f"messages.{i}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )
    for j, block in enumerate(content):
        _check_block(block, f"messages.{i}.content.{j}", message["role"])
    return content


def _check_block(block: Any, where: str, role: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in BLOCK_TYPES:
        tags = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        raise InvalidBodyError(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected "
            f"tags: {tags}"
        )
    assert isinstance(block, dict)
    for name, typ in REQUIRED.get(kind, ()):
        if not isinstance(block.get(name), typ):
            raise InvalidBodyError(f"{where}.{kind}.{name}: Field required")
    if kind in ("tool_use", "thinking", "redacted_thinking") and role != "assistant":
        raise InvalidBodyError(f"{where}: `{kind}` blocks are only allowed in assistant messages")
    if kind == "tool_result" and role != "user":
        raise InvalidBodyError(f"{where}: `tool_result` blocks are only allowed in user messages")
    if kind == "image":
        _check_image(block, where)
    if kind == "tool_result" and not isinstance(block.get("content", ""), str | list):
        raise InvalidBodyError(
            f"{where}.tool_result.content: Input should be a valid string or list"
        )


def _check_image(block: dict[str, Any], where: str) -> None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        assert isinstance(source, dict)
        if source.get("media_type") not in MEDIA:
            raise InvalidBodyError(
                f"{where}.image.source.base64.media_type: Input should be one of {MEDIA}"
            )
        if not isinstance(source.get("data"), str):
            raise InvalidBodyError(f"{where}.image.source.base64.data: Field required")
    elif kind == "url":
        assert isinstance(source, dict)
        if not isinstance(source.get("url"), str):
            raise InvalidBodyError(f"{where}.image.source.url.url: Field required")
    else:
        raise InvalidBodyError(
            f"{where}.image.source: Input tag '{kind}' does not match 'base64', 'url'"
        )


def _check_tool_results(blocks: list[dict[str, Any]], tool_ids: list[str], i: int) -> None:
    seen_other = False
    for j, block in enumerate(blocks):
        if block.get("type") != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise InvalidBodyError(
                f"messages.{i}.content.{j}: `tool_result` blocks must come first in the user "
                "message content, before any other block"
            )
        if block["tool_use_id"] not in tool_ids:
            raise InvalidBodyError(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )


def _require_answers(next_message: Any, tool_ids: list[str], i: int) -> None:
    content = next_message.get("content") if isinstance(next_message, dict) else None
    answered = {
        b.get("tool_use_id")
        for b in (content if isinstance(content, list) else [])
        if isinstance(b, dict) and b.get("type") == "tool_result"
    }
    missing = [t for t in tool_ids if t not in answered]
    if missing:
        raise InvalidBodyError(
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
            "`tool_result` block in the next message."
        )
