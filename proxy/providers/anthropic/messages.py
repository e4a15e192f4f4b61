"""OpenAI `messages` → Anthropic `system` blocks and alternating user/assistant turns.

Owns the content translation (text, images, PDFs, tool calls, tool results, thinking blocks)
and the turn rules Anthropic enforces: alternation, a user turn first, no empty text.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.errors import BadRequest

PLACEHOLDER_USER_TURN = "(continue)"
"""The user turn put first when a conversation has none before the assistant's (or none)."""

Block = dict[str, Any]
Turn = dict[str, Any]

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def convert_messages(raw: Any) -> tuple[list[Block], list[Turn]]:
    """Splits OpenAI messages into Anthropic system text blocks and merged turns.

    Returns:
        (system blocks, turns); turns alternate, start with a user turn, and are never empty.
    Raises:
        BadRequest: a message or content part that cannot be expressed for Anthropic.
    """
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    system: list[Block] = []
    turns: list[Turn] = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise BadRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_content_text(msg.get("content"), i))
        elif role == "user":
            _append(turns, "user", _with_cache_control(_user_blocks(msg, i), msg))
        elif role == "assistant":
            _append(turns, "assistant", _with_cache_control(_assistant_blocks(msg, i), msg))
        elif role == "tool":
            _append(turns, "user", _with_cache_control([_tool_result(msg, i)], msg))
        else:
            raise BadRequest(
                f"messages[{i}].role {role!r} is not supported.", param=f"messages[{i}].role"
            )
    return system, _finish_turns(turns)


def sanitize_tool_id(value: Any, where: str) -> str:
    """Returns the id with characters Anthropic refuses (outside `[a-zA-Z0-9_-]`) replaced.

    Raises:
        BadRequest: the id is missing or empty.
    """
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where} must be a non-empty string.", param=where)
    return _BAD_ID_CHARS.sub("_", value)


def _tool_id(value: Any, i: int, field: str) -> str:
    """`sanitize_tool_id` of a message's id, the field's path made only for an error."""
    if (
        isinstance(value, str)
        and value.isascii()
        and value.replace("-", "a").replace("_", "a").isalnum()
    ):
        return value  # the usual id (`call_…`, `toolu_…`): nothing to replace
    return sanitize_tool_id(value, f"messages[{i}].{field}")


def _append(turns: list[Turn], role: str, blocks: list[Block]) -> None:
    if not blocks:
        return  # an empty message is dropped; its neighbours may then merge
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _finish_turns(turns: list[Turn]) -> list[Turn]:
    for turn in turns:
        if turn["role"] == "user":
            # tool_result blocks must open the user turn that answers a tool_use turn
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    if turns and turns[-1]["role"] == "assistant":
        _strip_prefill(turns)
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [_text(PLACEHOLDER_USER_TURN)]})
    return turns


def _strip_prefill(turns: list[Turn]) -> None:
    # A final assistant turn is a prefill; Anthropic rejects one ending in whitespace.
    blocks = turns[-1]["content"]
    last = blocks[-1]
    if last.get("type") == "text":
        last["text"] = last["text"].rstrip()
        if not last["text"]:
            blocks.pop()
    if not blocks:
        turns.pop()


def _with_cache_control(blocks: list[Block], msg: dict[str, Any]) -> list[Block]:
    control = msg.get("cache_control")
    if isinstance(control, dict) and blocks:
        blocks[-1]["cache_control"] = control
    return blocks


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _text_part(part: dict[str, Any], where: str) -> Block | None:
    text = part.get("text", part.get("refusal"))
    if not isinstance(text, str):
        raise BadRequest(f"{where}.text must be a string.", param=where)
    if not text.strip():
        return None  # Anthropic refuses empty or whitespace-only text blocks
    block = _text(text)
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _text_only(content: Any, where: str) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content.strip() else []
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or an array of parts.", param=where)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise BadRequest(f"{here}: only text parts are allowed here.", param=here)
        block = _text_part(part, here)
        if block is not None:
            blocks.append(block)
    return blocks


