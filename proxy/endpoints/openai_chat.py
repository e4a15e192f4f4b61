"""OpenAI's client wire format (chat completions, embeddings, completions): parses and checks a
request body, every problem a clear 400 naming the field, and renders errors in OpenAI's shape.

Proxy-only fields are taken out here: `cache` (per-request cache control) and the client-
supplied `api_key`, `api_base`, `base_url`, which are ignored so a client cannot redirect keys.
Answers need no rendering here: the neutral response already carries OpenAI JSON bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar, cast

import msgspec
import orjson

from proxy.errors import BadRequest, ProxyError, clip
from proxy.schema import CacheControl, ChatRequest, Kind

T = TypeVar("T")
IGNORED = ("api_key", "api_base", "base_url", "cache", "mock_response")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_DEPTH = 200
"""The deepest nesting of arrays and objects in a body. orjson reads 1024 levels but writes
only 254 (`_ORJSON_DEPTH`): a deeper body would fail when sent on, with room to spare for
the levels a translation adds."""
_ORJSON_DEPTH = 254
_COUNT_BELOW = 4096
"""Bodies up to this many bytes count their brackets before the exact depth check."""


def parse_request(
    raw: bytes, kind: str, headers: Mapping[str, str], *, drop_params: bool = False
) -> tuple[ChatRequest, CacheControl]:
    """Returns the request and its cache control.

    Raises:
        BadRequest: the body is not JSON, or a field is missing or of the wrong type.
    """
    body = load_body(raw)
    ctl = cache_control(body.get("cache"))
    for name in IGNORED:
        body.pop(name, None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false.", param="stream")
    if kind == "chat":
        _check_messages(body.get("messages"))
    elif kind == "embeddings":
        _check_input(body.get("input"))
    elif "prompt" not in body:
        raise BadRequest("'prompt' is required.", param="prompt")
    if kind == "embeddings" and stream:
        raise BadRequest("Embeddings cannot be streamed.", param="stream")
    _check_numbers(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    req = ChatRequest(
        model=model,
        body=body,
        kind=cast(Kind, kind),
        stream=stream,
        include_usage=include_usage,
        headers=headers,
        drop_params=drop_params,
    )
    return req, ctl


def render_error(err: ProxyError, message: str) -> tuple[int, bytes]:
    """Renders an error as OpenAI does: `{"error": {"message", "type", "param", "code"}}`.

    Args:
        err: the error.
        message: its message as the client may read it (keys already scrubbed).

    Returns:
        The HTTP status and the JSON body.
    """
    body = {"error": {"message": message, "type": err.type, "param": err.param, "code": err.code}}
    return err.status, orjson.dumps(body)


def load_body(raw: bytes) -> dict[str, Any]:
    """Returns the JSON object in `raw`.

    Raises:
        BadRequest: the body is empty, not JSON, or not an object.
    """
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    # A small body with few brackets cannot be that deep; a large one is checked at once
    # (counting its brackets costs more than the check: ~85 µs against ~15 µs at 58 KB).
    if len(raw) > _COUNT_BELOW or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        check_depth(body)
    return body


def check_depth(doc: Any) -> None:
    """Checks that `doc` (decoded JSON) nests at most MAX_DEPTH levels.

    Raises:
        BadRequest: it nests deeper.
    """
    wrapped: Any = doc
    for _ in range(_ORJSON_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)  # fails above _ORJSON_DEPTH levels
    except orjson.JSONEncodeError:
        raise BadRequest(
            f"The request body is nested too deeply (at most {MAX_DEPTH} levels)."
        ) from None


_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])


def load_body_lazily(raw: bytes, lazy: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """`load_body` for a body passed through, with its bulk fields `lazy` (a Responses `input`
    and `tools`, a Messages `messages`) left undecoded: for an agent's 58 KB body, a third to
    half the CPU of decoding it all.

    The whole body is still checked to be JSON (msgspec skims those fields without building
    their objects), its text UTF-8, and every other field decoded and depth-checked as
    `load_body` does. Each such field's value is an `orjson.Fragment` of its bytes, which
    `orjson.dumps` writes back as they came; what must read one decodes its bytes
    (`decode_lazy`).

    Returns:
        The body, and the JSON bytes of each field left undecoded.

    Raises:
        BadRequest: as `load_body`, with its messages.
    """
    try:
        top = _TOP_LEVEL.decode(raw) if raw else None
    except (msgspec.MsgspecError, RecursionError):
        top = None
    if top is None or not (raw.isascii() or _is_utf8(raw)):
        return load_body(raw), {}  # raises the error load_body names (or decodes it all)
    body: dict[str, Any] = {}
    bulk: dict[str, bytes] = {}
    try:
        for name, value in top.items():
            if name in lazy:
                data = bulk[name] = bytes(value)
                body[name] = orjson.Fragment(data)
            else:
                body[name] = orjson.loads(memoryview(value))
    except orjson.JSONDecodeError:  # a number or a nesting msgspec takes and orjson does not
        return load_body(raw), {}  # raises, with the whole body's message
    check_depth([v for k, v in body.items() if k not in bulk])
    return body, bulk


def decode_lazy(
    body: Mapping[str, Any], bulk: Mapping[str, bytes], *, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Returns `body` with the fields `load_body_lazily` left undecoded decoded (and
    depth-checked), for what reads them; those in `keep` stay bytes (what reads them reads
    the bytes, e.g. `shared_conversion`)."""
    values = {name: load_field(name, data) for name, data in bulk.items() if name not in keep}
    if not values:
        return dict(body)
    check_depth(list(values.values()))
    return {**body, **values}


