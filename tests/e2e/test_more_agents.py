"""OpenClaw, the Continue CLI and aider, run non-interactively, against the fake upstreams and
through the real proxy (`llmproxy-tui --no-tui`): the companion of test_agents.py.

OpenClaw (`openclaw agent exec`, a custom provider in openclaw.json, under Node 24) and Continue
(`cn -p`, a `provider: openai` model in config.yaml) are pinned in tests/agents/package.json
(`npm ci --prefix tests/agents`); aider (`aider --message`, `--model openai/<group>`) lives in
tests/agents/.venv (`bash tests/agents/install_aider.sh`). Commands and environment:
tests/agents/harness.py.

- `direct`: each agent at the fake upstream itself (checks the harness and the fakes).
- `proxy`: each agent at the proxy, whose groups point at the fakes.

Wire formats: OpenClaw takes `api: openai-completions`, `openai-responses` or
`anthropic-messages`; Continue speaks Chat Completions, or the Responses API for a model named
`gpt-5…`; aider speaks Chat Completions only.

Round trips:
- OpenClaw and Continue: the fake's first answer calls the agent's shell tool (`exec`, `Bash`)
  with a command whose output (`tool-ran-42`) is not in the command text; the agent runs it and
  sends the output back; the fake's next answer carries a marker the agent prints. OpenClaw's
  calls are queued in order rather than decided by `tool_loop`, since OpenClaw appends a user
  message of its own ("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>") after the tool results, so its
  conversations never end with them.
- aider has no tools. Its round trip: the fake answers with a SEARCH/REPLACE edit creating
  hello.txt, aider writes the file, runs its `--test-cmd` (the same command, made to fail),
  and sends the command's output back to the model, whose next answer it prints.
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
from tests.fakes.exchange import content_text
from tests.fakes.upstream import FakeUpstream, Seen, reply, tool_loop

ANTHROPIC_KEY = "sk-ant-upstream-0123456789"
OPENAI_KEY = "sk-openai-upstream-0123456789"
ANTHROPIC_GROUP = "claude-group"
OPENAI_GROUP = "gpt-group"
RESPONSES_GROUP = "gpt-5.5-on-openai"
"""A group whose name starts with gpt-5: Continue sends it to /v1/responses."""
PLAIN = "PLAIN-MARKER the fake upstream says hello"
FINAL = "FINAL-MARKER the command printed: {result}"
DONE = "FINAL-MARKER the command ran"
COMMAND = "echo tool-ran-$((40+2))"
RAN = "tool-ran-42"
TOOL_PROMPT = f"Run the shell command `{COMMAND}` and tell me what it printed."
EDIT_PROMPT = "Create hello.txt saying patched-by-aider"
EDIT = "hello.txt\n```\n<<<<<<< SEARCH\n=======\npatched-by-aider\n>>>>>>> REPLACE\n```\n"
EDITED = "patched-by-aider\n"
TEST_CMD = f"{COMMAND} && exit 1"
"""aider's --test-cmd: prints RAN and fails, so aider sends the output back to the model."""
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
FAKE_STRICT_ROLES = (
    "bug (tests/fakes): OpenClaw's anthropic-messages transport sends the prompt and its own "
    "internal-context text as two consecutive user messages; the fake Anthropic rejects that "
    '(400 "roles must alternate between \\"user\\" and \\"assistant\\", but found multiple '
    '\\"user\\" roles in a row"), while the real Messages API combines consecutive same-role turns'
)


