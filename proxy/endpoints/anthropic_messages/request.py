"""A Messages request body → the neutral `ChatRequest` (an OpenAI chat body), checked first.

Owns the parameter mapping: max_tokens, sampling, stop_sequences, tools and tool_choice,
thinking / output_config effort (as reasoning_effort), output_config.format (as
response_format), metadata.user_id (as user, and the session id inside it), and which fields
are dropped (top_k, context_management, server tools, `defer_loading`, `cache_control`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec
import orjson

from proxy.endpoints.anthropic_messages.content import convert_messages
from proxy.endpoints.openai_chat import (
    IGNORED,
    cache_control,
    decode_lazy,
    load_body_lazily,
    load_field,
    shared_conversion,
)
from proxy.errors import BadRequest
from proxy.schema import CacheControl, ChatRequest, SharedTools

MAX_STOP = 4
"""OpenAI takes at most four stop sequences; further ones are dropped."""
MAX_USER = 256
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_LEGACY_SESSION = re.compile(r"_session_([0-9A-Za-z-]+)$")
_THINKING = b'"thinking"'
"""In a Messages body's bytes: maybe a thinking block, which the pass-through must read."""
_BULK = ("messages", "tools")
"""The fields a passed-through body leaves undecoded (the upstream reads them)."""
_TOOLS = ("tools",)
"""The field a translated body leaves undecoded: its tools are converted from their bytes,
once for all the requests that send the same (`_shared_tools`)."""
_TOOL_FIELDS = msgspec.json.Decoder(list[dict[str, msgspec.Raw]] | None)
"""Each tool of a skimmed `tools` as its fields' raw JSON, for `_check_tools_json`."""


@dataclass(frozen=True)
class MessagesRequest:
    """What the Messages front door keeps beside the translated request."""

    raw: bytes
    """The body exactly as the client sent it; b"" when it held a proxy-only field (`cache`,
    `api_key`, ...), so that it cannot go upstream as it is."""
    body: dict[str, Any]
    """The client's Messages body without the proxy-only fields (`cache`, `api_key`, ...)."""
    model: str
    stream: bool
    session_id: str | None
    """The agent session id from `metadata.user_id` (Claude Code's JSON or legacy form)."""
    bulk: Mapping[str, bytes] = field(default_factory=dict)
    """The JSON bytes of `messages` and `tools` when left undecoded in `body` (a
    pass-through; each an `orjson.Fragment` there)."""

    def passthrough(self, model: str) -> bytes:
        """Returns the client's body for an Anthropic upstream, only `model` replaced."""
        return orjson.dumps({**self.body, "model": model})


