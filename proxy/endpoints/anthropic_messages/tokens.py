"""`POST /v1/messages/count_tokens` answered by estimate: about four characters a token.

Counts only what the client sent (system, messages, tools), never anything the proxy would add,
so Claude Code's per-entry `/context` counts are not inflated. Previous thinking is not counted
(Anthropic drops it from the context); an image or a PDF counts a flat amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.endpoints.anthropic_messages.request import model_of
from proxy.endpoints.openai_chat import load_body
from proxy.errors import BadRequest

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
"""Anthropic's estimate for an image near its size limit (width × height / 750)."""
DOCUMENT_TOKENS_PER_MB = 20_000
"""A rough PDF estimate: text and page images, per megabyte of file."""
_SKIPPED = frozenset({"thinking", "redacted_thinking"})


def count_tokens(raw: bytes) -> tuple[str, bytes]:
    """Estimates a count_tokens request.

    Returns:
        (the requested model, the answer JSON `{"input_tokens": N}`).

    Raises:
        BadRequest: the body is not JSON, or `model` or `messages` is missing or ill-typed.
    """
    body = load_body(raw)
    model = model_of(body)
    if not isinstance(body.get("messages"), list):
        raise BadRequest("'messages' is required and must be an array.", param="messages")
    return model, orjson.dumps({"input_tokens": estimate_tokens(body)})


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Returns the estimated input tokens of a Messages body (at least 1)."""
    chars, media = _content(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            more_chars, more_media = _content(message.get("content"))
            chars, media = chars + more_chars, media + more_media
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            chars += len(str(tool.get("name", ""))) + len(str(tool.get("description", "")))
            if isinstance(tool.get("input_schema"), dict):
                chars += len(orjson.dumps(tool["input_schema"]))
    return max(1, chars // CHARS_PER_TOKEN + media)


def _content(content: Any) -> tuple[int, int]:
    """Returns (characters, media tokens) of a content value."""
    if isinstance(content, str):
        return len(content), 0
    if not isinstance(content, list):
        return 0, 0
    chars = media = 0
    for block in content:
        more_chars, more_media = _block(block) if isinstance(block, dict) else (0, 0)
        chars, media = chars + more_chars, media + more_media
    return chars, media


def _block(block: Mapping[str, Any]) -> tuple[int, int]:
    kind = block.get("type")
    if not isinstance(kind, str) or kind in _SKIPPED:
        return 0, 0
    if kind == "image":
        return 0, IMAGE_TOKENS
    if kind == "document":
        return _document(block.get("source"))
    if kind == "tool_use":
        return len(str(block.get("name", ""))) + len(orjson.dumps(block.get("input", {}))), 0
    if kind in ("tool_result", "search_result"):
        return _content(block.get("content"))
    text = block.get("text")
    return (len(text), 0) if isinstance(text, str) else (0, 0)


def _document(source: Any) -> tuple[int, int]:
    if not isinstance(source, dict):
        return 0, 0
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return len(source["data"]), 0
    if source.get("type") == "content":
        return _content(source.get("content"))
    data = source.get("data")
    size = len(data) * 3 // 4 if isinstance(data, str) else 0
    return 0, max(IMAGE_TOKENS, size * DOCUMENT_TOKENS_PER_MB // 1_000_000)
