"""Client compatibility (issue 11 item 4), the pure parts: `model_group_alias` resolved in the
config, output tokens clamped per provider and model, OpenAI parameters fitted to the model,
tool-call history without `tools` made valid for Anthropic, and the model list's paging."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.requests import Request

from proxy.config.loader import build_config
from proxy.config.model_limits import known_max_output, output_limit
from proxy.config.types import Deployment
from proxy.errors import ConfigError
from proxy.http.openai_routes import OpenAIHandlers, _page
from proxy.providers.anthropic.provider import AnthropicProvider, passthrough_body
from proxy.providers.openai_params import fit_body, fit_responses_body, takes_reasoning
from proxy.runtime import Runtime
from proxy.schema import ChatRequest, NativeBody
from proxy.secret import Secret
from tests.fakes import anthropic_checks
from tests.unit.parts import anthropic_dep, openai_dep

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def alias_config(aliases: Any, **router: Any) -> dict[str, Any]:
    return {
        "model_list": [
            anthropic_dep("sonnet", "sonnet-1"),
            anthropic_dep("sonnet", "sonnet-2"),
            openai_dep("gpt", "gpt-1"),
        ],
        "router_settings": {"model_group_alias": aliases, **router},
    }


# ---- model_group_alias ----


def test_an_alias_serves_its_target_groups_deployments() -> None:
    cfg = build_config(
        alias_config(
            {
                "claude-haiku-4-5-20251001": "sonnet",
                "gpt-5.4-nano": {"model": "gpt", "hidden": True},
            }
        )
    )
    assert cfg.aliases == {"claude-haiku-4-5-20251001": "sonnet", "gpt-5.4-nano": "gpt"}
    groups = cfg.groups
    assert [d.id for d in groups["claude-haiku-4-5-20251001"]] == ["sonnet-1", "sonnet-2"]
    assert [d.id for d in groups["gpt-5.4-nano"]] == ["gpt-1"]
    assert cfg.hidden_aliases == {"gpt-5.4-nano"}
    assert cfg.listed_models == ["sonnet", "gpt", "claude-haiku-4-5-20251001"]
    assert not cfg.warnings


def test_the_router_resolves_an_alias_without_knowing_about_it(make) -> None:
    parts = make(alias_config({"claude-haiku-4-5-20251001": "sonnet"}))
    deps = parts.router.resolve("claude-haiku-4-5-20251001")
    assert [d.id for d in deps] == ["sonnet-1", "sonnet-2"]
    assert deps[0].upstream_model("claude-haiku-4-5-20251001") == "claude-sonnet-4-5"


async def test_a_request_naming_an_alias_reaches_the_targets_deployment(make, upstream) -> None:
    parts = make(alias_config({"gpt-5.4-nano": "gpt"}))
    req = ChatRequest("gpt-5.4-nano", {"model": "gpt-5.4-nano", "messages": [HELLO]})
    _resp, dep, trace = await parts.complete(req)
    assert dep.id == "gpt-1"
    assert trace.fallback is None
    assert upstream.calls[-1].host == "gpt-1"
    assert upstream.calls[-1].body["model"] == "gpt-4o-mini"


def test_a_wildcard_alias_catches_a_family_of_names(make) -> None:
    parts = make(alias_config({"claude-haiku-*": "sonnet"}))
    deps = parts.router.resolve("claude-haiku-4-5-20251001")
    assert [d.id for d in deps] == ["sonnet-1", "sonnet-2"]
    assert deps[0].upstream_model("claude-haiku-4-5-20251001") == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("aliases", "expected"),
    [
        ({"haiku": "nope"}, "model_group_alias.haiku: 'nope' is not a model_name"),
        ({"sonnet": "gpt"}, "model_group_alias.sonnet: 'sonnet' is already a model_name"),
        ({"a": "b", "b": "a"}, "model_group_alias.a: the aliases loop"),
    ],
)
def test_an_alias_that_cannot_serve_is_one_warning(aliases, expected) -> None:
    cfg = build_config(alias_config(aliases))
    assert any(expected in w for w in cfg.warnings), cfg.warnings
    assert set(cfg.groups) == {"sonnet", "gpt"}
    assert [d.id for d in cfg.groups["sonnet"]] == ["sonnet-1", "sonnet-2"]


def test_an_alias_to_a_wildcard_group_is_refused_with_a_warning() -> None:
    doc = alias_config({"router": "openrouter/*", "or-claude": "openrouter/anthropic/claude"})
    doc["model_list"].append(
        {"model_name": "openrouter/*", "litellm_params": {"model": "openrouter/*", "api_key": "k"}}
    )
    cfg = build_config(doc)
    assert cfg.aliases == {}
    mine = [w for w in cfg.warnings if "model_group_alias" in w]
    assert len(mine) == 2 and all("wildcard group" in w for w in mine), mine


def test_an_alias_of_an_alias_and_the_targets_fallbacks() -> None:
    doc = alias_config(
        {"haiku": "small", "small": "sonnet"},
        fallbacks=[{"sonnet": ["gpt"]}, {"gpt": ["haiku"]}],
    )
    cfg = build_config(doc)
    assert cfg.aliases == {"haiku": "sonnet", "small": "sonnet"}
    assert cfg.fallbacks["haiku"] == ("gpt",)  # an alias falls back as its target does
    assert cfg.fallbacks["gpt"] == ("haiku",)  # and a fallback may name an alias
    assert not cfg.warnings


def test_an_alias_of_the_wrong_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_config(alias_config(["haiku", "sonnet"]))
    assert "router_settings.model_group_alias" in str(err.value)


def test_the_example_configs_alias_block_works_as_written(monkeypatch) -> None:
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master-0123456789")  # the example names it
    text = EXAMPLE.read_text()
    for line in ("model_group_alias:", "claude-haiku-4-5-20251001:", "gpt-5.4-nano:"):
        text = text.replace(f"  # {line}", f"  {line}").replace(f"  #   {line}", f"    {line}")
    cfg = build_config(yaml.safe_load(text))
    assert cfg.aliases == {"claude-haiku-4-5-20251001": "claude-sonnet", "gpt-5.4-nano": "gpt-4"}
    assert cfg.hidden_aliases == {"gpt-5.4-nano"}
    assert not [w for w in cfg.warnings if "model_group_alias" in w]


def test_check_prints_the_aliases_and_the_ones_that_serve_nothing(capsys) -> None:
    from tui.check import print_check

    print_check(build_config(alias_config({"claude-haiku-4-5-20251001": "sonnet", "x": "nope"})))
    out = capsys.readouterr().out
    assert "group claude-haiku-4-5-20251001" in out
    assert "model_group_alias.x: 'nope' is not a model_name" in out


# ---- output limits ----


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        ("claude-opus-4-20250514", 32_000),
        ("claude-opus-4-1-20250805", 32_000),
        ("claude-sonnet-4-20250514", 64_000),
        ("claude-sonnet-4-5-20250929", 64_000),
        ("claude-haiku-4-5-20251001", 64_000),
        ("claude-opus-4-5-20251101", 64_000),
        ("claude-opus-4-6", 128_000),
        ("claude-sonnet-4-6", 128_000),
        ("claude-opus-5", 128_000),
        ("claude-3-7-sonnet-20250219", 64_000),
        ("claude-3-5-haiku-latest", 8_192),
        ("claude-3-haiku-20240307", 4_096),
        ("anthropic/claude-sonnet-4.5", 64_000),
        ("us.anthropic.claude-opus-4-6-v1:0", 128_000),
        ("gpt-4o", 16_384),
        ("gpt-4o-mini", 16_384),
        ("gpt-4o-2024-05-13", 4_096),
        ("gpt-4.1", 32_768),
        ("gpt-4.1-nano", 32_768),
        ("gpt-5", 128_000),
        ("gpt-5.4-nano", 128_000),
        ("gpt-5-chat-latest", 16_384),
        ("o1", 100_000),
        ("o1-mini", 65_536),
        ("o3-mini", 100_000),
        ("o4-mini", 100_000),
        ("openai/gpt-4o", 16_384),
        ("llama-3.3-70b-versatile", None),
        ("some-new-model", None),
    ],
)
def test_known_output_limits(model: str, limit: int | None) -> None:
    assert known_max_output(model) == limit


def test_model_info_max_output_tokens_wins_and_max_tokens_is_its_old_name() -> None:
    doc = alias_config({})
    doc["model_list"][0]["model_info"]["max_output_tokens"] = 8_000
    doc["model_list"][1]["model_info"]["max_tokens"] = 4_000
    cfg = build_config(doc)
    first, second, gpt = cfg.deployments
    assert (first.max_output_tokens, second.max_output_tokens, gpt.max_output_tokens) == (
        8_000,
        4_000,
        None,
    )
    assert output_limit(first) == 8_000
    assert output_limit(gpt) == 16_384  # gpt-4o-mini's own
    assert not cfg.warnings


# ---- Anthropic: the translation and the pass-through clamp ----

HELLO = {"role": "user", "content": "Hello"}
ANTHROPIC = Deployment(
    id="anthropic-1",
    group="claude",
    provider="anthropic",
    wire="anthropic",
    model="claude-sonnet-4-20250514",
    api_base="https://api.anthropic.com",
    key=Secret("sk-ant-api03-secret-value-9f2a"),
    key_env=None,
)
PROVIDER = AnthropicProvider()


def to_anthropic(body: dict[str, Any], dep: Deployment = ANTHROPIC, **kw: Any) -> dict[str, Any]:
    req = ChatRequest("claude", {"model": "claude", "messages": [HELLO], **body}, **kw)
    out: dict[str, Any] = orjson.loads(PROVIDER.build_request(req, dep).content)
    assert anthropic_checks.problem(out) is None, anthropic_checks.problem(out)
    return out


def native(body: dict[str, Any], dep: Deployment = ANTHROPIC) -> dict[str, Any]:
    full = {"model": "claude", "messages": [HELLO], **body}
    req = ChatRequest("claude", {}, native=NativeBody("anthropic_messages", full))
    out: dict[str, Any] = orjson.loads(PROVIDER.build_request(req, dep).content)
    assert anthropic_checks.problem(out) is None, anthropic_checks.problem(out)
    return out


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_translation_clamps_to_the_models_limit(field: str) -> None:
    assert to_anthropic({field: 200_000})["max_tokens"] == 64_000
    assert to_anthropic({field: 1_000})["max_tokens"] == 1_000
    opus = dataclasses.replace(ANTHROPIC, model="claude-opus-4-1-20250805")
    assert to_anthropic({field: 48_000}, opus)["max_tokens"] == 32_000


def test_translation_clamps_to_the_deployments_limit_and_defaults_to_it() -> None:
    small = dataclasses.replace(ANTHROPIC, max_output_tokens=8_192)
    assert to_anthropic({"max_tokens": 32_000}, small)["max_tokens"] == 8_192
    assert to_anthropic({}, small)["max_tokens"] == 8_192
    unknown = dataclasses.replace(ANTHROPIC, model="claude-next")
    assert to_anthropic({"max_tokens": 500_000}, unknown)["max_tokens"] == 500_000


def test_translation_fits_the_thinking_budget_under_the_limit() -> None:
    small = dataclasses.replace(ANTHROPIC, max_output_tokens=8_192)
    body = to_anthropic({"max_tokens": 32_000, "reasoning_effort": "high"}, small)
    assert body["max_tokens"] == 8_192
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4_096}
    tiny = dataclasses.replace(ANTHROPIC, max_output_tokens=1_500)
    assert "thinking" not in to_anthropic({"reasoning_effort": "high"}, tiny)


def test_the_pass_through_clamps_max_tokens_and_nothing_else() -> None:
    sent = {
        "max_tokens": 200_000,
        "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }
    body = native(sent)
    assert body == {**sent, "model": "claude-sonnet-4-20250514", "messages": [HELLO],
                    "max_tokens": 64_000}  # fmt: skip
    assert native({"max_tokens": 48_000})["max_tokens"] == 48_000


def test_the_pass_through_shrinks_a_thinking_budget_the_clamp_left_no_room_for() -> None:
    small = dataclasses.replace(ANTHROPIC, max_output_tokens=8_192)
    thinking = {"type": "enabled", "budget_tokens": 16_000}
    body = native({"max_tokens": 48_000, "thinking": thinking}, small)
    assert body["max_tokens"] == 8_192
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4_096}
    adaptive = {"max_tokens": 48_000, "thinking": {"type": "adaptive"}}
    assert native(adaptive, small)["thinking"] == {"type": "adaptive"}
    tiny = passthrough_body({"max_tokens": 9_000, "thinking": thinking}, "m", 1_500)
    assert tiny["max_tokens"] == 1_500 and "thinking" not in tiny


# ---- tool-call history without `tools` (agents' title and summary calls) ----

TOOL_HISTORY = [
    {"role": "system", "content": "Write a title for this conversation."},
    {"role": "user", "content": "What is the weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {
        "role": "tool",
        "tool_call_id": "call_2",
        "content": "21C",
        "cache_control": {"type": "ephemeral"},
    },
    {"role": "assistant", "content": "Rome is warmer."},
    {"role": "user", "content": "Title?"},
]


def blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for turn in body["messages"] for b in turn["content"]]


def test_tool_history_without_tools_is_valid_for_anthropic_and_keeps_the_context() -> None:
    body = to_anthropic({"messages": TOOL_HISTORY})
    assert "tools" not in body
    # The real API refuses tool_use / tool_result blocks in a request that defines no tools.
    assert {b["type"] for b in blocks(body)} == {"text"}
    texts = [b["text"] for b in blocks(body)]
    assert '[called tool get_weather with {"city":"Paris"}]' in texts
    assert '[called tool get_weather with {"city":"Rome"}]' in texts
    assert "[tool result from get_weather] 18C" in texts
    result = next(b for b in blocks(body) if b["text"].endswith("21C"))
    assert result["cache_control"] == {"type": "ephemeral"}
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user", "assistant",
                                                     "user"]  # fmt: skip


def test_tool_history_without_tools_is_valid_when_thinking_and_when_a_call_is_unanswered() -> None:
    thinking = to_anthropic({"messages": TOOL_HISTORY, "reasoning_effort": "low"})
    assert thinking["thinking"]["type"] == "enabled"
    assert {b["type"] for b in blocks(thinking)} == {"text"}
    unanswered = [*TOOL_HISTORY[:3], {"role": "user", "content": "Summarize so far."}]
    assert {b["type"] for b in blocks(to_anthropic({"messages": unanswered}))} == {"text"}


def test_tool_history_with_tools_stays_structured() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    body = to_anthropic({"messages": TOOL_HISTORY, "tools": [tool]})
    assert {"tool_use", "tool_result"} <= {b["type"] for b in blocks(body)}


def test_the_responses_front_door_tool_history_without_tools_reaches_anthropic_valid() -> None:
    from proxy.endpoints import openai_responses

    raw = orjson.dumps(
        {
            "model": "claude",
            "input": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "18C"},
                {"role": "user", "content": "Title?"},
            ],
            "max_output_tokens": 500_000,
        }
    )
    req, _ctl, _info = openai_responses.parse(raw, {})
    body = orjson.loads(PROVIDER.build_request(req, ANTHROPIC).content)
    assert anthropic_checks.problem(body) is None
    assert {b["type"] for b in blocks(body)} == {"text"}
    assert body["max_tokens"] == 64_000


# ---- OpenAI: parameters fitted to the model ----


def openai(model: str, provider: str = "openai", **changes: Any) -> Deployment:
    return Deployment(
        id="d",
        group="g",
        provider=provider,
        wire="openai",
        model=model,
        api_base="http://x.test/v1",
        key=None,
        key_env=None,
        **changes,
    )


def fit(dep: Deployment, **body: Any) -> dict[str, Any]:
    doc = {"model": dep.model, "messages": [HELLO], **body}
    return fit_body(doc, dep)


def test_openai_clamps_to_the_models_limit_keeping_the_clients_field() -> None:
    assert fit(openai("gpt-4o"), max_tokens=32_000) == fit(openai("gpt-4o"), max_tokens=16_384)
    body = fit(openai("gpt-4o"), max_completion_tokens=32_000)
    assert body["max_completion_tokens"] == 16_384 and "max_tokens" not in body
    assert fit(openai("gpt-4.1"), max_tokens=1_000)["max_tokens"] == 1_000
    assert fit(openai("gpt-4o", max_output_tokens=2_000), max_tokens=4_000)["max_tokens"] == 2_000
    assert fit(openai("my-finetune"), max_tokens=500_000)["max_tokens"] == 500_000


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5.4-nano", "o1", "o3-mini", "o4-mini", "o1-mini"])
def test_openai_reasoning_models_get_max_completion_tokens(model: str) -> None:
    body = fit(openai(model), max_tokens=32_000)
    assert body["max_completion_tokens"] == 32_000 and "max_tokens" not in body
    both = fit(openai(model), max_tokens=10, max_completion_tokens=20)
    assert both["max_completion_tokens"] == 20 and "max_tokens" not in both
    assert fit(openai(model), max_tokens=900_000)["max_completion_tokens"] == known_max_output(
        model
    )


def test_other_vendors_get_max_tokens() -> None:
    groq = openai("llama-3.3-70b-versatile", provider="groq")
    body = fit(groq, max_completion_tokens=8_000)
    assert body["max_tokens"] == 8_000 and "max_completion_tokens" not in body
    router = openai("openai/gpt-4o", provider="openrouter")
    assert fit(router, max_completion_tokens=32_000)["max_tokens"] == 16_384


@pytest.mark.parametrize(
    ("model", "provider", "kept"),
    [
        ("gpt-4o", "openai", False),
        ("gpt-4.1-mini", "openai", False),
        ("gpt-5-chat-latest", "openai", False),
        ("o1-mini", "openai", False),
        ("llama-3.3-70b-versatile", "groq", False),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together_ai", False),
        ("mistral-large-latest", "mistral", False),
        ("deepseek-chat", "deepseek", False),
        ("grok-4", "xai", False),
        ("gpt-5", "openai", True),
        ("o3", "openai", True),
        ("grok-3-mini", "xai", True),
        ("qwen3-32b", "groq", True),
        ("deepseek-reasoner", "deepseek", True),
        ("anthropic/claude-sonnet-4.5", "openrouter", True),
        ("my-finetune", "hosted_vllm", True),
    ],
)
def test_reasoning_effort_dropped_for_models_that_do_not_reason(model, provider, kept) -> None:
    assert takes_reasoning(model) is kept
    body = fit(openai(model, provider=provider), reasoning_effort="high")
    assert ("reasoning_effort" in body) is kept


def test_fit_body_leaves_other_bodies_alone() -> None:
    dep = openai("gpt-4o")
    plain = {"model": "gpt-4o", "messages": [HELLO], "temperature": 0}
    assert fit_body(dict(plain), dep) == plain
    completions = fit_body({"model": "gpt-4o", "prompt": "x", "max_tokens": 99_999}, dep)
    assert completions == {"model": "gpt-4o", "prompt": "x", "max_tokens": 16_384}
    embeddings = {"model": "text-embedding-3-small", "input": "x"}
    assert fit_body(dict(embeddings), openai("text-embedding-3-small")) == embeddings
    odd = {"model": "gpt-4o", "messages": [HELLO], "max_tokens": "lots"}
    assert fit_body(dict(odd), dep) == odd  # not ours to judge: the endpoint's 400


ENCRYPTED = "reasoning.encrypted_content"


def test_fit_responses_body() -> None:
    codex = {
        "model": "gpt-4.1",
        "input": "hi",
        "max_output_tokens": 100_000,
        "reasoning": {"effort": "medium"},
        "text": {"verbosity": "low", "format": {"type": "text"}},
        "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
        "store": False,
    }
    body = fit_responses_body(dict(codex), openai("gpt-4.1"))
    assert body == {
        "model": "gpt-4.1",
        "input": "hi",
        "max_output_tokens": 32_768,
        "text": {"format": {"type": "text"}},
        "include": ["message.output_text.logprobs"],
        "store": False,
    }
    gpt5 = fit_responses_body({**codex, "model": "gpt-5.5"}, openai("gpt-5.5"))
    assert gpt5 == {**codex, "model": "gpt-5.5"}  # 100_000 fits under 128K
    only = {"model": "gpt-4o", "text": {"verbosity": "low"}, "include": [ENCRYPTED]}
    assert fit_responses_body(only, openai("gpt-4o")) == {"model": "gpt-4o"}


# ---- GET /v1/models: paging and the 404 in the asker's shape ----

ENTRIES = [{"id": name} for name in ("a", "b", "c", "d")]


@pytest.mark.parametrize(
    ("query", "ids", "more"),
    [
        ({}, "abcd", False),
        ({"limit": "1000"}, "abcd", False),
        ({"limit": "2"}, "ab", True),
        ({"limit": "2", "after_id": "b"}, "cd", False),
        ({"limit": "1", "after_id": "b"}, "c", True),
        ({"limit": "2", "before_id": "d"}, "bc", True),
        ({"before_id": "c"}, "ab", False),
        ({"after_id": "zz"}, "", False),
        ({"limit": "lots"}, "abcd", False),
        ({"limit": "0"}, "a", True),
    ],
)
def test_model_list_paging(query: dict[str, str], ids: str, more: bool) -> None:
    page, has_more = _page(ENTRIES, query)
    assert "".join(e["id"] for e in page) == ids
    assert has_more is more


def get(handlers: OpenAIHandlers, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    handler = handlers.model if "/models/" in path else handlers.models
    response = asyncio.run(handler(Request(scope)))
    return response.status_code, orjson.loads(response.body)


def test_one_model_in_both_shapes_and_an_unknown_one_in_the_askers_shape() -> None:
    import anthropic.types
    import openai.types

    cfg = build_config(alias_config({"gpt-5.4-nano": {"model": "gpt", "hidden": True}}))
    handlers = OpenAIHandlers(Runtime(cfg))
    status, one = get(handlers, "/v1/models/gpt-5.4-nano", {})
    assert status == 200
    assert openai.types.Model.model_validate(one).id == "gpt-5.4-nano"
    info = anthropic.types.ModelInfo.model_validate(one)
    assert (info.display_name, info.type, info.max_tokens) == ("gpt-5.4-nano", "model", 16_384)
    status, listed = get(handlers, "/v1/models", {})
    assert [m["id"] for m in listed["data"]] == ["sonnet", "gpt"]  # hidden stays unlisted
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == ("sonnet", "gpt", False)
    status, theirs = get(handlers, "/v1/models/nope", {"anthropic-version": "2023-06-01"})
    assert status == 404
    assert theirs["type"] == "error" and theirs["error"]["type"] == "not_found_error"
    status, ours = get(handlers, "/models/nope", {})
    assert status == 404
    assert ours["error"]["code"] == "model_not_found" and ours["error"]["param"] == "model"
