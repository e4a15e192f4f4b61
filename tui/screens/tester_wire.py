"""The three APIs the tester sends through: for each, the path, the headers and the streamed
request body, and the reading of its Server-Sent Events into text, token counts and errors.

- Chat Completions: `data:` chunks with `choices[].delta.content`, usage in the last chunk,
  `data: [DONE]`.
- Anthropic Messages: `content_block_delta` events with a `text_delta`; input tokens in
  `message_start`, output tokens in `message_delta`; an `error` event on failure.
- OpenAI Responses: `response.output_text.delta` events; usage in `response.completed`;
  `response.failed` or `error` on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.schema import PIN_HEADER
from proxy.sse import SSEDecoder

MAX_TOKENS = 1024
"""Anthropic's Messages API requires `max_tokens`; the other two leave it to the model."""
ANTHROPIC_VERSION = "2023-06-01"


@dataclass
class Delta:
    """What one event adds to a run: answer text, token counts, or an error."""

    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    """`prompt_tokens` / `completion_tokens`, whatever the API calls them."""
    error: str | None = None


@dataclass(frozen=True)
class Prompt:
    """What the user asked: the same in every API."""

    group: str
    text: str
    system: str = ""
    temperature: float | None = None


@dataclass(frozen=True)
class WireFormat:
    """One API the tester can send through."""

    name: str
    """"chat", "messages" or "responses", as the Requests pane shows the API."""
    label: str
    path: str
    build: Callable[[Prompt], dict[str, Any]]
    read: Callable[[dict[str, Any]], Delta]

    def headers(self, key: str | None, pin: str | None = None) -> dict[str, str]:
        """Returns the auth (and version) headers, as this API's own clients send them, and
        with `pin` the proxy's `x-llmproxy-deployment`, which sends the request to that one
        deployment of the group."""
        if self.name == "messages":
            auth = {"x-api-key": key} if key else {}
            out = {**auth, "anthropic-version": ANTHROPIC_VERSION}
        else:
            out = {"Authorization": f"Bearer {key}"} if key else {}
        if pin:
            out[PIN_HEADER] = pin
        return out


def _chat_body(p: Prompt) -> dict[str, Any]:
    messages = [{"role": "system", "content": p.system}] if p.system else []
    messages.append({"role": "user", "content": p.text})
    body: dict[str, Any] = {
        "model": p.group,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return _with_temperature(body, p)


def _messages_body(p: Prompt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": p.group,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": p.text}],
        "stream": True,
    }
    if p.system:
        body["system"] = p.system
    return _with_temperature(body, p)


def _responses_body(p: Prompt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": p.group,
        "input": [{"role": "user", "content": p.text}],
        "stream": True,
        "store": False,
    }
    if p.system:
        body["instructions"] = p.system
    return _with_temperature(body, p)


def _with_temperature(body: dict[str, Any], p: Prompt) -> dict[str, Any]:
    if p.temperature is not None:
        body["temperature"] = p.temperature
    return body


def _read_chat(chunk: dict[str, Any]) -> Delta:
    out = Delta()
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        out.usage = _counts(usage, "prompt_tokens", "completion_tokens")
    if chunk.get("error"):
        out.error = _message(chunk["error"])
    for choice in chunk.get("choices") or []:
        out.text += (choice.get("delta") or {}).get("content") or ""
    return out


def _read_messages(event: dict[str, Any]) -> Delta:
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta") or {}
        return Delta(text=delta.get("text") or "" if delta.get("type") == "text_delta" else "")
    if kind == "message_start":
        usage = (event.get("message") or {}).get("usage") or {}
        return Delta(usage=_counts(usage, "input_tokens", "output_tokens"))
    if kind == "message_delta":
        return Delta(usage=_counts(event.get("usage") or {}, "input_tokens", "output_tokens"))
    if kind == "error":
        return Delta(error=_message(event.get("error")))
    return Delta()


def _read_responses(event: dict[str, Any]) -> Delta:
    kind = event.get("type")
    if kind == "response.output_text.delta":
        return Delta(text=str(event.get("delta") or ""))
    response = event.get("response") or {}
    if kind in ("response.completed", "response.incomplete"):
        usage = response.get("usage") or {}
        return Delta(usage=_counts(usage, "input_tokens", "output_tokens"))
    if kind == "response.failed":
        return Delta(error=_message(response.get("error") or "the response failed"))
    if kind == "error":
        return Delta(error=_message(event.get("error") or event))
    return Delta()


