"""OpenAI's Responses API (`POST /v1/responses`) for the fake upstream: Response objects, the
named-event SSE sequence, function and custom tool calls, reasoning items (with
`encrypted_content` when `include` asks for it), and errors in OpenAI's `{"error": {...}}` shape.

Streams go `response.created`, `response.in_progress`, then per output item
`response.output_item.added` … `response.output_item.done`, then `response.completed` (or
`response.incomplete`); every event carries `type` and `sequence_number`, each is sent as
`event: <type>` + `data: <json>`, and there is no `[DONE]`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from tests.fakes import openai_wire
from tests.fakes import steps as st
from tests.fakes.exchange import Exchange, long_content, pieces, usage_numbers, words
from tests.fakes.http11 import Answer
from tests.fakes.turns import offered_tools

SSE = openai_wire.SSE
ENCRYPTED_PREFIX = "fake-reasoning:"
_OBFUSCATION = "aZ3kQ9xW7pL2mN5vB8cR4tY6"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _headers(exchange: Exchange, content_type: str = openai_wire.JSON) -> dict[str, str]:
    return openai_wire.answer_headers(exchange.seq, content_type)


def encrypt(text: str) -> str:
    """Returns: the fake's `encrypted_content` for a reasoning text (base64, verifiable)."""
    return base64.b64encode((ENCRYPTED_PREFIX + text).encode()).decode()


def decrypt(blob: Any) -> str | None:
    """Returns: the reasoning text inside an `encrypted_content` the fake issued, else None."""
    if not isinstance(blob, str):
        return None
    try:
        text = base64.b64decode(blob, validate=True).decode()
    except ValueError:
        return None
    return text[len(ENCRYPTED_PREFIX) :] if text.startswith(ENCRYPTED_PREFIX) else None


# -- validation ---------------------------------------------------------------------------


def validate(exchange: Exchange, known_ids: set[str]) -> Answer | None:
    """Checks like the real API's 400s (model, input, tools, replayed items).

    `known_ids`: response ids the fake stored (for `previous_response_id`).
    Returns: a 400 answer, or None when the body is acceptable.
    """
    body = exchange.body
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _missing(exchange, "model")
    previous = body.get("previous_response_id")
    if previous is not None and previous not in known_ids:
        msg = f"Previous response with id '{previous}' not found."
        return openai_wire.error_answer(
            exchange, 400, msg, param="previous_response_id", code="previous_response_not_found"
        )
    items = body.get("input")
    if items is None and previous is None:
        return _missing(exchange, "input")
    if items is not None and not isinstance(items, str | list):
        kind = "an object" if isinstance(items, dict) else f"a {type(items).__name__}"
        msg = (
            "Invalid type for 'input': expected one of a string or array of input items, but "
            f"got {kind} instead."
        )
        return openai_wire.error_answer(exchange, 400, msg, param="input", code="invalid_type")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        msg = (
            "Invalid type for 'instructions': expected a string, but got "
            f"{_type_name(instructions)} instead."
        )
        return openai_wire.error_answer(
            exchange, 400, msg, param="instructions", code="invalid_type"
        )
    problem = _check_tools(body.get("tools")) or _check_items(
        items if isinstance(items, list) else [], previous is not None
    )
    if problem is None:
        return None
    message, param, code = problem
    return openai_wire.error_answer(exchange, 400, message, param=param, code=code)


def _missing(exchange: Exchange, field: str) -> Answer:
    msg = f"Missing required parameter: '{field}'."
    return openai_wire.error_answer(
        exchange, 400, msg, param=field, code="missing_required_parameter"
    )


Problem = tuple[str, str | None, str | None]


def _check_tools(tools: Any) -> Problem | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return ("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind is None:
            return (f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type",
                    "missing_required_parameter")  # fmt: skip
        if kind in ("function", "custom") and not isinstance(tool.get("name"), str):
            return (f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name",
                    "missing_required_parameter")  # fmt: skip
    return None


def _check_items(items: list[Any], continued: bool) -> Problem | None:
    """Replayed tool outputs need their call earlier in the input (unless the conversation
    continues a stored response); replayed reasoning needs the fake's own encrypted content."""
    calls: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return (f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]",
                    "invalid_type")  # fmt: skip
        kind = item.get("type", "message")
        if kind not in ITEM_TYPES:
            return (f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in sorted(ITEM_TYPES)) + ".",
                    f"input[{i}].type", "invalid_value")  # fmt: skip
        if kind == "message":
            problem = _check_message(item, f"input[{i}]")
            if problem is not None:
                return problem
        if kind in ("function_call", "custom_tool_call") and isinstance(item.get("call_id"), str):
            calls.add(item["call_id"])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                return (f"Missing required parameter: 'input[{i}].call_id'.",
                        f"input[{i}].call_id", "missing_required_parameter")  # fmt: skip
            if call_id not in calls and not continued:
                msg = f"No tool call found for function call output with call_id {call_id}."
                return (msg, "input", None)
        elif (
            kind == "reasoning"
            and "encrypted_content" in item
            and decrypt(item["encrypted_content"]) is None
        ):
            msg = (
                f"The encrypted content for item {item.get('id')} could not be verified. "
                "Reason: Encrypted content could not be decrypted or parsed."
            )
            return (msg, None, "invalid_encrypted_content")
    return None


