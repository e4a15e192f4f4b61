"""Turns streamed `chat.completion.chunk`s into one `chat.completion`, and back (pure).

The cache stores answers whole: `assemble` builds that form from a stream, `replay` makes the
chunks a client would have streamed from it, so `assemble(replay(b))` equals `b` in meaning.
Pieces are gathered in lists and joined once, so assembling costs time linear in the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

_PIECES = 4  # how many chunks a replayed text is split into


def _new_choice(index: int) -> dict[str, Any]:
    return {"index": index, "role": "assistant", "content": None, "reasoning": None,
            "refusal": None, "tools": {}, "finish_reason": None, "logprobs": None}  # fmt: skip


def _append(acc: dict[str, Any], name: str, piece: Any) -> None:
    if isinstance(piece, str):
        pieces = acc[name]
        if pieces is None:
            acc[name] = [piece]
        else:
            pieces.append(piece)


def _joined(pieces: list[str] | None) -> str | None:
    return None if pieces is None else "".join(pieces)


def _merge_tool(tools: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    index = int(delta.get("index") or 0)
    tool = tools.setdefault(index, {"id": None, "type": "function", "name": None, "args": []})
    if delta.get("id"):
        tool["id"] = delta["id"]
    if delta.get("type"):
        tool["type"] = delta["type"]
    fn = delta.get("function") or {}
    if fn.get("name") and not tool["name"]:
        tool["name"] = fn["name"]
    if isinstance(fn.get("arguments"), str):
        tool["args"].append(fn["arguments"])


def _merge_choice(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    if delta.get("role"):
        acc["role"] = delta["role"]
    _append(acc, "content", delta.get("content"))
    _append(acc, "reasoning", delta.get("reasoning_content"))
    _append(acc, "refusal", delta.get("refusal"))
    for tool_delta in delta.get("tool_calls") or ():
        _merge_tool(acc["tools"], tool_delta)
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and logprobs.get("content"):
        acc["logprobs"] = acc["logprobs"] or {"content": []}
        acc["logprobs"]["content"].extend(logprobs["content"])


def _message(acc: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": acc["role"], "content": _joined(acc["content"])}
    if acc["tools"]:
        if message["content"] == "":
            message["content"] = None  # a stream's empty role chunk, not an empty answer
        message["tool_calls"] = [
            {"id": t["id"], "type": t["type"],
             "function": {"name": t["name"], "arguments": "".join(t["args"])}}
            for _, t in sorted(acc["tools"].items())
        ]  # fmt: skip
    if acc["reasoning"] is not None:
        message["reasoning_content"] = _joined(acc["reasoning"])
    if acc["refusal"] is not None:
        message["refusal"] = _joined(acc["refusal"])
    return message


def assemble(chunks: list[bytes]) -> bytes:
    """Merges a stream's chunk JSONs (usage-only chunk included) into one answer.

    Returns:
        An OpenAI `chat.completion` JSON: id, created, model, choices (message with content,
        tool_calls merged by index, reasoning_content), finish_reason and usage.

    Raises:
        orjson.JSONDecodeError: a chunk is not JSON.
    """
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    for raw in chunks:
        chunk = orjson.loads(raw)
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(name) is not None and name not in head:
                head[name] = chunk[name]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            _merge_choice(choices.setdefault(index, _new_choice(index)), choice)
        if chunk.get("usage"):
            usage = chunk["usage"]
    out: dict[str, Any] = {
        "id": head.pop("id", ""),
        "object": "chat.completion",
        "created": head.pop("created", 0),
        "model": head.pop("model", ""),
        **head,
        "choices": [
            {
                "index": i,
                "message": _message(acc),
                "finish_reason": acc["finish_reason"],
                "logprobs": acc["logprobs"],
            }
            for i, acc in sorted(choices.items())
        ],  # fmt: skip
        "usage": usage,
    }
    return orjson.dumps(out)


def _split(text: str) -> list[str]:
    size = max(1, -(-len(text) // _PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _choice_deltas(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """The `delta` objects of one choice, in stream order (finish not included)."""
    message = choice.get("message") or {}
    deltas: list[dict[str, Any]] = [{"role": message.get("role") or "assistant"}]
    if isinstance(message.get("reasoning_content"), str):
        deltas += [{"reasoning_content": p} for p in _split(message["reasoning_content"])]
    if isinstance(message.get("content"), str):
        deltas += [{"content": p} for p in _split(message["content"])]
    if isinstance(message.get("refusal"), str):
        deltas.append({"refusal": message["refusal"]})
    for index, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        first = {"index": index, "id": call.get("id"), "type": call.get("type") or "function",
                 "function": {"name": fn.get("name"), "arguments": ""}}  # fmt: skip
        deltas.append({"tool_calls": [first]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": p}}]}
            for p in _split(fn.get("arguments") or "")
        ]
    return deltas


def replay(body: bytes) -> list[bytes]:
    """The chunk JSONs a client would have streamed for the answer `body`.

    Returns:
        Per choice: a role chunk, text pieces, tool_call chunks and a finish chunk; then, always
        last, a usage-only chunk (`choices: []`) that the caller drops unless the client asked
        for `stream_options.include_usage`.

    Raises:
        orjson.JSONDecodeError: `body` is not JSON.
    """
    answer = orjson.loads(body)
    head = {"id": answer.get("id", ""), "object": "chat.completion.chunk",
            "created": answer.get("created", 0), "model": answer.get("model", "")}  # fmt: skip
    if answer.get("system_fingerprint") is not None:
        head["system_fingerprint"] = answer["system_fingerprint"]
    out: list[bytes] = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        for delta in _choice_deltas(choice):
            one = {"index": index, "delta": delta, "finish_reason": None}
            out.append(orjson.dumps({**head, "choices": [one]}))
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        if choice.get("logprobs"):
            finish["logprobs"] = choice["logprobs"]
        out.append(orjson.dumps({**head, "choices": [finish]}))
    out.append(orjson.dumps({**head, "choices": [], "usage": answer.get("usage")}))
    return out