def model_of(body: Mapping[str, Any]) -> str:
    """Returns the requested model (group) name.

    Raises:
        BadRequest: `model` is missing or not a non-empty string.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    return model


def parse(
    raw: bytes, headers: Mapping[str, str], *, drop_params: bool = False, translate: bool = True
) -> tuple[ChatRequest, CacheControl, MessagesRequest]:
    """Checks a Messages body and translates it into the neutral request.

    Args:
        translate: False when every deployment that may serve it takes the body as sent (an
            Anthropic group with no fallbacks, no cache): the chat body is then left empty,
            saving the translation of a large agent request; the upstream validates the rest.

    Returns:
        The request (its body an OpenAI chat body; streams ask for usage), the client's cache
        control, and the Messages request kept for the pass-through and the renderers.

    Raises:
        BadRequest: the body is not JSON, or a field is missing, ill-typed or untranslatable;
            the message and `param` name the field.
    """
    body, bulk = load_body_lazily(raw, _BULK if not translate else _TOOLS)
    if _THINKING in bulk.get("messages", b""):  # unsigned thinking blocks are left out
        body, bulk = decode_lazy(body, bulk), {}  # upstream (`passthrough_body`)
    ctl = cache_control(body.get("cache"))
    client_body = {k: v for k, v in body.items() if k not in IGNORED}
    model = model_of(body)
    stream = _flag(body, "stream")
    user_id = _user_id(body.get("metadata"))
    pending = None
    if translate:
        chat = _chat_body(body, model, stream, user_id, bulk)
    else:  # every field but the messages is still checked here, so bad input is our 400
        if not (isinstance(body.get("messages"), list) or bulk.get("messages", b"")[:1] == b"["):
            raise BadRequest("'messages' is required and must be an array.", param="messages")
        chat = {"model": model, "messages": [], "max_tokens": _max_tokens(body.get("max_tokens"))}
        _sampling(body)
        if "tools" in bulk:
            _check_tools_json(bulk["tools"])
        else:
            _check_tools(body.get("tools"))
        _tool_choice(body.get("tool_choice"))
        chat["stream"] = stream
        pending = partial(_chat_body, body, model, stream, user_id, bulk)
    as_sent = raw if len(client_body) == len(body) else b""
    info = MessagesRequest(as_sent, client_body, model, stream, session_of(user_id), bulk)
    req = ChatRequest(
        model=model,
        body=chat,
        stream=stream,
        include_usage=stream,
        headers=headers,
        drop_params=drop_params,
        pending=pending,
    )
    return req, ctl, info


def _chat_body(
    body: dict[str, Any],
    model: str,
    stream: bool,
    user_id: str | None,
    bulk: Mapping[str, bytes] | None = None,
) -> Any:
    """Returns the chat body for `body`; `bulk`: the bytes of the fields left undecoded."""
    tools_json = bulk.get("tools") if bulk else None
    if bulk:
        body = decode_lazy(body, bulk, keep=("tools",))
    out: dict[str, Any] = {
        "model": model,
        "messages": convert_messages(body.get("system"), body.get("messages")),
        "max_tokens": _max_tokens(body.get("max_tokens")),
    }
    out.update(_sampling(body))
    tools = _tools(body.get("tools")) if tools_json is None else _shared_tools(tools_json)
    choice = _tool_choice(body.get("tool_choice"))
    if tools:
        out["tools"] = tools
        out.update(choice)
    effort = _effort(body.get("thinking"), body.get("output_config"))
    if effort:
        out["reasoning_effort"] = effort
    response_format = _response_format(body)
    if response_format:
        out["response_format"] = response_format
    if user_id:
        out["user"] = _user(user_id)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false.", param=name)
    return bool(value)


def _max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(
            "'max_tokens' is required and must be a positive integer.", param="max_tokens"
        )
    return value


def _number(body: Mapping[str, Any], name: str, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise BadRequest(f"'{name}' must be a number between 0 and {high}.", param=name)
    return float(value)


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        value = _number(body, name, 1.0)
        if value is not None:
            out[name] = value
    top_k = body.get("top_k")  # checked, then dropped: OpenAI has no top_k
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise BadRequest("'top_k' must be a non-negative integer.", param="top_k")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadRequest(
                "'stop_sequences' must be an array of strings.", param="stop_sequences"
            )
        if stops:
            out["stop"] = stops[:MAX_STOP]
    return out


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("'tools' must be an array.", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise BadRequest(f"{where} must be an object.", param=where)
        if tool.get("type") not in (None, "custom"):
            continue  # an Anthropic-hosted or Anthropic-defined tool: no one else runs it
        out.append(_tool(tool, where))
    return out


_shared_tools = shared_conversion("tools", lambda value: SharedTools(_tools(value)))
"""`_tools` for the JSON bytes of `tools`, made once per distinct list and shared."""


def _check_tools(value: Any) -> None:
    """Checks `tools` as `_tools` does, building nothing (for a body passed through)."""
    if value is None:
        return
    if not isinstance(value, list):
        raise BadRequest("'tools' must be an array.", param="tools")
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools[{i}] must be an object.", param=f"tools[{i}]")
        if tool.get("type") in (None, "custom"):
            _tool_fields(tool, f"tools[{i}]")


def _check_tools_json(data: bytes) -> None:
    """`_check_tools` for the bytes of `tools` left undecoded: each tool's fields stay raw
    JSON but its `type` and `name`, and its `input_schema` need only open an object. What
    this finds wrong is checked again decoded, for `_check_tools`' own message."""
    try:
        tools = _TOOL_FIELDS.decode(data)
        ok = all(_tool_ok(tool) for tool in tools or ())
    except (msgspec.MsgspecError, orjson.JSONDecodeError):
        ok = False
    if not ok:
        _check_tools(load_field("tools", data))


