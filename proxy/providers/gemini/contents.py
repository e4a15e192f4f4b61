"""OpenAI `messages` → Gemini `systemInstruction` and `contents` (pure, no I/O).

Owns the content translation (text, images, audio, files, tool calls, tool results) and the
turn rules Gemini keeps: roles `user` and `model`, one content per turn (neighbours of one
role merged), a function response named after the call it answers, no empty parts.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

import orjson

from proxy.errors import BadRequest

Part = dict[str, Any]
Content = dict[str, Any]

SIGNATURE_MARK = "__thought__"
"""Joins a tool call id and the call's thought signature (base64url), so a client that sends
the call back, as every OpenAI client does, returns the signature Gemini requires with it."""


def convert_messages(raw: Any) -> tuple[list[Part], list[Content]]:
    """Splits OpenAI messages into Gemini system parts and merged contents.

    Returns:
        (system text parts, contents). With no turn at all, the system text is the user turn
        (Gemini refuses a request without contents).
    Raises:
        BadRequest: a message or content part that cannot be expressed for Gemini.
    """
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    system: list[Part] = []
    contents: list[Content] = []
    names: dict[str, str] = {}
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise BadRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_user_parts(msg.get("content"), f"{where}.content", text_only=True))
        elif role == "user":
            _append(contents, "user", _user_parts(msg.get("content"), f"{where}.content"))
        elif role == "assistant":
            _append(contents, "model", _model_parts(msg, where, names))
        elif role == "tool":
            _append(contents, "user", [_function_response(msg, where, names)])
        else:
            raise BadRequest(f"{where}.role {role!r} is not supported.", param=f"{where}.role")
    if not contents and system:
        return [], [{"role": "user", "parts": system}]
    return system, contents


def split_tool_id(value: str) -> tuple[str, str | None]:
    """Returns (the id, the thought signature in Gemini's base64) of a tool call id we made."""
    head, mark, tail = value.partition(SIGNATURE_MARK)
    if not mark or not tail:
        return value, None
    padded = tail + "=" * (-len(tail) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return value, None
    return head, base64.b64encode(raw).decode()


def join_tool_id(call_id: str, signature: str | None) -> str:
    """Returns the OpenAI tool call id carrying `signature` (Gemini's base64), if any.

    Base64url without padding, so the id stays within `[A-Za-z0-9_-]` (what Anthropic allows,
    should the conversation move there).
    """
    if not signature:
        return call_id
    try:
        raw = base64.b64decode(signature)
    except (binascii.Error, ValueError):
        return call_id
    return call_id + SIGNATURE_MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _append(contents: list[Content], role: str, parts: list[Part]) -> None:
    if not parts:
        return  # an empty message is dropped; its neighbours may then merge
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": list(parts)})


def _user_parts(content: Any, where: str, *, text_only: bool = False) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or an array of parts.", param=where)
    parts: list[Part] = []
    for j, part in enumerate(content):
        converted = _user_part(part, f"{where}[{j}]", text_only)
        if converted is not None:
            parts.append(converted)
    return parts


def _user_part(part: Any, where: str, text_only: bool) -> Part | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise BadRequest(f"{where}.text must be a string.", param=where)
        return {"text": text} if text else None
    if text_only:
        raise BadRequest(f"{where}: only text parts are allowed here.", param=where)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return _media(url, where, "image/jpeg")
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
            raise BadRequest(f"{where}.input_audio.data must be a string.", param=where)
        fmt = str(audio.get("format") or "wav")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio["data"]}}
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data, str):
            return _media(data, where, "application/pdf")
        file_id = file.get("file_id") if isinstance(file, dict) else None
        if isinstance(file_id, str):
            return {"fileData": {"fileUri": file_id, "mimeType": "application/pdf"}}
        raise BadRequest(f"{where}.file needs file_data or file_id.", param=where)
    raise BadRequest(f"{where}: content part type {kind!r} is not supported.", param=where)


def _media(url: Any, where: str, default_type: str) -> Part:
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}: the url must be a non-empty string.", param=where)
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not (head.endswith(";base64") and sep and data):
            raise BadRequest(f"{where}: a data URL must be base64 encoded.", param=where)
        mime = head[len("data:") : -len(";base64")].split(";")[0].lower() or default_type
        return {"inlineData": {"mimeType": mime, "data": data}}
    # Gemini fetches file URIs itself (Files API, Cloud Storage, public URLs).
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return {"fileData": {"mimeType": guessed or default_type, "fileUri": url}}


def _model_parts(msg: dict[str, Any], where: str, names: dict[str, str]) -> list[Part]:
    content = msg.get("content")
    parts = _user_parts(content, f"{where}.content", text_only=True)
    calls = msg.get("tool_calls")
    if calls is None:
        return parts
    if not isinstance(calls, list):
        raise BadRequest(f"{where}.tool_calls must be an array.", param=f"{where}.tool_calls")
    for j, call in enumerate(calls):
        parts.append(_function_call(call, f"{where}.tool_calls[{j}]", names))
    return parts


def _function_call(call: Any, where: str, names: dict[str, str]) -> Part:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.function.name must be a non-empty string.", param=where)
    name = function["name"]
    raw_id = call.get("id")
    signature = None
    if isinstance(raw_id, str) and raw_id:
        names[raw_id] = name
        signature = split_tool_id(raw_id)[1]
    part: Part = {"functionCall": {"name": name, "args": _arguments(function, where)}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _arguments(function: dict[str, Any], where: str) -> dict[str, Any]:
    raw = function.get("arguments")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise BadRequest(
            f"{where}.function.arguments must be a JSON object.", param=f"{where}.function"
        )
    return args


def _function_response(msg: dict[str, Any], where: str, names: dict[str, str]) -> Part:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}.tool_call_id must be a non-empty string.", param=where)
    # Gemini matches a response to its call by name: the one the assistant turn used.
    name = names.get(call_id) or msg.get("name") or split_tool_id(call_id)[0]
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    if not isinstance(content, str):
        content = "" if content is None else orjson.dumps(content).decode()
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    # An object is the response as it is; anything else is the "output" Gemini reads.
    response = parsed if isinstance(parsed, dict) else {"output": content}
    return {"functionResponse": {"name": str(name), "response": response}}