@pytest.fixture(scope="module", autouse=True)
def agents_installed() -> None:
    problem = harness.missing_agents(harness.MORE_AGENTS) or harness.missing_aider()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def proxy(fake: FakeUpstream, run_cli: Callable[..., CliProxy], tmp_path: Path) -> CliProxy:
    """The real proxy with an Anthropic group, an OpenAI group and an OpenAI group named
    gpt-5…, all on the fake upstream, and a master key."""
    doc = {
        "model_list": [
            anthropic_deployment(
                ANTHROPIC_GROUP, fake, ANTHROPIC_KEY, model="anthropic/claude-sonnet-4-5-20250929"
            ),
            openai_deployment(OPENAI_GROUP, fake, OPENAI_KEY, model="openai/gpt-4o"),
            openai_deployment(RESPONSES_GROUP, fake, OPENAI_KEY, model="openai/gpt-5.5"),
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return run_cli("--config", str(path))


# -- running an agent ---------------------------------------------------------------------


def command(
    agent: str, wire: str, scenario: str, *, root: str, key: str, model: str, home: Path
) -> tuple[list[str], dict[str, str]]:
    """Returns: argv and env running `agent` at `root` (the server's URL, without /v1).

    `wire`: for OpenClaw its `api` ("unprefixed": openai-completions at `root` itself, the
    LiteLLM setup OpenClaw documents); for Continue "chat" or "responses" (set by the model's
    name, not here); for aider "chat".
    """
    if agent == "openclaw":
        prompt = TOOL_PROMPT if scenario == "tool" else "Say hi"
        if wire == "unprefixed":
            return harness.openclaw(root, key, model, prompt, home, api="openai-completions")
        base = root if wire == "anthropic-messages" else root + "/v1"
        return harness.openclaw(base, key, model, prompt, home, api=wire)
    if agent == "cn":
        prompt = TOOL_PROMPT if scenario == "tool" else "Say hi"
        tools = ("Bash",) if scenario == "tool" else ()
        return harness.continue_cli(root + "/v1", key, model, prompt, home, tools=tools)
    prompt = EDIT_PROMPT if scenario == "tool" else "Say hi"
    test_cmd = TEST_CMD if scenario == "tool" else None
    return harness.aider(root + "/v1", key, model, prompt, home, test_cmd=test_cmd)


def run_agent(
    agent: str, wire: str, scenario: str, tmp_path: Path, *, root: str, key: str, model: str
) -> harness.AgentRun:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    argv, env = command(
        agent, wire, scenario, root=root, key=key, model=model, home=tmp_path / "home"
    )
    timeout = harness.OPENCLAW_TIMEOUT if agent == "openclaw" else harness.TIMEOUT
    run = harness.run(argv, env, work, timeout=timeout)
    assert not run.timed_out and run.returncode == 0, run.report()
    return run


def script(fake: FakeUpstream, agent: str, scenario: str) -> None:
    if scenario == "plain":
        fake.set_default(reply(PLAIN))
    elif agent == "cn":
        fake.set_default(tool_loop({"Bash": {"command": COMMAND}}, FINAL, other="A title"))
    elif agent == "openclaw":  # in order: see the module's docstring
        fake.script(reply(tool_calls=[{"name": "exec", "arguments": {"command": COMMAND}}]))
        fake.set_default(reply(DONE))
    else:  # aider: an edit, then (after its test command failed) an answer
        fake.script(reply(EDIT))
        fake.set_default(reply(DONE))


def answer_text(agent: str, run: harness.AgentRun) -> str:
    """Returns: what the agent showed as the model's answer."""
    if agent != "openclaw":
        return run.stdout  # cn -p: the answer; aider: its transcript, the answer in it
    try:  # agent exec --json: one envelope
        envelope = json.loads(run.stdout)
    except ValueError as exc:
        raise AssertionError(f"unreadable openclaw output ({exc})\n{run.report()}") from exc
    assert envelope.get("ok") is True and envelope.get("status") == "ok", run.report()
    return str(envelope.get("final", ""))


def model_calls(fake: FakeUpstream) -> list[Seen]:
    return [s for s in fake.requests if s.method == "POST" and "count_tokens" not in s.path]


def tool_outputs(seen: Seen) -> list[str]:
    """Returns: the texts of every tool result the request carries, in any wire format
    (Chat `tool` messages, Messages `tool_result` blocks, Responses `function_call_output`)."""
    body = seen.body if isinstance(seen.body, dict) else {}
    found: list[str] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            found.append(content_text(message.get("content")))
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found.append(content_text(block.get("content")))
    items = body.get("input")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output")
            found.append(output if isinstance(output, str) else json.dumps(output))
    return found


def user_texts(seen: Seen) -> list[str]:
    body = seen.body if isinstance(seen.body, dict) else {}
    return [
        content_text(m.get("content"))
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") == "user"
    ]


def check_answer(
    agent: str, scenario: str, run: harness.AgentRun, fake: FakeUpstream, work: Path
) -> None:
    text = answer_text(agent, run)
    if scenario == "plain":
        assert PLAIN in text, run.report()
        return
    calls = model_calls(fake)
    if agent == "aider":
        assert (work / "hello.txt").read_text() == EDITED, run.report()
        later = [t for s in calls[1:] for t in user_texts(s)]
        assert any(RAN in t for t in later), (
            f"no request after the edit carried the test command's output {RAN!r}\n{run.report()}"
        )
        assert "FINAL-MARKER" in text, run.report()
        return
    results = [r for s in calls for r in tool_outputs(s)]
    assert any(RAN in r for r in results), (
        f"no request carried the tool's output {RAN!r}: {results}\n{run.report()}"
    )
    assert "FINAL-MARKER" in text, run.report()
    if agent == "cn":  # tool_loop quoted the result
        assert RAN in text, run.report()


def _case(agent: str, wire: str, scenario: str, group: str | None = None) -> Any:
    marks: list[Any] = []
    if agent == "openclaw":
        marks.append(pytest.mark.timeout(harness.OPENCLAW_TIMEOUT + 60))
    if agent == "openclaw" and wire == "anthropic-messages":
        marks.append(pytest.mark.xfail(reason=FAKE_STRICT_ROLES, strict=True))
    name = "-".join(p for p in (agent, wire, group, scenario) if p)
    args = (agent, wire, scenario) if group is None else (agent, wire, group, scenario)
    return pytest.param(*args, marks=marks, id=name)


# -- each agent directly at the fake ------------------------------------------------------

DIRECT_MODEL = {
    ("openclaw", "openai-completions"): "gpt-4o",
    ("openclaw", "openai-responses"): "gpt-4o",
    ("openclaw", "anthropic-messages"): "claude-sonnet-4-5",
    ("cn", "chat"): "gpt-4o",
    ("cn", "responses"): "gpt-5.5",
    ("aider", "chat"): "gpt-4o",
}
DIRECT_PATH = {"openai-completions": CHAT, "openai-responses": RESPONSES,
               "anthropic-messages": MESSAGES, "chat": CHAT, "responses": RESPONSES}  # fmt: skip
DIRECT = [
    _case(agent, wire, scenario)
    for agent, wire in DIRECT_MODEL
    for scenario in ("plain", "tool")
]  # fmt: skip


@pytest.mark.parametrize(("agent", "wire", "scenario"), DIRECT)
def test_direct(agent: str, wire: str, scenario: str, fake: FakeUpstream, tmp_path: Path) -> None:
    script(fake, agent, scenario)
    key = ANTHROPIC_KEY if wire == "anthropic-messages" else OPENAI_KEY
    model = DIRECT_MODEL[(agent, wire)]
    run = run_agent(agent, wire, scenario, tmp_path, root=fake.url, key=key, model=model)
    check_answer(agent, scenario, run, fake, tmp_path / "work")
    calls = model_calls(fake)
    assert calls and {s.path for s in calls} == {DIRECT_PATH[wire]}, run.report()
    assert all(s.key == key for s in calls)


# -- each agent through the proxy ---------------------------------------------------------

GROUPS = {"anthropic": (ANTHROPIC_GROUP, ANTHROPIC_KEY),
          "openai": (OPENAI_GROUP, OPENAI_KEY),
          "openai-gpt5": (RESPONSES_GROUP, OPENAI_KEY)}  # fmt: skip
THROUGH = [
    *[_case("openclaw", wire, scenario, group)
      for wire, group in (("openai-completions", "openai"), ("openai-responses", "openai"),
                          ("anthropic-messages", "anthropic"), ("openai-completions", "anthropic"))
      for scenario in ("plain", "tool")],
    _case("openclaw", "unprefixed", "plain", "openai"),
    *[_case("cn", wire, scenario, group)
      for wire, group in (("chat", "openai"), ("responses", "openai-gpt5"), ("chat", "anthropic"))
      for scenario in ("plain", "tool")],
    *[_case("aider", "chat", scenario, group)
      for group in ("openai", "anthropic") for scenario in ("plain", "tool")],
]  # fmt: skip


@pytest.mark.parametrize(("agent", "wire", "group", "scenario"), THROUGH)
def test_through_the_proxy(
    agent: str,
    wire: str,
    group: str,
    scenario: str,
    fake: FakeUpstream,
    proxy: CliProxy,
    tmp_path: Path,
) -> None:
    script(fake, agent, scenario)
    name, upstream_key = GROUPS[group]
    run = run_agent(agent, wire, scenario, tmp_path, root=proxy.url, key=MASTER_KEY, model=name)
    check_answer(agent, scenario, run, fake, tmp_path / "work")
    calls = model_calls(fake)
    assert calls and all(s.key == upstream_key for s in calls), run.report()
    if group == "anthropic":
        assert {s.path for s in calls} == {MESSAGES}, run.report()
    else:  # an OpenAI deployment: Chat Completions, or Responses passed through
        assert {s.path for s in calls} <= {CHAT, RESPONSES}, run.report()
