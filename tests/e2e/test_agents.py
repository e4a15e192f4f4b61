"""The real coding agents, run non-interactively, against the fake upstreams and through the
real proxy (`llmproxy-tui --no-tui`).

Claude Code (`claude -p`), Codex CLI (`codex exec`, a `model_providers` entry with
`wire_api="responses"`) and OpenCode (`opencode run`, a custom `@ai-sdk/openai-compatible`
provider), pinned in tests/agents/package.json: install them with `npm ci --prefix tests/agents`.
Commands and environment: tests/agents/harness.py (../shared/agents.md §2).

- `direct`: each agent at the fake upstream that speaks its wire format (Claude Code at the
  fake Anthropic, Codex at the fake Responses API, OpenCode at the fake Chat Completions): this
  checks the harness and the fakes themselves.
- `proxy`: each agent at the proxy, whose groups point at the fakes: a plain prompt and a tool
  round trip through an Anthropic group and through an OpenAI group.

A tool round trip: the fake's first answer calls the agent's shell tool with a command whose
output (`tool-ran-42`) is not in the command text, with reasoning the agent must replay (a
signed thinking block, an encrypted reasoning item, `reasoning_content`); the agent runs the
command and sends the result back; the fake's second answer quotes that result after a marker,
and the agent prints it. Codex also runs its freeform `custom` tool, apply_patch (`patch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agents import harness
from tests.conftest import MASTER_KEY, CliProxy, anthropic_deployment, openai_deployment
from tests.fakes.exchange import Exchange
from tests.fakes.responses_wire import decrypt
from tests.fakes.turns import tool_result
from tests.fakes.upstream import FakeUpstream, Seen, reply, tool_loop

ANTHROPIC_KEY = "sk-ant-upstream-0123456789"
OPENAI_KEY = "sk-openai-upstream-0123456789"
ANTHROPIC_GROUP = "claude-group"
OPENAI_GROUP = "gpt-group"
# Codex offers apply_patch (a `custom` tool) only to models it knows, matched by name prefix
PATCH_GROUPS = {"anthropic": "gpt-5.5-on-claude", "openai": "gpt-5.5-on-openai"}
PLAIN = "PLAIN-MARKER the fake upstream says hello"
FINAL = "FINAL-MARKER the command printed: {result}"
COMMAND = "echo tool-ran-$((40+2))"
RAN = "tool-ran-42"
TOOL_PROMPT = f"Run the shell command `{COMMAND}` and tell me what it printed."
THOUGHT = "I should run the command first."
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+patched-by-codex\n*** End Patch\n"
PATCHED = "patched-by-codex\n"
SHELL_CALLS: dict[str, Any] = {
    "Bash": {"command": COMMAND, "description": "Print a number"},  # Claude Code
    "exec_command": {"cmd": COMMAND},  # Codex CLI (unified exec)
    "shell": {"command": ["bash", "-lc", COMMAND]},  # Codex CLI (older shell tool)
    "bash": {"command": COMMAND, "description": "Print a number"},  # OpenCode
}
UPSTREAM_PATH = {"claude": "/v1/messages", "codex": "/v1/responses",
                 "opencode": "/v1/chat/completions"}  # fmt: skip
NO_ROUTE: dict[str, str] = {}
"""Agents whose front door the proxy does not serve yet (their through-the-proxy runs xfail)."""


@pytest.fixture(scope="module", autouse=True)
def agents_installed() -> None:
    problem = harness.missing_agents()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def proxy(fake: FakeUpstream, run_cli: Callable[..., CliProxy], tmp_path: Path) -> CliProxy:
    """The real proxy (`llmproxy-tui --no-tui`) with an Anthropic and an OpenAI group, both on
    the fake upstream, and a master key."""
    claude = "anthropic/claude-sonnet-4-5-20250929"
    doc = {
        "model_list": [
            anthropic_deployment(ANTHROPIC_GROUP, fake, ANTHROPIC_KEY, model=claude),
            openai_deployment(OPENAI_GROUP, fake, OPENAI_KEY, model="openai/gpt-5"),
            anthropic_deployment(PATCH_GROUPS["anthropic"], fake, ANTHROPIC_KEY, model=claude),
            openai_deployment(PATCH_GROUPS["openai"], fake, OPENAI_KEY, model="openai/gpt-5.5"),
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return run_cli("--config", str(path))


def command(
    agent: str, scenario: str, *, root: str, key: str, model: str, home: Path, bearer: bool
) -> tuple[list[str], dict[str, str]]:
    """Returns: argv and env running `agent` at `root` (the server's URL, without /v1)."""
    prompt = {"plain": "Say hi", "tool": TOOL_PROMPT, "patch": "Create hello.txt"}[scenario]
    if agent == "claude":
        return harness.claude(root, key, model, prompt, home, tools=("Bash",), bearer=bearer)
    if agent == "codex":
        sandbox = "workspace-write" if scenario == "patch" else None
        return harness.codex(root + "/v1", key, model, prompt, home, sandbox=sandbox)
    return harness.opencode(root + "/v1", key, model, prompt, home)


def answer_text(agent: str, run: harness.AgentRun) -> str:
    """Returns: what the agent showed as the model's answer (its final message or messages)."""
    try:
        if agent == "claude":  # --output-format json: one result object
            result = json.loads(run.stdout.strip().splitlines()[-1])
            assert result.get("is_error") is False, run.report()
            return str(result.get("result", ""))
        if agent == "opencode":  # --format json: one event a line
            events = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
            return "\n".join(e["part"].get("text", "") for e in events if e.get("type") == "text")
    except (ValueError, IndexError, KeyError) as exc:
        raise AssertionError(f"unreadable {agent} output ({exc})\n{run.report()}") from exc
    return run.stdout  # codex exec: the final message


def run_agent(
    agent: str, scenario: str, tmp_path: Path, *, root: str, key: str, model: str,
    bearer: bool = True,
) -> harness.AgentRun:  # fmt: skip
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    argv, env = command(
        agent, scenario, root=root, key=key, model=model, home=tmp_path / "home", bearer=bearer
    )
    run = harness.run(argv, env, work)
    assert not run.timed_out and run.returncode == 0, run.report()
    return run


def script(fake: FakeUpstream, scenario: str) -> None:
    if scenario == "tool":
        fake.set_default(tool_loop(SHELL_CALLS, FINAL, other="A title", reasoning=THOUGHT))
    elif scenario == "patch":
        fake.set_default(tool_loop({"apply_patch": PATCH}, FINAL, other="A title"))
    else:
        fake.set_default(reply(PLAIN))


def check_answer(
    agent: str, scenario: str, run: harness.AgentRun, fake: FakeUpstream, work: Path
) -> None:
    text = answer_text(agent, run)
    if scenario == "plain":
        assert PLAIN in text, run.report()
        return
    results = [r for s in model_calls(fake) if (r := tool_result(exchange_of(s))) is not None]
    if scenario == "patch":
        assert (work / "hello.txt").read_text() == PATCHED, run.report()
        assert any("Success" in r for r in results), (results, run.report())
        assert "FINAL-MARKER" in text, run.report()
        return
    assert any(RAN in r for r in results), (
        f"no request carried the tool's output {RAN!r}: {results}\n{run.report()}"
    )
    assert "FINAL-MARKER" in text and RAN in text, run.report()


def model_calls(fake: FakeUpstream) -> list[Seen]:
    return [s for s in fake.requests if s.method == "POST" and "count_tokens" not in s.path]


def exchange_of(seen: Seen) -> Exchange:
    return Exchange(seen.path, seen.body if isinstance(seen.body, dict) else {}, seen.key, 0)


def replayed_reasoning(agent: str, seen: Seen) -> bool:
    """Returns: whether the request sends back the reasoning of the tool-calling answer as the
    fake gave it (Claude Code: the signed thinking block; Codex: the encrypted reasoning item)."""
    body = seen.body if isinstance(seen.body, dict) else {}
    if agent == "claude":
        blocks = [b for m in body.get("messages", []) if isinstance(m.get("content"), list)
                  for b in m["content"]]  # fmt: skip
        return {"type": "thinking", "thinking": THOUGHT, "signature": "fakesig=="} in blocks
    items = [i for i in body.get("input", []) if i.get("type") == "reasoning"]
    return any(decrypt(i.get("encrypted_content")) == THOUGHT for i in items)


# -- each agent directly at the fake that speaks its format -------------------------------

DIRECT_MODEL = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.5", "opencode": "gpt-4o"}


DIRECT = [
    *[(agent, scenario) for agent in ("claude", "codex", "opencode")
      for scenario in ("plain", "tool")],
    ("codex", "patch"),
]  # fmt: skip


@pytest.mark.parametrize(("agent", "scenario"), DIRECT)
def test_direct(agent: str, scenario: str, fake: FakeUpstream, tmp_path: Path) -> None:
    script(fake, scenario)
    key = ANTHROPIC_KEY if agent == "claude" else OPENAI_KEY
    run = run_agent(
        agent, scenario, tmp_path, root=fake.url, key=key, model=DIRECT_MODEL[agent],
        bearer=False,
    )  # fmt: skip
    check_answer(agent, scenario, run, fake, tmp_path / "work")
    calls = model_calls(fake)
    assert calls and {s.path for s in calls} == {UPSTREAM_PATH[agent]}, run.report()
    assert all(s.key == key for s in calls)
    if scenario == "tool" and agent != "opencode":
        assert any(replayed_reasoning(agent, s) for s in calls), run.report()


# -- each agent through the proxy, whose groups point at the fakes ------------------------


def _through(agent: str, group: str, scenario: str) -> Any:
    marks = [pytest.mark.xfail(reason=NO_ROUTE[agent], strict=True)] if agent in NO_ROUTE else []
    return pytest.param(agent, group, scenario, marks=marks, id=f"{agent}-{group}-{scenario}")


THROUGH = [
    *[_through(agent, group, scenario)
      for agent in ("claude", "codex", "opencode")
      for group in ("anthropic", "openai")
      for scenario in ("plain", "tool")],
    *[_through("codex", group, "patch") for group in ("anthropic", "openai")],
]  # fmt: skip
GROUPS = {"anthropic": (ANTHROPIC_GROUP, ANTHROPIC_KEY, "/v1/messages"),
          "openai": (OPENAI_GROUP, OPENAI_KEY, None)}  # fmt: skip


@pytest.mark.parametrize(("agent", "group", "scenario"), THROUGH)
def test_through_the_proxy(
    agent: str, group: str, scenario: str, fake: FakeUpstream, proxy: CliProxy, tmp_path: Path
) -> None:
    script(fake, scenario)
    name, upstream_key, upstream_path = GROUPS[group]
    name = PATCH_GROUPS[group] if scenario == "patch" else name
    run = run_agent(agent, scenario, tmp_path, root=proxy.url, key=MASTER_KEY, model=name)
    check_answer(agent, scenario, run, fake, tmp_path / "work")
    calls = model_calls(fake)
    assert calls and all(s.key == upstream_key for s in calls), run.report()
    if upstream_path:
        assert {s.path for s in calls} == {upstream_path}
    else:  # an OpenAI deployment: Chat Completions, or Responses passed through
        assert {s.path for s in calls} <= {"/v1/chat/completions", "/v1/responses"}