def load_field(name: str, data: bytes) -> Any:
    """Returns the value of the field `name` that `load_body_lazily` left as the bytes
    `data` (checked JSON), not depth-checked.

    Raises:
        BadRequest: orjson cannot read it (a number out of range, over 1,024 levels).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc} (in '{name}')") from None


SHARED_FIELDS = 16
"""Distinct field values whose conversion `shared_conversion` keeps."""
MAX_SHARED_BYTES = 256 << 10
"""A field longer than this (as JSON) is converted on every request, never kept (16 kept
tool lists of this size hold about 24 MB)."""


def shared_conversion(name: str, convert: Callable[[Any], T]) -> Callable[[bytes], T]:
    """Returns `convert` of the field `name` given as the JSON bytes `load_body_lazily` left
    (decoded and depth-checked first), made once per distinct bytes and then handed to every
    request that sends the same: for an agent's tools, sent unchanged on every turn. So what
    `convert` returns is shared, read-only (`SharedTools`). Errors are raised every time,
    never kept; a field over MAX_SHARED_BYTES is converted each time."""

    def fresh(data: bytes) -> T:
        value = load_field(name, data)
        check_depth(value)
        return convert(value)

    kept = lru_cache(maxsize=SHARED_FIELDS)(fresh)

    def converted(data: bytes) -> T:
        return fresh(data) if len(data) > MAX_SHARED_BYTES else kept(data)

    return converted


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def cache_control(value: Any) -> CacheControl:
    """Returns the client's `cache` field as a CacheControl (a 400 naming it when malformed)."""
    if value is None:
        return CacheControl()
    if not isinstance(value, dict):
        raise BadRequest("'cache' must be an object such as {\"no-cache\": true}.", param="cache")
    ttl = value.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise BadRequest("'cache.ttl' must be a positive number of seconds.", param="cache")
    no_cache = value.get("no-cache", value.get("no_cache", False))
    return CacheControl(no_cache=bool(no_cache), ttl=float(ttl) if ttl is not None else None)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {sorted(ROLES)}, got {clip(repr(role))}.",
                param=f"messages[{i}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"messages[{i}].content must be a string or an array of parts.",
                param=f"messages[{i}].content",
            )
        if content is None and role in ("user", "system", "developer"):
            raise BadRequest(
                f"messages[{i}].content is required for role '{role}'.",
                param=f"messages[{i}].content",
            )


def _check_input(value: Any) -> None:
    if isinstance(value, str) and value:
        return
    if isinstance(value, list) and value:
        return
    raise BadRequest("'input' is required: a string or a non-empty array.", param="input")


_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "max_tokens": (1, None),
    "max_completion_tokens": (1, None),
    "n": (1, 128),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


def _check_numbers(body: dict[str, Any]) -> None:
    for name, (low, high) in _NUMBERS.items():
        value = body.get(name)
        if value is None:
            continue
        integer = isinstance(low, int) and not isinstance(low, bool)
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            kind = "an integer" if integer else "a number"
            raise BadRequest(f"'{name}' must be {kind}, got {clip(repr(value))}.", param=name)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise BadRequest(f"'{name}' must be {bound}, got {clip(repr(value))}.", param=name)
