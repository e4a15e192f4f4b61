"""Anthropic `system` and `messages[]` → OpenAI chat `messages` (pure, no I/O).

Owns the block translation: text, images, documents, `tool_use` → assistant `tool_calls`,
`tool_result` → tool messages, and what is dropped on the way (thinking blocks, server-tool
blocks, `cache_control`, Claude Code's billing header).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import BadRequest, clip

Block = dict[str, Any]
Message = dict[str, Any]

BILLING_PREFIX = "x-anthropic-billing-header:"
"""Claude Code's first system block: billing data for Anthropic, not an instruction. It can
change per request, which would defeat an OpenAI-side prompt cache, so it is left out."""

# Blocks with no meaning for another model: previous thinking (its signature is Anthropic's)
# and the calls and results of Anthropic-hosted tools.
_DROPPED = frozenset(
    {
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)


def convert_messages(system: Any, messages: Any) -> list[Message]:
    """Returns the OpenAI messages for a Messages request's `system` and `messages`.

    Every system text (the `system` field, then each `role: "system"` entry of `messages`, in
    order) goes into one leading system message: several upstreams refuse a system message
    after the first turn.

    Raises:
        BadRequest: a missing or ill-typed field, or a block that cannot be translated.
    """
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty array.", param="messages")
    system_texts = _system_texts(system, "system")
    out: list[Message] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"{where} must be an object.", param=where)
        role, content = msg.get("role"), msg.get("content")
        if role == "system":
            system_texts.extend(_system_texts(content, f"{where}.content"))
        elif role == "user":
            out.extend(_user(content, where))
        elif role == "assistant":
            out.extend(_assistant(content, where))
        else:
            raise BadRequest(
                f"{where}.role must be 'user' or 'assistant', got {clip(repr(role))}.",
                param=f"{where}.role",
            )
    if system_texts:
        out.insert(0, {"role": "system", "content": "\n\n".join(system_texts)})
    return out


def blocks_of(content: Any, where: str) -> list[Block]:
    """Returns `content` as a list of typed blocks (a string is one text block).

    Raises:
        BadRequest: content is neither a string nor an array of objects with a `type`.
    """
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or an array of content blocks.", param=where)
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(
                f"{where}[{j}] must be an object with a 'type'.", param=f"{where}[{j}]"
            )
    return content


def _text_of(block: Block, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise BadRequest(f"{where}.text must be a string.", param=f"{where}.text")
    return text


def _system_texts(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    texts: list[str] = []
    for j, block in enumerate(blocks_of(value, where)):
        here = f"{where}[{j}]" if isinstance(value, list) else where
        if block["type"] != "text":
            raise BadRequest(
                f"{here}: only text blocks are allowed in a system prompt.", param=here
            )
        text = _text_of(block, here)
        if text.strip() and not text.startswith(BILLING_PREFIX):
            texts.append(text)
    return texts


def _user(content: Any, where: str) -> list[Message]:
    # Tool results first: OpenAI wants them right after the assistant's tool calls.
    tools: list[Message] = []
    parts: list[Block] = []
    for j, block in enumerate(blocks_of(content, f"{where}.content")):
        here = f"{where}.content[{j}]"
        if block["type"] == "tool_result":
            message, attached = _tool_result(block, here)
            tools.append(message)
            parts.extend(attached)
        elif block["type"] not in _DROPPED:
            parts.append(user_part(block, here))
    if parts:
        tools.append({"role": "user", "content": _joined(parts)})
    return tools


def _joined(parts: list[Block]) -> str | list[Block]:
    # Plain text as a string: some OpenAI-compatible upstreams take no content arrays.
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def user_part(block: Block, where: str) -> Block:
    """Returns the OpenAI content part for one user block (text, image, document).

    Raises:
        BadRequest: a block type or source that OpenAI chat cannot express.
    """
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _text_of(block, where)}
    if kind == "image":
        return _image(block.get("source"), f"{where}.source")
    if kind == "document":
        return _document(block, where)
    if kind == "search_result":
        return {"type": "text", "text": _search_result(block, where)}
    raise BadRequest(
        f"{where}: content block type {clip(repr(kind))} is not supported.", param=where
    )


def _source(source: Any, where: str) -> tuple[str, Block]:
    kind = source.get("type") if isinstance(source, dict) else None
    if not isinstance(source, dict) or not isinstance(kind, str):
        raise BadRequest(f"{where} must be an object with a 'type'.", param=where)
    return kind, source


def _base64(source: Block, where: str, default_type: str) -> str:
    data, media = source.get("data"), source.get("media_type", default_type)
    if not isinstance(data, str) or not data or not isinstance(media, str):
        raise BadRequest(f"{where}: base64 sources need 'media_type' and 'data'.", param=where)
    return f"data:{media};base64,{data}"


def _image(source: Any, where: str) -> Block:
    kind, src = _source(source, where)
    if kind == "base64":
        return {"type": "image_url", "image_url": {"url": _base64(src, where, "image/png")}}
    if kind == "url" and isinstance(src.get("url"), str):
        return {"type": "image_url", "image_url": {"url": src["url"]}}
    raise BadRequest(
        f"{where}: image source {clip(repr(kind))} cannot be translated; send base64 or a URL.",
        param=where,
    )


def _document(block: Block, where: str) -> Block:
    kind, src = _source(block.get("source"), f"{where}.source")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if kind == "base64":
        data_url = _base64(src, f"{where}.source", "application/pdf")
        return {
            "type": "file",
            "file": {"filename": title or "document.pdf", "file_data": data_url},
        }
    if kind == "text" and isinstance(src.get("data"), str):
        text = src["data"]
    elif kind == "content":
        inner = blocks_of(src.get("content"), f"{where}.source.content")
        text = "\n\n".join(b["text"] for b in inner if isinstance(b.get("text"), str))
    else:
        raise BadRequest(
            f"{where}.source: document source {clip(repr(kind))} cannot be translated; send it "
            "as base64 or text.",
            param=f"{where}.source",
        )
    return {"type": "text", "text": f"{title}\n\n{text}" if title else text}


def _search_result(block: Block, where: str) -> str:
    inner = blocks_of(block.get("content") or [], f"{where}.content")
    body = "\n\n".join(b["text"] for b in inner if isinstance(b.get("text"), str))
    head = " ".join(str(block[k]) for k in ("title", "source") if isinstance(block.get(k), str))
    return f"{head}\n\n{body}" if head else body


def _tool_result(block: Block, where: str) -> tuple[Message, list[Block]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}.tool_use_id must be a non-empty string.", param=where)
    texts, attached = _result_content(block.get("content"), f"{where}.content")
    text = "\n\n".join(texts)
    if attached:
        # OpenAI tool messages carry text only: images go into the user turn that follows.
        text = text or "(the result is in the attachment below)"
        attached.insert(0, {"type": "text", "text": f"Attachment to tool result {call_id}:"})
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, attached


def _result_content(content: Any, where: str) -> tuple[list[str], list[Block]]:
    if content is None:
        return [], []
    texts: list[str] = []
    attached: list[Block] = []
    for j, item in enumerate(blocks_of(content, where)):
        here = f"{where}[{j}]" if isinstance(content, list) else where
        kind = item["type"]
        if kind == "tool_reference":
            texts.append(f"(tool {item.get('tool_name', '')} is now available)")
        elif kind in ("image", "document"):
            part = user_part(item, here)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                attached.append(part)
        elif kind in ("text", "search_result"):
            texts.append(user_part(item, here)["text"])
    return texts, attached


def _assistant(content: Any, where: str) -> list[Message]:
    texts: list[str] = []
    calls: list[Block] = []
    for j, block in enumerate(blocks_of(content, f"{where}.content")):
        here = f"{where}.content[{j}]"
        if block["type"] == "text":
            texts.append(_text_of(block, here))
        elif block["type"] == "tool_use":
            calls.append(_tool_call(block, here))
        elif block["type"] not in _DROPPED:
            raise BadRequest(
                f"{here}: block type {clip(repr(block['type']))} is not allowed in an assistant "
                "turn.",
                param=here,
            )
    text = "\n\n".join(t for t in texts if t)
    if not text and not calls:
        return []  # thinking only: nothing another model can use
    message: Message = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_call(block: Block, where: str) -> Block:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}.id must be a non-empty string.", param=f"{where}.id")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string.", param=f"{where}.name")
    if not isinstance(args, dict):
        raise BadRequest(f"{where}.input must be an object.", param=f"{where}.input")
    arguments = orjson.dumps(args).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
