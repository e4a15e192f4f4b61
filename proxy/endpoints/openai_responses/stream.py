"""OpenAI `chat.completion.chunk`s → Responses SSE, one renderer per stream.

Order: `response.created`, `response.in_progress`; per output item `response.output_item.added`,
its deltas and `.done` events (`content_part` and `output_text` for a message,
`function_call_arguments` for a function call, `custom_tool_call_input` for a custom tool
call, whose raw input is sent whole once the call is complete), `response.output_item.done`;
then `response.completed` (or `response.incomplete`) with the whole response and usage, or
`response.failed`. Every event carries `type` and an increasing `sequence_number`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.endpoints.chunk_stream import ChunkRenderer
from proxy.endpoints.openai_responses.errors import error_from_document, response_error
from proxy.endpoints.openai_responses.request import ResponsesRequest
from proxy.endpoints.openai_responses.response import (
    Item,
    base_id,
    call_item,
    echo_fragments,
    envelope,
    message_item,
    status_of,
    text_part,
    usage_object,
)
from proxy.errors import ProxyError


@dataclass
class _Call:
    call_id: str = ""
    name: str = ""
    output_index: int | None = None
    """Its place in `output`, once started (it starts when its name is known)."""
    args: list[str] = field(default_factory=list)
    sent: int = 0
    """How many of `args` were sent as deltas."""
    done: bool = False


class ResponsesStream(ChunkRenderer):
    """Renders one OpenAI chunk stream as Responses SSE (see `ChunkRenderer`); its terminal
    event is `response.completed`, `response.incomplete` or `response.failed`."""

    def __init__(self, info: ResponsesRequest, *, created_at: int = 0) -> None:
        """`created_at` is used when the upstream's chunks carry no `created`."""
        super().__init__()
        self._info = info
        self._created = created_at
        self._base = ""
        self._seq = 0
        self._output: list[Item] = []
        self._current: tuple[str, int] | None = None
        """The open item: ("text", output index) or ("call", the chunk's tool-call index)."""
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._echo = echo_fragments(info)

    def _error_of(self, doc: Mapping[str, Any]) -> ProxyError:
        return error_from_document(doc)

    def error(self, err: ProxyError, message: str | None = None) -> bytes:
        """Returns `response.failed` with the error; the stream is then closed.

        `message` is the text the client may read (keys scrubbed); `err.message` if None.
        """
        if self._closed:
            return b""
        out = self._start()
        response = self._response("failed")
        response["error"] = response_error(err, message)
        self._closed = True
        return out + self._emit("response.failed", response=response)

    def _emit(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(self, status: str) -> dict[str, Any]:
        response = envelope(self._info, self._base, self._created, status, self._echo)
        response["output"] = list(self._output)
        return response

    def _start(self, doc: Mapping[str, Any] | None = None) -> bytes:
        if self._base:
            return b""
        self._base = base_id(doc.get("id") if doc else None)
        created = doc.get("created") if doc else None
        self._created = created if isinstance(created, int) and created else self._created
        response = self._response("in_progress")
        out = self._emit("response.created", response=response)
        return out + self._emit("response.in_progress", response=response)

    def _choice(self, choice: Mapping[str, Any]) -> bytes:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        out = b""
        for name in ("content", "refusal"):
            if isinstance(delta.get(name), str) and delta[name]:
                out += self._text_delta(delta[name])
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool(call)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
            out += self._close()
        return out

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._current is None or self._current[0] != "text":
            out += self._close()
            index = len(self._output)
            item = message_item(f"msg_{self._base}_{index}", "", status="in_progress")
            self._output.append(item)
            self._current, self._text = ("text", index), []
            out += self._emit("response.output_item.added", output_index=index, item=item)
            out += self._emit(
                "response.content_part.added", **self._where(index), part=text_part("")
            )
        self._text.append(text)
        where = self._where(self._current[1])
        return out + self._emit("response.output_text.delta", **where, delta=text, logprobs=[])

    def _where(self, index: int) -> dict[str, Any]:
        return {"item_id": self._output[index]["id"], "output_index": index, "content_index": 0}

    def _close_text(self, index: int) -> bytes:
        text = "".join(self._text)
        where = self._where(index)
        out = self._emit("response.output_text.done", **where, text=text, logprobs=[])
        out += self._emit("response.content_part.done", **where, part=text_part(text))
        item = self._output[index] = message_item(where["item_id"], text)
        return out + self._emit("response.output_item.done", output_index=index, item=item)

    def _tool(self, delta: Mapping[str, Any]) -> bytes:
        index = delta.get("index", 0)
        call = self._calls.setdefault(index if isinstance(index, int) else 0, _Call())
        function = delta.get("function")
        function = function if isinstance(function, dict) else {}
        call.call_id = call.call_id or str(delta.get("id") or "")
        call.name = call.name or str(function.get("name") or "")
        if isinstance(function.get("arguments"), str) and function["arguments"]:
            call.args.append(function["arguments"])
        out = b""
        if call.output_index is None and call.name:
            out += self._start_call(index if isinstance(index, int) else 0, call)
        return out + self._send_args(call)

    def _start_call(self, key: int, call: _Call) -> bytes:
        out = self._close()
        index = len(self._output)
        ref = self._info.tools.get(call.name)
        prefix = "ctc" if ref is not None and ref.kind == "custom" else "fc"
        call.call_id = call.call_id or f"call_{self._base}_{index}"
        item = call_item(f"{prefix}_{self._base}_{index}", call.call_id, call.name, ref, "",
                         "in_progress")  # fmt: skip
        self._output.append(item)
        call.output_index, self._current = index, ("call", key)
        return out + self._emit("response.output_item.added", output_index=index, item=item)

    def _send_args(self, call: _Call) -> bytes:
        if call.output_index is None or call.done or call.sent == len(call.args):
            return b""
        item = self._output[call.output_index]
        piece = "".join(call.args[call.sent :])
        call.sent = len(call.args)
        if item["type"] == "custom_tool_call":
            return b""  # sent whole at the end: the raw input is inside the arguments JSON
        return self._emit(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=call.output_index,
            delta=piece,
        )

    def _close_call(self, call: _Call) -> bytes:
        if call.output_index is None:
            return b""
        index, call.done = call.output_index, True
        old = self._output[index]
        ref = self._info.tools.get(call.name)
        args = "".join(call.args)
        item = self._output[index] = call_item(old["id"], call.call_id, call.name, ref, args,
                                               "completed")  # fmt: skip
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "custom_tool_call":
            out = self._emit("response.custom_tool_call_input.delta", **where, delta=item["input"])
            out += self._emit("response.custom_tool_call_input.done", **where, input=item["input"])
        else:
            out = self._emit(
                "response.function_call_arguments.done", **where, arguments=args, name=item["name"]
            )
        return out + self._emit("response.output_item.done", output_index=index, item=item)

    def _close(self) -> bytes:
        current, self._current = self._current, None
        if current is None:
            return b""
        if current[0] == "text":
            return self._close_text(current[1])
        return self._close_call(self._calls[current[1]])

    def _end(self) -> bytes:
        out = self._start() + self._close()
        for key, call in self._calls.items():  # calls whose name never came, if any
            if call.output_index is None:
                call.name = call.name or "unknown"
                out += self._start_call(key, call) + self._close()
        status, incomplete = status_of(self._finish)
        response = self._response(status)
        response["incomplete_details"] = incomplete
        response["usage"] = usage_object(self._usage)
        self._closed = True
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, response=response)