def _content_text(content: Any, i: int) -> list[Block]:
    """`_text_only` of message `i`'s content; a string or none (the usual shapes) makes no
    path."""
    if isinstance(content, str):
        return [_text(content)] if content.strip() else []
    if content is None:
        return []
    return _text_only(content, f"messages[{i}].content")


def _user_blocks(msg: dict[str, Any], i: int) -> list[Block]:
    content = msg.get("content")
    where = f"messages[{i}].content"
    if not isinstance(content, list):
        return _text_only(content, where)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        block = _user_part(part, f"{where}[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _user_part(part: Any, where: str) -> Block | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return _text_part(part, where)
    if kind == "image_url":
        block = _image(part.get("image_url"), where)
    elif kind == "file":
        block = _document(part.get("file"), where)
    else:
        raise BadRequest(
            f"{where}: content part type {kind!r} is not supported by Anthropic.", param=where
        )
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _image(image: Any, where: str) -> Block:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequest(f"{where}.image_url.url must be a string.", param=where)
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, where)
    if media_type == "image/jpg":
        media_type = "image/jpeg"
    if media_type not in _IMAGE_TYPES:
        raise BadRequest(
            f"{where}: image type {media_type!r} is not supported by Anthropic "
            f"(use JPEG, PNG, GIF or WebP).",
            param=where,
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(file: Any, where: str) -> Block:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise BadRequest(f"{where}: only inline files (file.file_data) are supported.", param=where)
    media_type, data = _data_url(data_url, where)
    if media_type != "application/pdf":
        raise BadRequest(
            f"{where}: file type {media_type!r} is not supported (PDF only).", param=where
        )
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _data_url(url: str, where: str) -> tuple[str, str]:
    head, sep, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64") and sep and data):
        raise BadRequest(f"{where}: expected an http(s) URL or a base64 data URL.", param=where)
    return head[len("data:") : -len(";base64")].split(";")[0].lower(), data


def _assistant_blocks(msg: dict[str, Any], i: int) -> list[Block]:
    blocks = _thinking_blocks(msg.get("thinking_blocks"))
    blocks.extend(_content_text(msg.get("content"), i))
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise BadRequest(
            f"messages[{i}].tool_calls must be an array.", param=f"messages[{i}].tool_calls"
        )
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, i, j))
    return blocks


def _thinking_blocks(raw: Any) -> list[Block]:
    # Thinking blocks a client echoes back (LiteLLM's `thinking_blocks`), signatures intact.
    if not isinstance(raw, list):
        return []
    keep = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
    out: list[Block] = []
    for block in raw:
        fields = keep.get(str(block.get("type"))) if isinstance(block, dict) else None
        if fields and all(isinstance(block.get(f), str) for f in fields):
            out.append({"type": block["type"], **{f: block[f] for f in fields}})
    return out


def _tool_use(call: Any, i: int, j: int) -> Block:
    # Paths (`messages[i].tool_calls[j]…`) are made only for an error: an agent's history
    # holds dozens of calls.
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        where = f"messages[{i}].tool_calls[{j}]"
        raise BadRequest(f"{where}.function.name must be a string.", param=where)
    return {
        "type": "tool_use",
        "id": _tool_id(call.get("id"), i, f"tool_calls[{j}].id"),
        "name": function["name"],
        "input": _arguments(function.get("arguments"), i, j),
    }


def _arguments(raw: Any, i: int, j: int) -> dict[str, Any]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        where = _arguments_path(i, j)
        raise BadRequest(f"{where} is not valid JSON.", param=where) from None
    if not isinstance(value, dict):
        where = _arguments_path(i, j)
        raise BadRequest(f"{where} must be a JSON object.", param=where)
    return value


def _arguments_path(i: int, j: int) -> str:
    return f"messages[{i}].tool_calls[{j}].function.arguments"


def _tool_result(msg: dict[str, Any], i: int) -> Block:
    block: Block = {
        "type": "tool_result",
        "tool_use_id": _tool_id(msg.get("tool_call_id"), i, "tool_call_id"),
    }
    parts = _content_text(msg.get("content"), i)
    text = parts[0]["text"] if len(parts) == 1 else "\n".join(part["text"] for part in parts)
    if text:
        block["content"] = text
    return block
