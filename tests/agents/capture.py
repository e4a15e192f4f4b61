"""Record what the real agents send, as tests/fixtures/agents/<scenario>.json.

Run from the repository root after `npm ci --prefix tests/agents` (re-run it when a pin in
tests/agents/package.json moves):

    python -m tests.agents.capture [scenario ...]

Each scenario runs one agent at the fake upstream with the same commands as
tests/e2e/test_agents.py, and stores every request the fake received: method, path, query,
headers (keys redacted, per-connection headers dropped) and body, the temp paths replaced by
`/tmp/agent`. The proxy's /v1/messages and /v1/responses tests replay these bodies.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agents import harness
from tests.fakes.upstream import FakeUpstream, Step, reply, tool_loop

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "agents"
KEY = "sk-fake-upstream-key"
COMMAND = "echo tool-ran-$((40+2))"
SHELL = {
    "Bash": {"command": COMMAND, "description": "Print a number"},
    "exec_command": {"cmd": COMMAND},
    "bash": {"command": COMMAND, "description": "Print a number"},
}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+patched-by-codex\n*** End Patch\n"
TOOL_PROMPT = f"Run the shell command `{COMMAND}` and tell me what it printed."
DROPPED = {"host", "content-length", "connection"}
SECRET = {"authorization", "x-api-key"}
Build = Callable[[FakeUpstream, Path], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class Scenario:
    agent: str
    what: str
    step: Step
    build: Build


def _claude(model: str, prompt: str, *, experimental: bool = False) -> Build:
    """x-api-key auth, as the fake (like Anthropic) takes; ANTHROPIC_AUTH_TOKEN would send the
    same requests with `authorization: Bearer` instead."""

    def build(up: FakeUpstream, home: Path) -> tuple[list[str], dict[str, str]]:
        argv, env = harness.claude(
            up.anthropic_base, KEY, model, prompt, home, tools=("Bash",), bearer=False
        )
        if experimental:
            del env["CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"]
        return argv, env

    return build


def _codex(model: str, prompt: str, sandbox: str | None = None) -> Build:
    return lambda up, home: harness.codex(up.openai_base, KEY, model, prompt, home, sandbox=sandbox)


def _opencode(model: str, prompt: str, builtin: str | None = None) -> Build:
    def build(up: FakeUpstream, home: Path) -> tuple[list[str], dict[str, str]]:
        base = up.anthropic_base + "/v1" if builtin == "anthropic" else up.openai_base
        return harness.opencode(base, KEY, model, prompt, home, builtin=builtin)

    return build


LOOP = tool_loop(SHELL, "FINAL-MARKER {result}", other="A title", reasoning="Run it first.")
SCENARIOS: dict[str, Scenario] = {
    "claude_code_tool_round_trip": Scenario(
        "Claude Code", "`claude -p` at a proxy-like model name (`claude-group`), "
        "the documented env (DISABLE_EXPERIMENTAL_BETAS, NONESSENTIAL_TRAFFIC): Bash round trip "
        "with a thinking block", LOOP, _claude("claude-group", TOOL_PROMPT)),
    "claude_code_known_model": Scenario(
        "Claude Code", "`claude -p` with a first-party name (`claude-sonnet-4-5`): the betas, "
        "thinking and tool set change with the model name",
        reply("PLAIN-MARKER"), _claude("claude-sonnet-4-5", "Say hi")),
    "claude_code_default_betas": Scenario(
        "Claude Code", "`claude -p` without CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS, at "
        "`claude-group`", reply("PLAIN-MARKER"),
        _claude("claude-group", "Say hi", experimental=True)),
    "claude_code_count_tokens": Scenario(
        "Claude Code", '`claude -p "/context"`: the count_tokens calls',
        reply("PLAIN-MARKER"), _claude("claude-group", "/context")),
    "codex_tool_round_trip": Scenario(
        "Codex CLI", "`codex exec` at `gpt-group` (unknown to Codex): exec_command round trip "
        "with a reasoning item (encrypted_content) to replay", LOOP,
        _codex("gpt-group", TOOL_PROMPT)),
    "codex_apply_patch": Scenario(
        "Codex CLI", "`codex exec -s workspace-write` at `gpt-5.5`: the freeform `custom` "
        "apply_patch tool round trip", tool_loop({"apply_patch": PATCH}, "FINAL-MARKER {result}"),
        _codex("gpt-5.5", "Create hello.txt", sandbox="workspace-write")),
    "opencode_tool_round_trip": Scenario(
        "OpenCode", "`opencode run`, custom `@ai-sdk/openai-compatible` provider: title call, "
        "then a bash round trip with reasoning_content", LOOP,
        _opencode("gpt-group", TOOL_PROMPT)),
    "opencode_builtin_openai": Scenario(
        "OpenCode", "`opencode run` with the built-in `openai` provider's baseURL overridden: "
        "Responses API, and its own title model", reply("PLAIN-MARKER"),
        _opencode("gpt-5.4", "Say hi", builtin="openai")),
    "opencode_builtin_anthropic": Scenario(
        "OpenCode", "`opencode run` with the built-in `anthropic` provider's baseURL overridden:"
        " Messages API, and its own title model", reply("PLAIN-MARKER"),
        _opencode("claude-sonnet-4-5", "Say hi", builtin="anthropic")),
}  # fmt: skip


def _scrub(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(root, "/tmp/agent")
    if isinstance(value, list):
        return [_scrub(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, root) for k, v in value.items()}
    return value


def _headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k not in DROPPED}
    for name in SECRET & kept.keys():
        kept[name] = kept[name].replace(KEY, "<key>")
    return kept


def record(name: str, scenario: Scenario) -> dict[str, Any]:
    """Run one scenario. Returns: the fixture document."""
    root = Path(tempfile.mkdtemp(prefix="agent-capture-"))
    (root / "work").mkdir()
    with FakeUpstream() as up:
        up.set_default(scenario.step)
        argv, env = scenario.build(up, root / "home")
        run = harness.run(argv, env, root / "work")
        requests = [
            {"method": s.method, "path": s.path, "query": s.query,
             "headers": _headers(s.headers), "body": s.body}
            for s in up.requests
        ]  # fmt: skip
    if run.timed_out or run.returncode != 0:
        raise SystemExit(f"{name} failed:\n{run.report()}")
    shown = {k: v for k, v in env.items() if k not in harness.base_env(root / "home")}
    doc = {
        "agent": scenario.agent,
        "versions": json.loads((harness.HERE / "package.json").read_text())["dependencies"],
        "scenario": scenario.what,
        "argv": ["<agent>", *argv[1:]],
        "env": {k: v.replace(KEY, "<key>") for k, v in shown.items()},
        "requests": requests,
    }
    scrubbed: dict[str, Any] = _scrub(doc, str(root))
    return scrubbed


def main(names: list[str]) -> None:
    problem = harness.missing_agents()
    if problem:
        raise SystemExit(problem)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in names or list(SCENARIOS):
        doc = record(name, SCENARIOS[name])
        path = FIXTURES / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: {len(doc['requests'])} requests")


if __name__ == "__main__":
    main(sys.argv[1:])