def _tool_ok(tool: dict[str, msgspec.Raw]) -> bool:
    kind = tool.get("type")
    if kind is not None and orjson.loads(memoryview(kind)) not in (None, "custom"):
        return True  # an Anthropic-hosted or Anthropic-defined tool: not checked
    name = tool.get("name")
    if name is None:
        return False
    value = orjson.loads(memoryview(name))
    if not isinstance(value, str) or not value:
        return False
    schema = tool.get("input_schema")
    if schema is None:
        return True
    start = bytes(memoryview(schema)[:4])
    return start[:1] == b"{" or start == b"null"


def _tool_fields(tool: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string.", param=f"{where}.name")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise BadRequest(f"{where}.input_schema must be an object.", param=f"{where}.input_schema")
    return name, schema


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    name, schema = _tool_fields(tool, where)
    function: dict[str, Any] = {"name": name, "parameters": {"type": "object", **schema}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in ("auto", "any", "tool", "none"):
        raise BadRequest(
            "tool_choice.type must be 'auto', 'any', 'tool' or 'none'.", param="tool_choice"
        )
    if kind == "tool":
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise BadRequest(
                "tool_choice.name is required for type 'tool'.", param="tool_choice.name"
            )
        out: dict[str, Any] = {
            "tool_choice": {"type": "function", "function": {"name": value["name"]}}
        }
    else:
        out = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    if value.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _effort(thinking: Any, output_config: Any) -> str | None:
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if not isinstance(thinking, dict) or kind not in ("enabled", "adaptive", "disabled"):
        raise BadRequest(
            "thinking.type must be 'enabled', 'adaptive' or 'disabled'.", param="thinking.type"
        )
    if kind == "disabled":
        return None
    if kind == "adaptive":
        # The model picks its budget; output_config.effort (Anthropic's default: high) guides it.
        asked = output_config.get("effort") if isinstance(output_config, dict) else None
        return _EFFORTS.get(asked, "high") if isinstance(asked, str) else "high"
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise BadRequest(
            "thinking.budget_tokens must be a positive integer.", param="thinking.budget_tokens"
        )
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise BadRequest(
            "output_config.format.schema must be an object.", param="output_config.format"
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be an object.", param="metadata")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise BadRequest("metadata.user_id must be a string.", param="metadata.user_id")
    return user_id or None


def _user_json(user_id: str) -> dict[str, Any] | None:
    if not user_id.startswith("{"):
        return None
    try:
        doc = orjson.loads(user_id)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def session_of(user_id: str | None) -> str | None:
    """Returns the session id in Claude Code's `metadata.user_id`, if it carries one.

    Current Claude Code sends a JSON string (`{"device_id": …, "session_id": …}`); older ones
    sent `user_<hash>_account_<uuid>_session_<uuid>`.
    """
    if not user_id:
        return None
    doc = _user_json(user_id)
    if doc is not None:
        session = doc.get("session_id")
        return session if isinstance(session, str) and session else None
    found = _LEGACY_SESSION.search(user_id)
    return found.group(1) if found else None


def _user(user_id: str) -> str:
    # OpenAI's `user` names the end user: the stable part of Claude Code's JSON, not the session.
    doc = _user_json(user_id)
    if doc is not None:
        stable = doc.get("account_uuid") or doc.get("device_id")
        if isinstance(stable, str) and stable:
            return stable[:MAX_USER]
    return user_id[:MAX_USER]
