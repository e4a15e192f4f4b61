"""A Responses request body → the neutral `ChatRequest` (an OpenAI chat body), checked first.

Owns the parameter mapping: max_output_tokens, sampling, reasoning.effort, text.format (as
response_format), tools and tool_choice; the stateful fields refused with a 400
(`previous_response_id`, `conversation`, `background`, stored `prompt`); and the fields that
never reach a translated upstream (store, include, prompt_cache_key, client_metadata,
text.verbosity, service_tier, metadata, truncation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from proxy.endpoints.openai_chat import (
    IGNORED,
    cache_control,
    decode_lazy,
    load_body_lazily,
)
from proxy.endpoints.openai_responses.items import convert_input
from proxy.endpoints.openai_responses.tools import (
    ToolRef,
    convert_tool_choice,
    convert_tools,
    convert_tools_json,
)
from proxy.errors import BadRequest
from proxy.schema import CacheControl, ChatRequest

MAX_USER = 256
_EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
            "xhigh": "high"}  # fmt: skip
_BULK = ("input", "tools")
"""The fields a passed-through body leaves undecoded (the upstream reads them)."""
_TOOLS = ("tools",)
"""The field a translated body leaves undecoded: its tools are converted from their bytes,
once for all the requests that send the same (`convert_tools_json`)."""
_STATEFUL = {
    "previous_response_id": "previous_response_id needs stored responses; this proxy is "
    "stateless, so send the whole conversation in 'input'.",
    "conversation": "conversation needs stored conversations; this proxy is stateless, so send "
    "the whole conversation in 'input'.",
    "prompt": "prompt templates are stored by OpenAI; send 'instructions' and 'input' instead.",
}
# Echoed in the Response object as the client sent them (OpenAI's defaults otherwise).
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "tool_choice": "auto",
    "tools": [],
    "parallel_tool_calls": True,
    "temperature": None,
    "top_p": None,
    "max_output_tokens": None,
    "reasoning": None,
    "text": None,
    "metadata": None,
    "store": None,
    "truncation": None,
    "user": None,
    "prompt_cache_key": None,
}


@dataclass(frozen=True)
class ResponsesRequest:
    """What the Responses front door keeps beside the translated request."""

    raw: bytes
    """The body exactly as the client sent it; b"" when it held a proxy-only field (`cache`,
    `api_key`, ...), so that it cannot go upstream as it is."""
    body: dict[str, Any]
    """The client's Responses body without the proxy-only fields (`cache`, `api_key`, ...)."""
    model: str
    stream: bool
    session_id: str | None
    """`prompt_cache_key`, which Codex and OpenCode set to their session id."""
    tools: Mapping[str, ToolRef] = field(default_factory=dict)
    """Flat function name → the client's tool, to render calls as `function_call` or
    `custom_tool_call` with the client's name and namespace."""
    echo: Mapping[str, Any] = field(default_factory=dict)
    """Request fields a Response object repeats (tools, tool_choice, instructions, ...)."""
    bulk: Mapping[str, bytes] = field(default_factory=dict)
    """The JSON bytes of the fields left undecoded in `body` (each an `orjson.Fragment`
    there): `tools`, and for a pass-through `input` too."""

    def passthrough(self, model: str) -> bytes:
        """Returns the client's body for an OpenAI Responses upstream, only `model` replaced."""
        return orjson.dumps({**self.body, "model": model})


