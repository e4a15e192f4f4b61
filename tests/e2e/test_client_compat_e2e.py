"""Client compatibility (issue 11 item 4) through the real proxy, with the official `openai` and
`anthropic` SDKs against the fake upstreams: `model_group_alias`, output tokens clamped to the
deployment's limit, tool-call history without `tools`, `/v1/models` in both SDKs' shapes, and
the probes Claude Code sends at start.

The fake Anthropic API answers 400 to any Messages request the real API would refuse, so every
200 from an Anthropic group also proves the request that reached it was valid.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, cli_command, openai_deployment
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream

KEY_A = "sk-ant-compat-aaaa"
KEY_B = "sk-openai-compat-bbbb"
KEY_C = "sk-openai-compat-cccc"
CLAUDE = "claude-sonnet-4-20250514"
HELLO = [{"role": "user", "content": "Hello there"}]
ALIASES = {
    "claude-haiku-4-5-20251001": "sonnet",
    "gpt-5.4-nano": "gpt5",
    "old-gpt": {"model": "gpt", "hidden": True},
}
LISTED = ["sonnet", "gpt", "gpt5", "claude-haiku-4-5-20251001", "gpt-5.4-nano"]
CLAUDE_CODE = {  # what Claude Code sends on every request (agents.md §1.3)
    "x-api-key": MASTER_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-app": "cli",
}
TOOL_HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
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
    {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    {"role": "assistant", "content": "It is 18C and sunny in Paris."},
    {"role": "user", "content": "Write a five-word title for this conversation."},
]


def config(fake: FakeUpstream) -> dict[str, Any]:
    return {
        "model_list": [
            anthropic_deployment("sonnet", fake, KEY_A, id="sonnet-a", model=CLAUDE),
            openai_deployment("gpt", fake, KEY_B, id="gpt-b", model="openai/gpt-4o"),
            openai_deployment("gpt5", fake, KEY_C, id="gpt5-c", model="openai/gpt-5"),
        ],
        "router_settings": {"model_group_alias": ALIASES, "num_retries": 0},
    }


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    return start_proxy(config(fake), master_key=MASTER_KEY)


@pytest.fixture
def client(proxy: Proxy) -> openai.OpenAI:
    return proxy.openai()


@pytest.fixture
def claude(proxy: Proxy) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=proxy.url, api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as c:
        yield c


def upstream(fake: FakeUpstream, path: str) -> dict[str, Any]:
    calls = fake.calls(path=path)
    assert calls, f"nothing reached {path}: {[s.path for s in fake.requests]}"
    return dict(calls[-1].body)


def blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for m in body["messages"] for b in m["content"] if isinstance(m["content"], list)]


# ---- /v1/models in both SDKs' shapes ----


def test_the_openai_sdk_lists_and_retrieves_models(client: openai.OpenAI) -> None:
    listed = list(client.models.list())
    assert [m.id for m in listed] == LISTED  # the hidden alias is served, not listed
    assert all(m.object == "model" and m.owned_by and m.created > 0 for m in listed)
    assert client.models.retrieve("gpt-5.4-nano").id == "gpt-5.4-nano"
    assert client.models.retrieve("old-gpt").id == "old-gpt"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_the_anthropic_sdk_lists_pages_and_retrieves_models(claude: anthropic.Anthropic) -> None:
    first = claude.models.list(limit=2)
    assert [m.id for m in first.data] == LISTED[:2]
    assert first.has_more is True
    assert [m.id for m in claude.models.list(limit=2)] == LISTED  # the SDK follows last_id
    assert [m.id for m in claude.models.list()] == LISTED
    one = claude.models.retrieve("claude-haiku-4-5-20251001")
    assert (one.type, one.display_name, one.max_tokens) == (
        "model",
        "claude-haiku-4-5-20251001",
        64_000,  # its target deployment's model, claude-sonnet-4
    )
    assert isinstance(one.created_at, datetime)
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("no-such-model")


@pytest.mark.parametrize("path", ["/v1/models", "/models"])
def test_one_list_answer_carries_both_shapes(proxy: Proxy, path: str) -> None:
    r = httpx.get(proxy.url + path, params={"limit": 1000}, headers=CLAUDE_CODE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (LISTED[0], LISTED[-1])
    for model in body["data"]:
        assert model["object"] == "model" and model["type"] == "model"
        assert isinstance(model["created"], int) and model["owned_by"]
        assert model["display_name"] == model["id"]
        created_at = datetime.fromisoformat(model["created_at"].replace("Z", "+00:00"))
        assert created_at.timestamp() == model["created"]


# ---- model_group_alias ----


def test_an_alias_reaches_its_target_groups_deployment(proxy, client, claude, fake) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-5.4-nano", messages=HELLO)
    assert raw.parse().choices[0].message.content == DEFAULT_CONTENT
    assert raw.headers["x-llmproxy-deployment"] == "gpt5-c"
    assert upstream(fake, "/v1/chat/completions")["model"] == "gpt-5"
    assert fake.requests[-1].key == KEY_C
    # OpenCode's title call through its built-in anthropic provider (agents.md §1.1)
    answer = claude.messages.create(
        model="claude-haiku-4-5-20251001",
        max_tokens=48_000,
        thinking={"type": "enabled", "budget_tokens": 16_000},
        messages=[{"role": "user", "content": "Title for: hello"}],
    )
    assert answer.content[0].type == "text"
    sent = upstream(fake, "/v1/messages")
    assert (sent["model"], sent["max_tokens"]) == (CLAUDE, 48_000)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 16_000}
    hidden = client.chat.completions.create(model="old-gpt", messages=HELLO)
    assert hidden.choices[0].message.content == DEFAULT_CONTENT
    assert upstream(fake, "/v1/chat/completions")["model"] == "gpt-4o"


# ---- output tokens clamped to the deployment's limit ----


def test_max_tokens_above_the_limit_reaches_anthropic_clamped(client, claude, fake) -> None:
    answer = client.chat.completions.create(model="sonnet", messages=HELLO, max_tokens=200_000)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert upstream(fake, "/v1/messages")["max_tokens"] == 64_000
    client.chat.completions.create(model="sonnet", messages=HELLO, max_completion_tokens=90_000)
    assert upstream(fake, "/v1/messages")["max_tokens"] == 64_000
    native = claude.messages.create(model="sonnet", max_tokens=200_000, messages=HELLO)
    assert native.content[0].type == "text"
    assert upstream(fake, "/v1/messages")["max_tokens"] == 64_000


def test_max_tokens_above_the_limit_reaches_openai_clamped(client, claude, fake) -> None:
    """Needs `fit_body` called in OpenAIProvider.build_request (proxy/providers/openai.py)."""
    client.chat.completions.create(model="gpt", messages=HELLO, max_tokens=32_000)
    assert upstream(fake, "/v1/chat/completions")["max_tokens"] == 16_384
    client.chat.completions.create(model="gpt5", messages=HELLO, max_tokens=32_000)
    sent = upstream(fake, "/v1/chat/completions")
    assert sent["max_completion_tokens"] == 32_000 and "max_tokens" not in sent
    # Claude Code's defaults (max_tokens 32000, thinking) through the Messages front door
    answer = claude.messages.create(
        model="gpt",
        max_tokens=32_000,
        thinking={"type": "enabled", "budget_tokens": 31_999},
        messages=HELLO,
    )
    assert answer.content[0].type == "text"
    sent = upstream(fake, "/v1/chat/completions")
    assert sent["max_tokens"] == 16_384 and "reasoning_effort" not in sent


# ---- tool-call history without tools ----


@pytest.mark.parametrize("group", ["sonnet", "gpt"])
def test_tool_history_without_tools_is_answered(client, fake, group: str) -> None:
    answer = client.chat.completions.create(model=group, messages=TOOL_HISTORY)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    if group == "sonnet":
        sent = upstream(fake, "/v1/messages")
        assert "tools" not in sent
        assert {b["type"] for b in blocks(sent)} == {"text"}  # the real API's rule
        assert any("get_weather" in b["text"] and "Paris" in b["text"] for b in blocks(sent))
        assert any("18C and sunny" in b["text"] for b in blocks(sent))


# ---- what Claude Code probes at start, from the real command ----


def test_start_probes_are_answered_at_once(fake, run_cli, tmp_path: Path) -> None:
    doc = config(fake)
    doc["general_settings"] = {"master_key": MASTER_KEY}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    handle = run_cli("--config", str(path))
    with httpx.Client(base_url=handle.url, timeout=5) as http:
        for probe in ("/", "/api/hello"):
            started = time.monotonic()
            r = http.head(probe)  # no key: a HEAD carries no data
            assert r.status_code == 200 and r.content == b""
            assert time.monotonic() - started < 1.0
            assert http.get(probe).status_code == 401
            keyed = http.get(probe, headers={"authorization": f"Bearer {MASTER_KEY}"})
            assert keyed.status_code == 200 and keyed.json()["status"] == "ok"
        r = http.get("/v1/models", params={"limit": 1000}, headers=CLAUDE_CODE)
        assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == LISTED
        r = http.post(
            "/v1/messages?beta=true",
            headers=CLAUDE_CODE,
            json={"model": "claude-haiku-4-5-20251001", "max_tokens": 32_000, "messages": HELLO},
        )
        assert r.status_code == 200, r.text
    assert fake.calls(path="/v1/messages")[-1].body["model"] == CLAUDE
    assert handle.terminate() == 0


def test_check_shows_the_aliases(fake, tmp_path: Path) -> None:
    doc = config(fake)
    doc["router_settings"]["model_group_alias"] = {**ALIASES, "stray": "no-such-group"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [*cli_command(), "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "group claude-haiku-4-5-20251001" in result.stdout
    assert "model_group_alias.stray: 'no-such-group' is not a model_name" in result.stdout
