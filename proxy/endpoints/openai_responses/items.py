"""Responses `instructions` and `input` items → OpenAI chat `messages` (pure, no I/O).

Owns the item translation: messages of every role (`instructions`, `developer` and `system`
become one leading system message), `function_call` / `custom_tool_call` → assistant
`tool_calls` (consecutive calls merged into one message), their outputs → tool messages, and
the items dropped on the way (reasoning, hosted-tool calls).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.endpoints.openai_responses.tools import CUSTOM_ARGUMENT, flat_name
from proxy.errors import BadRequest, clip

Message = dict[str, Any]
Part = dict[str, Any]

# Items another model cannot use: reasoning (OpenAI-encrypted) and the calls and results of
# tools that are dropped in translation; call and output go together, so none is left alone.
_DROPPED = frozenset(
    {
        "reasoning",
        "compaction",
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "tool_search_call",
        "tool_search_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "computer_call",
        "computer_call_output",
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "mcp_approval_response",
    }
)
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})


def convert_input(instructions: Any, value: Any) -> list[Message]:
    """Returns the chat messages for `instructions` and `input`.

    Raises:
        BadRequest: `input` is missing or ill-typed, an item is unknown or refers to stored
            state (`item_reference`), or a field of an item is missing or ill-typed.
    """
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("'instructions' must be a string.", param="instructions")
    system = [instructions] if instructions else []
    if isinstance(value, str) and value:
        items: list[Any] = [{"role": "user", "content": value}]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise BadRequest("'input' is required: a string or a non-empty array.", param="input")
    out: list[Message] = []
    for i, item in enumerate(items):
        _item(item, i, system, out)
    if system:
        out.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return out


def _item(item: Any, i: int, system: list[str], out: list[Message]) -> None:
    # An item's path (`input[i]…`) is made only for an error: an agent's turn holds dozens.
    if not isinstance(item, dict):
        raise BadRequest(f"input[{i}] must be an object.", param=f"input[{i}]")
    kind = item.get("type", "message")
    if not isinstance(kind, str):
        raise BadRequest(f"input[{i}].type must be a string.", param=f"input[{i}].type")
    if kind == "message":
        _message(item, i, system, out)
    elif kind in ("function_call", "custom_tool_call"):
        _call(item, i, out)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        out.extend(_output(item, i))
    elif kind == "item_reference":
        raise BadRequest(
            f"input[{i}]: item_reference needs stored responses; this proxy is stateless, so "
            "send the whole item.",
            param=f"input[{i}]",
        )
    elif kind not in _DROPPED:
        where = f"input[{i}]"
        raise BadRequest(
            f"{where}: item type {clip(repr(kind))} is not supported.", param=f"{where}.type"
        )


def _message(item: dict[str, Any], i: int, system: list[str], out: list[Message]) -> None:
    role, content = item.get("role"), item.get("content")
    if role in ("system", "developer"):
        text = "\n\n".join(_texts(content, i, only_text=True))
        if text.strip():
            system.append(text)
    elif role == "user":
        parts = _parts(content, i, "content")
        if parts:
            out.append({"role": "user", "content": _joined(parts)})
    elif role == "assistant":
        text = "".join(_texts(content, i, only_text=False))
        if text:
            out.append({"role": "assistant", "content": text})
    else:
        raise BadRequest(
            f"input[{i}].role must be 'user', 'assistant', 'system' or 'developer', "
            f"got {clip(repr(role))}.",
            param=f"input[{i}].role",
        )


def _listed(content: Any, i: int, field: str) -> list[Part]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        where = f"input[{i}].{field}"
        raise BadRequest(f"{where} must be a string or an array of parts.", param=where)
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            where = f"input[{i}].{field}[{j}]"
            raise BadRequest(f"{where} must be an object with a 'type'.", param=where)
    return content


def _texts(content: Any, i: int, *, only_text: bool) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for j, part in enumerate(_listed(content, i, "content")):
        kind = part["type"]
        text = part.get("refusal") if kind == "refusal" else part.get("text")
        if kind not in _TEXT_PARTS and (only_text or kind != "refusal"):
            where = f"input[{i}].content[{j}]"
            raise BadRequest(
                f"{where}: only text parts are allowed here, got {clip(repr(kind))}.",
                param=where,
            )
        if not isinstance(text, str):
            where = f"input[{i}].content[{j}]"
            raise BadRequest(f"{where}.text must be a string.", param=where)
        texts.append(text)
    return texts


def _parts(content: Any, i: int, field: str) -> list[Part]:
    """The chat parts of item `i`'s `field` (content, or a tool call's output)."""
    out: list[Part] = []
    for j, part in enumerate(_listed(content, i, field)):
        kind = part["type"]
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})  # the usual part, no path made
        else:
            out.append(_part(part, f"input[{i}].{field}[{j}]"))
    return out


def _part(part: Part, where: str) -> Part:
    kind = part["type"]
    if kind in _TEXT_PARTS:
        if not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}.text must be a string.", param=where)
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise BadRequest(
                f"{where}: only images given by image_url (a URL or data URL) can be sent here.",
                param=where,
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        return _file(part, where)
    raise BadRequest(
        f"{where}: content part type {clip(repr(kind))} is not supported.", param=where
    )


def _file(part: Part, where: str) -> Part:
    file: dict[str, Any] = {}
    if isinstance(part.get("file_data"), str):
        file["file_data"] = part["file_data"]
    elif isinstance(part.get("file_id"), str):
        file["file_id"] = part["file_id"]
    else:
        raise BadRequest(f"{where}: send the file as file_data (a data URL).", param=where)
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _joined(parts: list[Part]) -> str | list[Part]:
    # Plain text as a string: some OpenAI-compatible upstreams take no content arrays.
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _string(item: dict[str, Any], name: str, i: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        where = f"input[{i}].{name}"
        raise BadRequest(f"{where} must be a non-empty string.", param=where)
    return value


def _call(item: dict[str, Any], i: int, out: list[Message]) -> None:
    call_id, name = _string(item, "call_id", i), _string(item, "name", i)
    namespace = item.get("namespace") if isinstance(item.get("namespace"), str) else None
    if item["type"] == "custom_tool_call":
        raw = item.get("input", "")
        if not isinstance(raw, str):
            raise BadRequest(f"input[{i}].input must be a string.", param=f"input[{i}].input")
        arguments = orjson.dumps({CUSTOM_ARGUMENT: raw}).decode()
    else:
        arguments = item.get("arguments", "{}")
        if not isinstance(arguments, str):
            where = f"input[{i}].arguments"
            raise BadRequest(f"{where} must be a string.", param=where)
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": flat_name(namespace, name), "arguments": arguments},
    }
    if out and out[-1]["role"] == "assistant":
        out[-1].setdefault("tool_calls", []).append(call)  # one turn's calls: one message
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _output(item: dict[str, Any], i: int) -> list[Message]:
    call_id = _string(item, "call_id", i)
    output = item.get("output", "")
    if isinstance(output, dict) and isinstance(output.get("content"), str):
        output = output["content"]  # older Codex: {"content", "success"}
    if isinstance(output, str):
        return [{"role": "tool", "tool_call_id": call_id, "content": output}]
    parts = _parts(output, i, "output")
    texts = [p["text"] for p in parts if p["type"] == "text"]
    attached = [p for p in parts if p["type"] != "text"]
    text = "\n\n".join(texts)
    messages: list[Message] = [{"role": "tool", "tool_call_id": call_id, "content": text}]
    if attached:
        # OpenAI tool messages carry text only: images and files go into a user message.
        messages[0]["content"] = text or "(the output is in the attachment below)"
        head = {"type": "text", "text": f"Attachment to tool output {call_id}:"}
        messages.append({"role": "user", "content": [head, *attached]})
    return messages