def parse(
    raw: bytes, headers: Mapping[str, str], *, drop_params: bool = False, translate: bool = True
) -> tuple[ChatRequest, CacheControl, ResponsesRequest]:
    """Checks a Responses body and translates it into the neutral request.

    Args:
        translate: False when every deployment that may serve it takes the body as sent (an
            `openai/` group with no fallbacks, no cache): the translation is then deferred
            (`ChatRequest.pending`, made if a Chat-only deployment must serve it after all),
            saving it for a large agent request; the upstream validates `input` and `tools`.

    Returns:
        The request (its body an OpenAI chat body; streams ask for usage), the client's cache
        control, and the Responses request kept for the pass-through and the renderers.

    Raises:
        BadRequest: the body is not JSON; a field is missing, ill-typed or untranslatable; or
            it refers to stored state (`previous_response_id`, ...). `param` names the field.
    """
    body, bulk = load_body_lazily(raw, _BULK if not translate else _TOOLS)
    ctl = cache_control(body.get("cache"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    _refuse_stateful(body)
    stream = _flag(body, "stream")
    table: dict[str, ToolRef] = {}
    pending = None
    if translate:
        chat = _translate(body, model, stream, table, bulk)
    else:
        _check(body, bulk)
        chat = {"model": model, "messages": []}
        if stream:
            chat["stream"] = True
        pending = partial(_translate, body, model, stream, table, bulk)
    client_body = {k: v for k, v in body.items() if k not in IGNORED}
    info = ResponsesRequest(
        raw=raw if len(client_body) == len(body) else b"",
        body=client_body,
        model=model,
        stream=stream,
        session_id=_session(body.get("prompt_cache_key")),
        tools=table,
        echo={name: body.get(name, default) for name, default in _ECHOED.items()},
        bulk=bulk,
    )
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


def _translate(
    body: Mapping[str, Any],
    model: str,
    stream: bool,
    table: dict[str, ToolRef],
    bulk: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Returns the chat body for `body`, filling `table` (the request's tool table); `bulk`:
    the bytes of the fields the parse left undecoded."""
    tools_json = bulk.get("tools") if bulk else None
    if bulk:
        body = decode_lazy(body, bulk, keep=("tools",))
    if tools_json is not None:
        tools, found = convert_tools_json(tools_json)
    else:
        tools, found = convert_tools(body.get("tools"))
    chat = _chat_body(body, model, stream, tools)
    table.update(found)
    return chat


def _refuse_stateful(body: Mapping[str, Any]) -> None:
    for name, message in _STATEFUL.items():
        if body.get(name) is not None:
            raise BadRequest(message, param=name, code="unsupported_parameter")
    if body.get("background") is True:
        raise BadRequest(
            "background responses need stored responses; this proxy is stateless.",
            param="background",
            code="unsupported_parameter",
        )


def _chat_body(
    body: Mapping[str, Any], model: str, stream: bool, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model,
        "messages": convert_input(body.get("instructions"), body.get("input")),
    }
    limit = _max_output(body)
    if limit is not None:
        out["max_tokens"] = limit
    out.update(_sampling(body))
    choice = convert_tool_choice(body.get("tool_choice"))
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    effort = _effort(body.get("reasoning"))
    if effort:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("text"))
    if response_format:
        out["response_format"] = response_format
    if isinstance(body.get("user"), str) and body["user"]:
        out["user"] = body["user"][:MAX_USER]
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _check(body: Mapping[str, Any], bulk: Mapping[str, bytes]) -> None:
    """Checks the fields the translation reads beside `input` and `tools` (for a body that
    passes through), so their bad values are still this proxy's 400."""
    tools = bulk.get("tools")
    if tools is not None:
        if tools[:1] != b"[" and tools != b"null":
            raise BadRequest("'tools' must be an array.", param="tools")
    elif not isinstance(body.get("tools", []), list | None):
        raise BadRequest("'tools' must be an array.", param="tools")
    _max_output(body)
    _sampling(body)
    convert_tool_choice(body.get("tool_choice"))
    _effort(body.get("reasoning"))
    _response_format(body.get("text"))


def _max_output(body: Mapping[str, Any]) -> int | None:
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest(
            "'max_output_tokens' must be a positive integer.", param="max_output_tokens"
        )
    return limit


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false.", param=name)
    return bool(value)


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            raise BadRequest(f"'{name}' must be a number between 0 and {high}.", param=name)
        out[name] = value
    return out


def _effort(reasoning: Any) -> str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise BadRequest("'reasoning' must be an object.", param="reasoning")
    effort = reasoning.get("effort")
    if effort is not None and not isinstance(effort, str):
        raise BadRequest("reasoning.effort must be a string.", param="reasoning.effort")
    return _EFFORTS.get(effort) if effort else None  # "none" and unknown levels: no reasoning


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise BadRequest("'text' must be an object.", param="text")
    fmt = text.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        return None  # plain text, the default
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if not isinstance(fmt.get("schema"), dict):
        raise BadRequest("text.format.schema must be an object.", param="text.format.schema")
    spec = {"name": fmt.get("name") if isinstance(fmt.get("name"), str) else "output"}
    spec.update({k: fmt[k] for k in ("schema", "strict", "description") if k in fmt})
    return {"type": "json_schema", "json_schema": spec}


def _session(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
