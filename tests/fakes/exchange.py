"""One request as the wire renderers see it, plus the fake's deterministic word counting.

Token counts are whitespace-separated words, so a test can predict usage exactly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.steps import Reply

_PIECE = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True)
class Exchange:
    """The request being answered: path, parsed JSON body, API key and sequence number."""

    path: str
    body: dict[str, Any]
    key: str | None
    seq: int

    @property
    def stream(self) -> bool:
        """Returns: whether the client asked for a stream."""
        return self.body.get("stream") is True

    @property
    def has_tools(self) -> bool:
        """Returns: whether the request offers tools (tool calls are only sent then)."""
        return bool(self.body.get("tools") or self.body.get("functions"))

    def model(self, step: Reply | None = None, fallback: str = "fake-model") -> str:
        """Returns: the model the reply names: the step's, else the request's."""
        if step is not None and step.model:
            return step.model
        model = self.body.get("model")
        return model if isinstance(model, str) and model else fallback


def words(text: str) -> int:
    """Returns: the number of whitespace-separated words in `text`."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Returns: `text` split into one piece per word, whitespace kept, joining back to `text`."""
    found = _PIECE.findall(text)
    return found if "".join(found) == text else [text]


def json_pieces(arguments: dict[str, Any], size: int = 8) -> list[str]:
    """Returns: the JSON text of `arguments` cut into pieces of `size` characters."""
    text = json.dumps(arguments, separators=(",", ":"))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def content_text(content: Any) -> str:
    """Returns: the plain text in a message content (string, or text / tool_result blocks)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_result":
            texts.append(content_text(block.get("content")))
    return " ".join(texts)


def prompt_words(body: dict[str, Any]) -> int:
    """Returns: words in the system prompt and every message's text, at least 1.

    The top-level `system` counts too, so a request translated between vendors counts the same.
    """
    texts = [content_text(body.get("system"))]
    messages = body.get("messages")
    if isinstance(messages, list):
        texts += [content_text(m.get("content")) for m in messages if isinstance(m, dict)]
    prompt = body.get("prompt")
    if isinstance(prompt, str | list):
        texts.append(prompt if isinstance(prompt, str) else " ".join(map(str, prompt)))
    if "messages" not in body:  # a Responses request: instructions and input items
        texts.append(content_text(body.get("instructions")))
        texts += input_texts(body.get("input"))
    return max(1, sum(words(text) for text in texts))


def input_texts(items: Any) -> list[str]:
    """Returns: the texts of a Responses `input`: a string, or message contents and tool
    outputs of its items (input_text / output_text parts carry `text`)."""
    if isinstance(items, str):
        return [items]
    texts: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "content" in item:
            texts.append(content_text(item["content"]))
        elif isinstance(item.get("output"), str | list):
            texts.append(content_text(item["output"]))
    return texts


def usage_numbers(step: Reply, exchange: Exchange) -> dict[str, int]:
    """Returns: input, output, cache_read and cache_write counts, with the step's overrides.

    Overrides may use either vendor's field names.
    """
    over = step.usage or {}

    def pick(*names: str, default: int) -> int:
        return next((int(over[n]) for n in names if n in over), default)

    return {
        "input": pick("prompt_tokens", "input_tokens", default=prompt_words(exchange.body)),
        "output": pick("completion_tokens", "output_tokens", default=words(step.text())),
        "cache_read": pick("cache_read_input_tokens", "cached_tokens", default=0),
        "cache_write": pick("cache_creation_input_tokens", default=0),
    }


def retry_after_header(seconds: float, ms: bool) -> tuple[str, str]:
    """Returns: the (`retry-after`, whole seconds rounded up) or (`retry-after-ms`, ms) header."""
    if ms:
        return "retry-after-ms", str(int(round(seconds * 1000)))
    return "retry-after", str(math.ceil(seconds))


def long_content(count: int) -> str:
    """Returns: a deterministic text of at least `count` words (for cut streams)."""
    base = (
        "Hello!",
        "This",
        "is",
        "the",
        "fake",
        "upstream",
        "and",
        "this",
        "stream",
        "was",
        "cut",
    )
    return " ".join(base[i % len(base)] for i in range(max(count + 2, len(base))))