def _counts(usage: dict[str, Any], tokens_in: str, tokens_out: str) -> dict[str, int]:
    """Returns the counts present in `usage` under the names the tester shows."""
    out: dict[str, int] = {}
    for theirs, ours in ((tokens_in, "prompt_tokens"), (tokens_out, "completion_tokens")):
        if isinstance(usage.get(theirs), int):
            out[ours] = usage[theirs]
    return out


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error)


FORMATS: dict[str, WireFormat] = {
    f.name: f
    for f in (
        WireFormat("chat", "Chat Completions", "/v1/chat/completions", _chat_body, _read_chat),
        WireFormat("messages", "Anthropic Messages", "/v1/messages", _messages_body,
                   _read_messages),
        WireFormat("responses", "OpenAI Responses", "/v1/responses", _responses_body,
                   _read_responses),
    )
}  # fmt: skip
"""By name, in the order the tester offers them."""


class StreamReader:
    """Reads one answer's SSE bytes, in whatever pieces they arrive, into Deltas."""

    def __init__(self, wire: WireFormat) -> None:
        self._wire = wire
        self._decoder = SSEDecoder()

    def feed(self, data: bytes) -> list[Delta]:
        """Returns a Delta for each event `data` completes (an unreadable one is an error)."""
        return [self._read(sse.data) for sse in self._decoder.feed(data)]

    def close(self) -> list[Delta]:
        """Returns a last event the stream ended without its blank line."""
        return [self._read(sse.data) for sse in self._decoder.flush()]

    def _read(self, data: str) -> Delta:
        data = data.strip()
        if not data or data == "[DONE]":
            return Delta()
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return Delta(error=f"unreadable event: {data[:80]}")
        return self._wire.read(doc) if isinstance(doc, dict) else Delta()


def error_message(status: int, body: bytes) -> str:
    """Returns the message of an error body, OpenAI's `{"error": {...}}` or Anthropic's
    `{"type": "error", "error": {...}}` alike, or the raw text."""
    try:
        return f"HTTP {status}: {orjson.loads(body)['error']['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"


KEY_VARIABLE = "$LLMPROXY_KEY"
"""What a copied curl line sends as the key: the variable's name, never the key itself."""
NO_PROMPT = "(the proxy keeps no prompts: write yours here)"


def placeholder_body(wire: WireFormat, group: str, stream: bool) -> dict[str, Any]:
    """Returns a request body for `group` in `wire`'s API with a placeholder prompt (for a
    request the tester did not send: the proxy keeps no prompts)."""
    body = wire.build(Prompt(group, NO_PROMPT))
    if not stream:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def curl_command(
    wire: WireFormat,
    base_url: str,
    body: dict[str, Any],
    *,
    keyed: bool,
    pin: str | None = None,
) -> str:
    """Returns a shell line that sends `body` through `wire`'s path; with `keyed` (the proxy has
    a master key) the key is the shell variable `$LLMPROXY_KEY`, never its value.

    Args:
        wire: the API the request went through.
        base_url: the proxy's URL.
        body: the JSON body; single quotes in it are quoted for the shell.
        keyed: whether to send an auth header.
        pin: the deployment the request is pinned to (`x-llmproxy-deployment`), if any.
    Returns:
        The command, one option per line.
    """
    lines = [f"curl {_shell_quote(base_url.rstrip('/') + wire.path)}"]
    lines.append("-H 'content-type: application/json'")
    for name, value in wire.headers(KEY_VARIABLE if keyed else None, pin).items():
        header = f"{name}: {value}"
        # The variable expands inside double quotes; the other headers (the pin's id too,
        # which is the config's text) are quoted plain.
        expand = KEY_VARIABLE in value and name != PIN_HEADER
        lines.append(f'-H "{header}"' if expand else f"-H {_shell_quote(header)}")
    lines.append(f"-d {_shell_quote(orjson.dumps(body).decode())}")
    return " \\\n  ".join(lines)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