ITEM_TYPES = frozenset({
    "message", "function_call", "function_call_output", "custom_tool_call",
    "custom_tool_call_output", "reasoning", "item_reference", "compaction", "web_search_call",
    "file_search_call", "image_generation_call", "code_interpreter_call", "tool_search_call",
    "tool_search_output", "local_shell_call", "local_shell_call_output", "shell_call",
    "shell_call_output", "apply_patch_call", "apply_patch_call_output", "computer_call",
    "computer_call_output", "mcp_list_tools", "mcp_call", "mcp_approval_request",
    "mcp_approval_response",
})  # fmt: skip
ROLES = ("assistant", "system", "developer", "user")


def _check_message(item: dict[str, Any], where: str) -> Problem | None:
    role = item.get("role")
    if role not in ROLES:
        return (f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.", f"{where}.role", "invalid_value")  # fmt: skip
    content = item.get("content")
    if not isinstance(content, str | list):
        return (f"Invalid type for '{where}.content': expected one of a string or array of "
                f"input content items, but got {_type_name(content)} instead.",
                f"{where}.content", "invalid_type")  # fmt: skip
    return None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else f"a {type(value).__name__}"


# -- answers ------------------------------------------------------------------------------


def render(step: st.Step, exchange: Exchange) -> Answer:
    """Returns: the answer to `step` for a /v1/responses request (not for Hang / Drop, handled
    by the server; ToolLoop is decided before)."""
    match step:
        case st.Reply():
            return _reply(step, exchange)
        case st.ContextTooLong():
            msg = (
                "Your input exceeds the context window of this model. Please adjust your input "
                "and try again."
            )
            return openai_wire.error_answer(
                exchange, 400, msg, param="input", code="context_length_exceeded"
            )
        case st.StreamCut(after):
            answer = _reply(st.Reply(content=long_content(after)), exchange)
            stream = answer.events is not None
            # created, in_progress, output_item.added and content_part.added come first
            answer.cut_after = 4 + after if stream else 0
            return answer
        case st.StreamErrorFirst(message, kind):
            err = {"type": "error", "code": kind, "message": message, "param": None,
                   "sequence_number": 0}  # fmt: skip
            return Answer(200, _headers(exchange, SSE), events=[_event(err)])
    return openai_wire.render(step, exchange)


def _event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def _calls(step: st.Reply, exchange: Exchange) -> list[dict[str, Any]]:
    """Returns: the complete function_call / custom_tool_call output items of the reply."""
    if not step.tool_calls or not exchange.has_tools:
        return []
    offered = offered_tools(exchange)
    items: list[dict[str, Any]] = []
    for i, call in enumerate(step.tool_calls):
        call_id = call.get("id") or f"call_fake{exchange.seq:04d}{i:02d}"
        name, kind = call["name"], offered.get(call["name"], "function")
        if kind == "custom":
            raw = call.get("input", call.get("arguments", ""))
            text = raw if isinstance(raw, str) else json.dumps(raw)
            items.append({"id": f"ctc_fake{exchange.seq:04d}{i:02d}", "type": "custom_tool_call",
                          "status": "completed", "call_id": call_id, "input": text,
                          "name": name})  # fmt: skip
            continue
        arguments = call.get("arguments") or {}
        item = {"id": f"fc_fake{exchange.seq:04d}{i:02d}", "type": "function_call",
                "status": "completed",
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                "call_id": call_id, "name": name}  # fmt: skip
        if kind.startswith("namespace:"):
            item["namespace"] = kind.partition(":")[2]
        items.append(item)
    return items


def _output(step: st.Reply, exchange: Exchange) -> list[dict[str, Any]]:
    """Returns: every complete output item: reasoning, message, then tool calls."""
    output: list[dict[str, Any]] = []
    if step.reasoning:
        reasoning: dict[str, Any] = {
            "id": f"rs_fake{exchange.seq:08d}",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": step.reasoning}],
        }
        include = exchange.body.get("include")
        if isinstance(include, list) and "reasoning.encrypted_content" in include:
            reasoning["encrypted_content"] = encrypt(step.reasoning)
        output.append(reasoning)
    calls = _calls(step, exchange)
    text = step.text()
    if text or not calls:
        output.append({
            "id": f"msg_fake{exchange.seq:08d}",
            "type": "message",
            "status": "completed",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
            "role": "assistant",
        })  # fmt: skip
    return output + calls


def _usage(step: st.Reply, exchange: Exchange) -> dict[str, Any]:
    n = usage_numbers(step, exchange)
    over = step.usage or {}
    reasoning = int(over.get("reasoning_tokens", words(step.reasoning or "")))
    output = n["output"] + (0 if "output_tokens" in over or "completion_tokens" in over
                            else reasoning)  # fmt: skip
    return {
        "input_tokens": n["input"],
        "input_tokens_details": {"cache_write_tokens": n["cache_write"],
                                 "cached_tokens": n["cache_read"]},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": n["input"] + output,
    }  # fmt: skip


def _incomplete(step: st.Reply) -> bool:
    return step.finish_reason in ("length", "max_tokens", "max_output_tokens")


def _response(
    step: st.Reply, exchange: Exchange, status: str, output: list[dict[str, Any]], created: int
) -> dict[str, Any]:
    body = exchange.body
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    text = {"format": {"type": "text"}, "verbosity": "medium"}
    if isinstance(body.get("text"), dict):
        text |= body["text"]
    done = status in ("completed", "incomplete")
    return {
        "id": f"resp_fake{exchange.seq:08d}",
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": created if done else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": exchange.model(step),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _usage(step, exchange) if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _reply(step: st.Reply, exchange: Exchange) -> Answer:
    created = int(time.time())
    output = _output(step, exchange)
    status = "incomplete" if _incomplete(step) else "completed"
    whole = _response(step, exchange, status, output, created)
    if not exchange.stream:
        return Answer(200, _headers(exchange), _dumps(whole))
    return Answer(200, _headers(exchange, SSE), events=_events(step, exchange, whole, created))


class _Stream:
    """Numbers the events of one stream; adds `obfuscation` to deltas unless turned off."""

    def __init__(self, exchange: Exchange) -> None:
        options = exchange.body.get("stream_options")
        self.obfuscate = not (
            isinstance(options, dict) and options.get("include_obfuscation") is False
        )
        self.events: list[bytes] = []

    def emit(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, **fields, "sequence_number": len(self.events)}
        self.events.append(_event(data))

    def delta(self, kind: str, delta: str, **fields: Any) -> None:
        extra = {"obfuscation": _padding(delta)} if self.obfuscate else {}
        self.emit(kind, **fields, delta=delta, **extra)


def _padding(delta: str) -> str:
    """Returns: a deterministic stand-in for OpenAI's random `obfuscation` padding."""
    size = 16 - len(delta) % 16 if len(delta) < 16 else 2
    digest = hashlib.sha256(delta.encode()).hexdigest()
    return (_OBFUSCATION + digest)[int(digest[:2], 16) % 8 :][:size]


def _events(step: st.Reply, exchange: Exchange, whole: dict[str, Any], created: int) -> list[bytes]:
    out = _Stream(exchange)
    opening = _response(step, exchange, "in_progress", [], created)
    out.emit("response.created", response=opening)
    out.emit("response.in_progress", response=opening)
    for index, item in enumerate(whole["output"]):
        _item_events(out, index, item)
    final = "response.incomplete" if whole["status"] == "incomplete" else "response.completed"
    out.emit(final, response=whole)
    return out.events


def _item_events(out: _Stream, index: int, item: dict[str, Any]) -> None:
    at = {"item_id": item["id"], "output_index": index}
    kind = item["type"]
    if kind == "message":
        out.emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})  # fmt: skip
        part = item["content"][0]
        out.emit("response.content_part.added", **at, content_index=0, part={**part, "text": ""})
        for piece in pieces(part["text"]):
            out.delta("response.output_text.delta", piece, **at, content_index=0, logprobs=[])
        out.emit("response.output_text.done", **at, content_index=0, text=part["text"],
                 logprobs=[])  # fmt: skip
        out.emit("response.content_part.done", **at, content_index=0, part=part)
    elif kind == "reasoning":
        out.emit("response.output_item.added", output_index=index,
                 item={**item, "summary": []})  # fmt: skip
        for s, summary in enumerate(item["summary"]):
            part = {"type": "summary_text", "text": ""}
            out.emit("response.reasoning_summary_part.added", **at, summary_index=s, part=part)
            for piece in pieces(summary["text"]):
                out.delta("response.reasoning_summary_text.delta", piece, **at, summary_index=s)
            out.emit("response.reasoning_summary_text.done", **at, summary_index=s,
                     text=summary["text"])  # fmt: skip
            out.emit("response.reasoning_summary_part.done", **at, summary_index=s,
                     part=summary)  # fmt: skip
    elif kind == "function_call":
        out.emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})  # fmt: skip
        for piece in _text_pieces(item["arguments"]):
            out.delta("response.function_call_arguments.delta", piece, **at)
        out.emit("response.function_call_arguments.done", **at, name=item["name"],
                 arguments=item["arguments"])  # fmt: skip
    else:  # custom_tool_call
        out.emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "input": ""})  # fmt: skip
        for piece in _text_pieces(item["input"]):
            out.delta("response.custom_tool_call_input.delta", piece, **at)
        out.emit("response.custom_tool_call_input.done", **at, input=item["input"])
    out.emit("response.output_item.done", output_index=index, item=item)


def _text_pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
