"""Fuzzing every route with hypothesis (issue 13 §10): hostile bodies and headers never get a
5xx, errors keep the route's shape, the server stays up, and no key is ever in an answer.

One proxy (with a master key) and one fake upstream serve the whole module. The fake answers
every request it can read with 200 and never validates, so any 5xx can only be the proxy's own.
Bodies are valid-shaped ones with one field replaced, removed or added (random JSON values,
huge numbers, NaN and Infinity as raw text, unicode edge cases, lone surrogates as escapes and
as raw bytes, deep nesting), random JSON documents and garbage bytes; headers vary the key, the
content type and the headers the front door reads. Every run is derandomized, so CI sees the
same examples each time.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.loader import build_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.exchange import Exchange
from tests.fakes.http11 import write_answer
from tests.fakes.steps import Reply
from tests.fakes.upstream import FakeUpstream, _render

OPENAI_KEY = "sk-fuzz-openai-upstream-7f3a9c2e5b41d8"
ANTHROPIC_KEY = "sk-ant-fuzz-upstream-4d8e1b6a0c93f2"
SECRETS = (MASTER_KEY, OPENAI_KEY, ANTHROPIC_KEY)
"""Neither a whole key nor all of it but the last 4 characters may be in any answer."""
LEAKS = tuple(part for key in SECRETS for part in (key, key[3:-4]))
DEPLOYMENTS = ("gpt-4-a", "claude-a", "router-a", "mock-a")


MAX_ERROR = 4096
"""Errors echo only a short prefix of what the client sent (issue 13 §6)."""
KEYED = {"authorization": f"Bearer {MASTER_KEY}"}
JSON = {"content-type": "application/json"}


def fuzz_settings(examples: int) -> settings:
    """Bounded, reproducible runs: the same examples in CI as here, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- the fake upstream and the proxy ----


class AnswerAll(FakeUpstream):
    """The fake upstream without its validation 400s: every request it can read gets 200, and
    a body its renderers trip over gets the plain default answer."""

    fallbacks = 0
    """Requests answered by the fallback (a body the renderers tripped over)."""

    def _invalid(self, req: Any, seen: Any, exchange: Any, anthropic: bool) -> None:
        return None

    async def _respond(self, req: Any, reader: Any, writer: Any) -> bool:
        try:
            return await super()._respond(req, reader, writer)
        except Exception:
            self.fallbacks += 1
            body = req.json()
            stream = isinstance(body, dict) and body.get("stream") is True
            exchange = Exchange(req.path, {"stream": stream}, None, 0)
            answer = _render(Reply(), exchange, req.path.startswith("/v1/messages"))
            return await write_answer(writer, answer, keep_alive=False)


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnswerAll]:
    up = AnswerAll()
    up.start()
    try:
        yield up
    finally:
        up.stop()


@pytest.fixture(scope="module")
def proxy(upstream: AnswerAll, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """One proxy for the module: OpenAI and Anthropic groups on the fake, a wildcard group, a
    mock group, the local cache and a usage store, behind the master key."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    doc: dict[str, Any] = {
        "model_list": [
            openai_deployment("gpt-4", upstream, OPENAI_KEY, id="gpt-4-a"),
            anthropic_deployment("claude", upstream, ANTHROPIC_KEY, id="claude-a"),
            openai_deployment(
                "openrouter/*", upstream, OPENAI_KEY, model="openrouter/*", id="router-a"
            ),
            {
                "model_name": "mock",
                "litellm_params": {"model": "mock/fuzz", "mock_response": "Hi there"},
                "model_info": {"id": "mock-a"},
            },
        ],
        "litellm_settings": {"cache": True, "cache_params": {"type": "local"}},
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    runtime = Runtime(build_config(doc, path=path), usage_db=tmp / "usage.db")
    server = ProxyServer(runtime, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="proxy", daemon=True)
    thread.start()
    if not server.started.wait(15) or server.bind_error:
        raise RuntimeError(f"proxy did not start: {server.bind_error}")
    running = Proxy(server, runtime, thread, f"http://127.0.0.1:{server.port}", MASTER_KEY)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def http(proxy: Proxy) -> Iterator[httpx.Client]:
    """A client that sends only the headers each example gives (no key by default)."""
    with httpx.Client(base_url=proxy.url, timeout=20) as client:
        yield client


# ---- the routes and their valid bodies ----


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    paths: tuple[str, ...]
    anthropic: bool
    """Errors in Anthropic's shape (else OpenAI's)."""
    bases: tuple[dict[str, Any], ...]
    json_body: bool = True


USER = {"role": "user", "content": "Hello there"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CHAT_BASES = (
    {"model": "gpt-4", "messages": [USER]},
    {"model": "claude", "messages": [USER], "max_tokens": 16},
    {
        "model": "gpt-4",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [TOOL],
        "tool_choice": "auto",
        "temperature": 0.5,
        "top_p": 1,
        "max_tokens": 32,
        "stop": ["\n\n"],
        "n": 1,
        "seed": 7,
        "user": "u1",
        "response_format": {"type": "text"},
        "cache": {"no-cache": True},
    },
    {
        "model": "claude",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            },
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 16,
    },
    {"model": "gpt-4", "messages": [USER], "stream": True, "prompt_cache_key": "s1"},
    {"model": "openrouter/some/model", "messages": [USER], "cache": {"ttl": 60}},
    {"model": "mock", "messages": [USER], "stream": True},
)
RICH_TURNS = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Look"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iV"},
            },
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "d"},
            },
            {"type": "document", "source": {"type": "content", "content": [{"type": "text"}]}},
            {"type": "document", "source": {"type": "base64", "data": "JVBERi0x"}, "title": "t"},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "x"},
            {"type": "text", "text": "Calling"},
            {"type": "tool_use", "id": "tu_1", "name": "w", "input": {"c": [1, {"d": None}]}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "tu_1",
                "is_error": False,
                "content": [{"type": "text", "text": "sunny"}, {"type": "search_result"}],
            }
        ],
    },
]
MESSAGES_BASES = (
    {"model": "claude", "max_tokens": 16, "messages": [USER]},
    {"model": "gpt-4", "max_tokens": 16, "messages": [USER], "stream": True},
    {
        "model": "claude",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"c": 1}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"}],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather",
                "input_schema": {"type": "object", "properties": {"c": {"type": "integer"}}},
            }
        ],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "user_abc_account__session_0f0e0d0c"},
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    },
    {
        "model": "gpt-4",
        "max_tokens": 16,
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                    {"type": "text", "text": "What is it?"},
                ],
            }
        ],
        "top_k": 5,
    },
    {"model": "mock", "max_tokens": 16, "messages": [USER]},
    {"model": "gpt-4", "max_tokens": 16, "messages": RICH_TURNS, "stream": True},
    {"model": "claude", "max_tokens": 16, "messages": RICH_TURNS},
)
COUNT_BASES = (
    {"model": "claude", "messages": [USER]},
    {"model": "gpt-4", "system": "Be brief.", "messages": [USER], "tools": []},
    {
        "model": "gpt-4",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": RICH_TURNS,
        "tools": [{"name": "w", "description": "d", "input_schema": {"type": "object"}}],
    },
    {"model": "claude", "messages": RICH_TURNS, "thinking": {"type": "enabled"}},
)
RICH_ITEMS = [
    {"type": "message", "role": "developer", "content": "Be brief."},
    {"role": "system", "content": [{"type": "input_text", "text": "Really."}]},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Look"},
            {"type": "input_image", "image_url": "data:image/png;base64,iV", "detail": "low"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JV", "filename": "f"},
        ],
    },
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi"}, {"type": "refusal", "refusal": "no"}],
    },
    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
    {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a": 1}'},
    {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text"}]},
    {"type": "custom_tool_call", "call_id": "c2", "name": "x", "input": "raw"},
    {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
]
RESPONSES_BASES = (
    {"model": "claude", "input": RICH_ITEMS, "stream": True, "include": ["reasoning"]},
    {"model": "gpt-4", "input": RICH_ITEMS, "tools": [{"type": "custom", "name": "x"}]},
    {"model": "gpt-4", "input": "Hello there"},
    {"model": "claude", "input": "Hello there", "stream": True},
    {
        "model": "gpt-4",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "max_output_tokens": 32,
        "reasoning": {"effort": "low"},
        "store": False,
        "stream": True,
    },
    {
        "model": "claude",
        "input": [{"type": "message", "role": "user", "content": "Hi"}],
        "text": {"format": {"type": "text"}},
        "parallel_tool_calls": True,
        "metadata": {"k": "v"},
    },
)
EMBEDDINGS_BASES = (
    {"model": "gpt-4", "input": "Hello there"},
    {"model": "gpt-4", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8},
    {"model": "claude", "input": [[1, 2, 3]]},
)
COMPLETIONS_BASES = (
    {"model": "gpt-4", "prompt": "Once upon a time", "max_tokens": 8},
    {"model": "gpt-4", "prompt": ["a", "b"], "stream": True, "echo": False, "logprobs": None},
    {"model": "claude", "prompt": "Say hi", "suffix": "!", "temperature": 0},
)
ACTIONS_BASES = (
    {"action": "reset", "deployment": "gpt-4-a"},
    {"action": "disable", "deployment": "claude-a"},
    {"action": "enable", "deployment": "router-a"},
    {"action": "probe", "deployment": "gpt-4-a"},
    {"action": "clear_cache"},
)

CHAT = Route("chat", "POST", ("/v1/chat/completions", "/chat/completions"), False, CHAT_BASES)
MESSAGES = Route(
    "messages", "POST", ("/v1/messages", "/messages", "/v1/messages?beta=true"), True,
    MESSAGES_BASES,
)  # fmt: skip
COUNT_TOKENS = Route(
    "count_tokens", "POST", ("/v1/messages/count_tokens", "/messages/count_tokens"), True,
    COUNT_BASES,
)  # fmt: skip
RESPONSES = Route("responses", "POST", ("/v1/responses", "/responses"), False, RESPONSES_BASES)
EMBEDDINGS = Route("embeddings", "POST", ("/v1/embeddings", "/embeddings"), False, EMBEDDINGS_BASES)
COMPLETIONS = Route(
    "completions", "POST", ("/v1/completions", "/completions"), False, COMPLETIONS_BASES
)
ACTIONS = Route("actions", "POST", ("/llmproxy/actions",), False, ACTIONS_BASES)
STATE = Route("state", "GET", ("/llmproxy/state",), False, ({},), json_body=False)
BODY_ROUTES = (CHAT, MESSAGES, COUNT_TOKENS, RESPONSES, EMBEDDINGS, COMPLETIONS, ACTIONS)


# ---- strategies: JSON values ----

SPECIAL_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202etxt.exe\u202c",
    "\u2066\u2067\u2068\u2069\u200e\u200f",
    "\ufeff",
    "\u200b\u200d",
    "\U0001f984\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\U0010ffff\ufffe\uffff",
    "e\u0301\u0301\u0301",
    "\ud800",
    "\udfff",
    "\ud83d",
    "a\ud800b\udc00",
    "\r\n\r\n",
    "\x1b]0;TITLE\x07\x1b[2J",
    "[/]",
    "[bold red]x[/]",
    "[link=http://x]y[/link]",
    "%s%n%x",
    "{0}{}",
    "${HOME}",
    "\\",
    '"',
    "null",
    "../../../etc/passwd",
    "*",
    "/",
    "os.environ/HOME",
    "gpt-4",
    "claude",
    "mock",
    "openrouter/[/]",
    "openrouter/\x1b[31m\n",
    "x" * 5000,
)
HUGE_NUMBERS = (
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    -0.0,
    0.0,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    2**64 + 1,
    -(2**63) - 1,
    10**30,
    -(10**30),
    10**400,
    -1,
    0,
    1,
)
LONG_VALUES = (
    "x" * 5000,
    "\x00" * 3000,
    "\U0001f984" * 3000,
    ["y" * 5000],
    {"type": "z" * 5000},
    {"z" * 5000: 1},
    [[["w" * 5000]]],
    float(10**300),
    10**4000,
)
RAW_NAN = (math.nan, math.inf, -math.inf)
"""Written by json.dumps as the bare words NaN, Infinity and -Infinity."""
FIELDS = (
    "model", "messages", "role", "content", "type", "text", "stream", "tools", "tool_choice",
    "max_tokens", "input", "prompt", "system", "action", "deployment", "cache", "ttl",
    "no-cache", "function", "name", "arguments", "parameters", "tool_calls", "stream_options",
    "metadata", "user_id", "instructions", "image_url", "url", "source", "thinking",
    "api_key", "api_base", "base_url", "n", "logprobs", "response_format",
)  # fmt: skip

texts = st.one_of(
    st.text(max_size=16),
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(), max_size=8),  # lone surrogates included
)
numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HUGE_NUMBERS),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
keys = st.one_of(st.sampled_from(FIELDS), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
values = st.one_of(json_values, json_values, json_values, json_values, st.sampled_from(RAW_NAN))


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yields the path of every value in `doc` (the root first)."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths_of(value, (*prefix, index))


def value_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return doc


def removed(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return doc
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return doc


def added(doc: Any, path: tuple[Any, ...], key: str, value: Any) -> Any:
    """Returns `doc` with `value` added under `key` to the object (or appended to the list)
    at `path`; a scalar there is left alone."""
    doc = copy.deepcopy(doc)
    node = doc
    for step in path:
        node = node[step]
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list):
        node.append(value)
    return doc


def dumps(doc: Any, ascii_only: bool) -> bytes:
    """JSON text with NaN and Infinity as bare words; a lone surrogate is a `\\ud800` escape,
    or (not `ascii_only`) its raw bytes, which are not UTF-8."""
    return json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


DEEP = "__fuzz_deep__"


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"content":[' * depth + '"x"' + "]}" * depth


@st.composite
def bodies(draw: st.DrawFn, route: Route) -> bytes:
    """A body for `route`: mostly a valid one with one change, else anything at all."""
    base = draw(st.sampled_from(route.bases))
    everywhere = list(paths_of(base))
    path = draw(st.sampled_from(everywhere[1:]))
    ascii_only = draw(st.booleans())
    kind = draw(
        st.sampled_from(
            ("replace",) * 5
            + ("same type",) * 4
            + ("remove", "add", "add", "long", "deep", "document", "cut", "bytes")
        )
    )
    if kind == "long":  # a long value anywhere: an error may echo only a prefix of it
        return dumps(replaced(base, path, draw(st.sampled_from(LONG_VALUES))), ascii_only)
    if kind == "replace":
        return dumps(replaced(base, path, draw(values)), ascii_only)
    if kind == "same type":  # a string or a number where one was: the body may still be valid
        leaves = [p for p in everywhere if isinstance(value_at(base, p), str | int | float)]
        path = draw(st.sampled_from(leaves))
        if isinstance(value_at(base, path), str):
            value = draw(texts)
        elif isinstance(value_at(base, path), bool):
            value = draw(scalars)
        else:
            value = draw(st.one_of(numbers, numbers, numbers, st.sampled_from(RAW_NAN)))
        return dumps(replaced(base, path, value), ascii_only)
    if kind == "remove":
        return dumps(removed(base, path), ascii_only)
    if kind == "add":
        return dumps(
            added(base, draw(st.sampled_from(everywhere)), draw(keys), draw(values)), ascii_only
        )
    if kind == "deep":
        depth = draw(st.sampled_from((64, 190, 200, 201, 255, 1000, 1023, 1024, 1025, 100_000)))
        text = nested(depth, draw(st.sampled_from(("list", "object", "content"))))
        return dumps(replaced(base, path, DEEP), ascii_only).replace(
            json.dumps(DEEP).encode(), text.encode()
        )
    if kind == "document":
        return dumps(draw(values), ascii_only)
    if kind == "cut":  # valid JSON cut short, or with something after it
        raw = dumps(base, ascii_only)
        cut = draw(st.integers(0, len(raw)))
        tail = draw(st.sampled_from((b"", b"}", b" garbage", b"\x00", b"\n{}", b"\xff")))
        return raw[:cut] + tail
    return draw(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                (
                    b"",
                    b"null",
                    b"[]",
                    b"{}",
                    b"NaN",
                    b"-Infinity",
                    b'"text"',
                    b"\xef\xbb\xbf" + dumps(base, True),  # a UTF-8 byte order mark first
                    dumps(base, True)[:-1] + b',"model":{"model":[]}}',  # a repeated key
                    b'{"model": "gpt-4", "messages": [' + b"1," * 20000 + b"1]}",
                )
            ),
        )
    )


# ---- strategies: headers ----

header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(lambda s: s.strip(" \t"))
"""Header values h11 lets a client send: visible Latin-1 with inner spaces."""
GOOD_AUTH = (
    {"authorization": f"Bearer {MASTER_KEY}"},
    {"authorization": f"bearer   {MASTER_KEY}"},
    {"x-api-key": MASTER_KEY},
    {"api-key": MASTER_KEY},
)
BAD_AUTH = st.one_of(
    st.just({}),
    st.sampled_from(
        (
            {"authorization": "Bearer"},
            {"authorization": f"Bearer {MASTER_KEY}x"},
            {"authorization": f"Bearer {MASTER_KEY[:-1]}"},
            {"authorization": f"Basic {MASTER_KEY}x"},
            {"authorization": "Bearer " + "\xe9" * 40},
            {"authorization": f"Bearer {OPENAI_KEY}"},  # a provider's key is not ours
            {"authorization": "garbage", "x-api-key": MASTER_KEY},  # authorization wins
            {"x-api-key": ""},
        )
    ),
    header_text.map(lambda v: {"authorization": v}),
    header_text.map(lambda v: {"x-api-key": v}),
)
JSON_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json;charset=latin-1",
    "application/vnd.api+json",
)
OTHER_TYPES = (
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    "application/jsonx",
    "json",
    "application/",
    "*/*",
)
EXTRA_HEADERS = (
    "x-request-id",
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
    "cache-control",
    "x-session-id",
    "x-session-affinity",
    "x-claude-code-session-id",
    "session-id",
    "origin",
    "content-length-x",
    "x-stainless-lang",
)
REQUEST_IDS = (
    "req-1",
    "x" * 128,
    "x" * 129,
    "a b",
    "\xff\xfe",
    "\x1b]0;t\x07"[1:-1],
    "../../..",
    "%0d%0a",
)


@dataclass(frozen=True)
class Headers:
    values: dict[str, str]
    authed: bool
    """The master key is where the proxy looks for it."""
    json_type: bool | None
    """The content type is JSON (None: no content-type header)."""


@st.composite
def headers(draw: st.DrawFn) -> Headers:
    values: dict[str, str] = {}
    good = draw(st.sampled_from((True,) * 15 + (False,)))  # a few without the key
    auth = draw(st.sampled_from(GOOD_AUTH)) if good else draw(BAD_AUTH)
    values.update(auth)
    choice = draw(st.sampled_from((0,) * 14 + (1, 1, 2)))
    json_type: bool | None
    if choice == 0:
        values["content-type"] = draw(st.sampled_from(JSON_TYPES))
        json_type = True
    elif choice == 1:
        values["content-type"] = draw(st.one_of(st.sampled_from(OTHER_TYPES), header_text))
        json_type = _is_json_type(values["content-type"])
    else:
        json_type = None
    for name in draw(st.lists(st.sampled_from(EXTRA_HEADERS), max_size=4, unique=True)):
        if name == "x-request-id":
            values[name] = draw(st.one_of(st.sampled_from(REQUEST_IDS), header_text))
        elif name == "anthropic-version":
            values[name] = draw(st.one_of(st.just("2023-06-01"), header_text))
        else:
            values[name] = draw(header_text)
    return Headers(values, _authed(values), json_type)


def _is_json_type(value: str) -> bool:
    media = value.partition(";")[0].strip().lower()
    return (
        value == "application/json"
        or media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    )


def _authed(values: dict[str, str]) -> bool:
    """Whether the headers carry the master key as the contract reads them: `authorization`
    (`Bearer` or bare) first, else `x-api-key` or `api-key`."""
    given = values.get("authorization")
    if given is not None:
        scheme, _, token = given.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else given.strip()
    else:
        given = values.get("x-api-key") or values.get("api-key")
    return given == MASTER_KEY


def encoded(values: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode("latin-1")) for k, v in values.items()]


# ---- the properties ----


def check_answer(route: Route, response: httpx.Response, sent: Headers | None = None) -> None:
    """Asserts the properties of one answer; `sent` None: a request with the key and JSON."""
    status = response.status_code
    text = response.text
    assert status < 500, f"{route.name}: {status} {text[:2000]}"
    assert "Internal error" not in text, text[:2000]
    assert_no_keys(response)
    assert_request_id(response)
    if sent is not None and not sent.authed:
        assert status == 401, f"{route.name}: no key, but {status} {text[:500]}"
    elif sent is not None and route.json_body and sent.json_type is not True:
        assert status == 415, f"{route.name}: not JSON, but {status} {text[:500]}"
    if status >= 400:
        assert_error_shape(route, response)
        assert len(response.content) <= MAX_ERROR, f"a long error: {text[:300]}"
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert_clean_stream(route, text)
    else:
        response.json()


def assert_request_id(response: httpx.Response) -> None:
    """Every answer names the request, with an id safe to show and log (issue 13 §6)."""
    request_id = response.headers.get("x-request-id", "")
    assert 0 < len(request_id) <= 128, request_id
    assert request_id.isascii() and request_id.isprintable() and " " not in request_id


def assert_no_keys(response: httpx.Response) -> None:
    answer = response.text + "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    for leak in LEAKS:
        assert leak not in answer, f"key material in the answer: {leak[:6]}..."


def assert_error_shape(route: Route, response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers.get("x-request-id")
    body = response.json()
    assert isinstance(body, dict), body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str) and isinstance(error.get("type"), str), body
    if route.anthropic:
        assert body["type"] == "error", body
        assert set(error) == {"type", "message"}, body
    else:
        assert set(error) == {"message", "type", "param", "code"}, body


def assert_clean_stream(route: Route, text: str) -> None:
    """A stream served from a healthy upstream carries no error event and ends properly."""
    assert "event: error" not in text and 'data: {"error"' not in text, text[-2000:]
    assert "response.failed" not in text, text[-2000:]
    if route in (CHAT, COMPLETIONS):
        assert text.rstrip().endswith("data: [DONE]"), text[-500:]
    elif route is MESSAGES:
        assert "event: message_stop" in text, text[-500:]
    elif route is RESPONSES:
        assert "response.completed" in text or "response.incomplete" in text, text[-500:]


def assert_healthy(http: httpx.Client, upstream: AnswerAll) -> None:
    """The server is up and answers, nothing it shows has a key in it, and the client's key
    never went upstream."""
    for seen in upstream.requests:
        assert MASTER_KEY not in repr(seen.headers) and MASTER_KEY.encode() not in seen.raw
    upstream.reset()  # the records of this batch, checked
    assert http.get("/health/liveness").status_code == 200
    health = http.get("/health", headers=KEYED)
    assert health.status_code == 200, health.text
    for route, body in (
        (CHAT, CHAT_BASES[0]),
        (CHAT, CHAT_BASES[1]),
        (MESSAGES, MESSAGES_BASES[0]),
    ):
        response = http.post(route.paths[0], json=body, headers=KEYED)
        assert response.status_code == 200, response.text  # and it still serves
        check_answer(route, response)
    for path in ("/llmproxy/state", "/v1/models", "/metrics"):
        response = http.get(path, headers=KEYED)
        assert response.status_code == 200, (path, response.text[:500])
        assert_no_keys(response)


def enable_all(http: httpx.Client) -> None:
    """Undoes what a fuzzed admin action may have done to the pool."""
    for dep in DEPLOYMENTS:
        for action in ("enable", "reset"):
            body = {"action": action, "deployment": dep}
            response = http.post("/llmproxy/actions", json=body, headers=KEYED)
            assert response.status_code == 200, response.text


def fuzz_route(
    http: httpx.Client, route: Route, examples: int, after: Callable[[], None] | None = None
) -> None:
    @fuzz_settings(examples)
    @given(body=bodies(route), sent=headers(), path=st.sampled_from(route.paths))
    def one(body: bytes, sent: Headers, path: str) -> None:
        response = http.request(route.method, path, content=body, headers=encoded(sent.values))
        check_answer(route, response, sent)
        if after is not None:
            after()

    one()


# ---- the tests: one batch per route ----


def test_chat_completions(http, upstream) -> None:
    fuzz_route(http, CHAT, 400)
    assert_healthy(http, upstream)


def test_messages(http, upstream) -> None:
    fuzz_route(http, MESSAGES, 400)
    assert_healthy(http, upstream)


def test_count_tokens(http, upstream) -> None:
    fuzz_route(http, COUNT_TOKENS, 250)
    assert_healthy(http, upstream)


def test_responses(http, upstream) -> None:
    fuzz_route(http, RESPONSES, 400)
    assert_healthy(http, upstream)


def test_embeddings(http, upstream) -> None:
    fuzz_route(http, EMBEDDINGS, 150)
    assert_healthy(http, upstream)


def test_completions(http, upstream) -> None:
    fuzz_route(http, COMPLETIONS, 150)
    assert_healthy(http, upstream)


def test_admin_actions(http, upstream) -> None:
    fuzz_route(http, ACTIONS, 150, after=lambda: enable_all(http))
    assert_healthy(http, upstream)


def test_admin_state(http, upstream) -> None:
    @fuzz_settings(60)
    @given(sent=headers(), body=st.one_of(st.just(b""), st.binary(max_size=32)))
    def one(sent: Headers, body: bytes) -> None:
        response = http.request(
            "GET", "/llmproxy/state", content=body, headers=encoded(sent.values)
        )
        check_answer(STATE, response, sent)
        if response.status_code == 200:
            assert isinstance(response.json().get("deployments"), list)

    one()
    assert_healthy(http, upstream)


def test_huge_strings(http, upstream) -> None:
    """A few MB in one string, on each route; few examples, the bodies are big."""

    @fuzz_settings(8)
    @given(
        route=st.sampled_from(BODY_ROUTES),
        size=st.sampled_from((1 << 20, 3 << 20, 5 << 20)),
        piece=st.sampled_from(("x", "\U0001f984", "\x00", "\\ud800", "a b ")),
        data=st.data(),
    )
    def one(route: Route, size: int, piece: str, data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(route.bases))
        path = data.draw(st.sampled_from(list(paths_of(base))[1:]))
        raw = dumps(replaced(base, path, DEEP), True)
        if piece == "\\ud800":
            big = b'"' + b"\\ud800" * (size // 6) + b'"'
        else:
            big = json.dumps(piece * (size // len(piece.encode())), ensure_ascii=False).encode()
        body = raw.replace(json.dumps(DEEP).encode(), big)
        response = http.post(route.paths[0], content=body, headers={**KEYED, **JSON})
        check_answer(route, response)
        if route is ACTIONS:
            enable_all(http)

    one()
    assert_healthy(http, upstream)


# ---- what the fuzzing found, kept as plain cases ----

FOUND = (
    # an unhashable value looked up in a set of names: 500
    (CHAT, {"model": "gpt-4", "messages": [{"role": [], "content": "Hi"}]}, 400),
    (RESPONSES, {"model": "claude", "input": [{"type": [], "role": "user", "content": "Hi"}]}, 400),
    (
        COUNT_TOKENS,
        {"model": "gpt-4", "messages": [{"role": "user", "content": [{"type": {}}]}]},
        200,
    ),
    (COUNT_TOKENS, {"model": "gpt-4", "messages": [USER], "tools": 5}, 200),
    # nesting orjson reads (1024 levels) but cannot write back (254): 500 when sent on
    (CHAT, {"model": "gpt-4", "messages": [USER], "metadata": DEEP}, 400),
    (MESSAGES, {"model": "claude", "max_tokens": 8, "messages": [USER], "metadata": DEEP}, 400),
    (RESPONSES, {"model": "gpt-4", "input": "Hi", "metadata": DEEP}, 400),
    # a client's long value echoed whole in the error
    (CHAT, {"model": "gpt-4", "messages": [{"role": "x" * 5000, "content": "Hi"}]}, 400),
    (CHAT, {"model": "gpt-4", "messages": [USER], "temperature": "x" * 5000}, 400),
    (RESPONSES, {"model": "gpt-4", "input": [{"type": "x" * 5000}]}, 400),
    (MESSAGES, {"model": "gpt-4", "max_tokens": 8, "messages": [{"role": "x" * 5000}]}, 400),
)


@pytest.mark.parametrize(("route", "body", "status"), FOUND, ids=lambda v: getattr(v, "name", ""))
def test_what_the_fuzzing_found(http, route: Route, body: dict[str, Any], status: int) -> None:
    raw = dumps(body, True).replace(json.dumps(DEEP).encode(), nested(300, "list").encode())
    response = http.post(route.paths[0], content=raw, headers={**KEYED, **JSON})
    assert response.status_code == status, response.text[:500]
    check_answer(route, response)


def test_nesting_within_the_limit_is_served(http) -> None:
    body = dumps({"model": "gpt-4", "messages": [USER], "metadata": DEEP}, True)
    raw = body.replace(json.dumps(DEEP).encode(), nested(190, "object").encode())
    response = http.post("/v1/chat/completions", content=raw, headers={**KEYED, **JSON})
    assert response.status_code == 200, response.text[:500]
