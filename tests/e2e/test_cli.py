"""The real `llmproxy-tui --no-tui` command: flags, `--check`, exit codes, bind rules, logging.

These run the installed command as a subprocess, because the command line, its exit codes and
its output are what is being tested.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import MASTER_KEY, cli_command, free_port, openai_deployment
from tui.cli import build_parser

KEY = "sk-upstream-secret-abcdef-0123456789-wxyz"


def run_check(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLMPROXY_", "LITELLM_")) and "API_KEY" not in k
    }
    full_env.update(env or {})
    return subprocess.run(
        [*cli_command(), "--no-tui", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
    )


def write_config(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def simple_config(fake, tmp_path: Path, **extra: object) -> Path:
    doc = {"model_list": [openai_deployment("gpt-4", fake, KEY, id="gpt-4-a")], **extra}
    return write_config(tmp_path / "config.yaml", doc)


# ---- flags ----


def test_every_contract_flag_parses() -> None:
    args = build_parser().parse_args(
        [
            "--config",
            "c.yaml",
            "--env-file",
            "x.env",
            "--host",
            "::1",
            "--port",
            "4100",
            "--no-tui",
            "--debug",
            "--log-file",
            "l.log",
            "--usage-db",
            "u.db",
            "--attach",
            "http://h:4000",
            "--key",
            "k",
            "--check",
        ]  # fmt: skip
    )
    assert (args.config, args.env_file, args.host, args.port) == ("c.yaml", "x.env", "::1", 4100)
    assert args.no_tui and args.debug and args.check
    assert (args.log_file, args.usage_db, args.attach, args.key) == (
        "l.log",
        "u.db",
        "http://h:4000",
        "k",
    )
    defaults = build_parser().parse_args([])
    assert (defaults.host, defaults.port) == ("127.0.0.1", 4000)


def test_help_lists_every_flag() -> None:
    result = run_check("--help")
    assert result.returncode == 0
    for flag in (
        "--config", "--env-file", "--host", "--port", "--no-tui", "--debug", "--log-file",
        "--usage-db", "--attach", "--key", "--check",
    ):  # fmt: skip
        assert flag in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--port", "fast"],
        ["--port"],
        ["positional"],
        ["--port", "70000"],
        ["--port", "-1"],
    ],
    ids=str,
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_check(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_check("--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_check("--check", env={"LLMPROXY_CONFIG": str(tmp_path / "gone.yaml")})
    assert result.returncode == 2
    assert "gone.yaml" in result.stderr


def test_missing_env_file_exits_2(fake, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path)
    result = run_check("--config", str(conf), "--env-file", str(tmp_path / "no.env"), "--check")
    assert result.returncode == 2
    assert "no.env" in result.stderr


# ---- config errors through the command ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o\n", ["line", "YAML"]),
        (
            yaml.safe_dump(
                {
                    "model_list": [
                        {"model_name": f"g{i}", "litellm_params": {"model": "gpt-4o"}}
                        for i in range(3)
                    ]
                    + [{"model_name": "g3", "litellm_params": {"model": "gpt-4o", "rpm": "fast"}}]
                }
            ),
            ["model_list[3].litellm_params.rpm", "integer", "fast"],
        ),
        (
            yaml.safe_dump({"model_list": [{"model_name": "x", "litellm_params": {"model": "x"}}]}),
            ["model_list[0].litellm_params.model", "provider"],
        ),
    ],
    ids=["yaml", "type", "provider"],
)
def test_config_errors_exit_2_with_file_path_and_reason(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    conf = write_config(tmp_path / "bad.yaml", text)
    for extra in ([], ["--check"]):
        result = run_check("--config", str(conf), *extra)
        assert result.returncode == 2, result.stderr
        assert str(conf) in result.stderr
        for part in expected:
            assert part in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 5


# ---- --check ----


def test_check_prints_groups_and_deployments_with_keys_redacted(fake, tmp_path: Path) -> None:
    doc = {
        "model_list": [
            openai_deployment("gpt-4", fake, "os.environ/T_KEY_1", id="gpt-4-a"),
            {
                "model_name": "claude",
                "litellm_params": {"model": "claude-3-haiku", "api_key": "os.environ/T_KEY_2"},
            },
            {
                "model_name": "fast",
                "litellm_params": {"model": "groq/llama-3.3-70b", "api_key": "os.environ/NOPE"},
            },
        ],
        "general_settings": {"master_key": "os.environ/T_MASTER"},
        "litellm_settings": {"turbo_mode": True},
    }
    conf = write_config(tmp_path / "config.yaml", doc)
    env = {"T_KEY_1": KEY, "T_KEY_2": "sk-ant-other-secret-0000-9999", "T_MASTER": MASTER_KEY}
    result = run_check("--config", str(conf), "--check", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for part in (
        "gpt-4", "gpt-4-a", "openai", "gpt-4o", fake.openai_base, "…wxyz",
        "claude", "anthropic", "claude-3-haiku", "https://api.anthropic.com", "…9999",
        "fast", "groq", "llama-3.3-70b", "https://api.groq.com/openai/v1", "NOPE",
        "turbo_mode", "…cdef",
    ):  # fmt: skip
        assert part in out, part
    for secret in (KEY, "sk-ant-other-secret-0000-9999", MASTER_KEY, KEY[:-4], MASTER_KEY[:-4]):
        assert secret not in out
    assert "DISABLED" in out


def test_check_on_the_demo_says_so(tmp_path: Path) -> None:
    result = run_check("--check", env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0
    assert "built-in demo config" in result.stdout
    assert "mock" in result.stdout


def test_check_finds_home_litellm_config_and_its_env(fake, tmp_path: Path) -> None:
    home = tmp_path / "home"
    doc = {"model_list": [openai_deployment("home-group", fake, "os.environ/HOME_KEY")]}
    conf = write_config(home / ".litellm" / "config.yaml", doc)
    (home / ".litellm" / ".env").write_text(f"HOME_KEY={KEY}\n")
    work = tmp_path / "work"
    work.mkdir()
    result = run_check("--check", env={"HOME": str(home)}, cwd=work)
    assert result.returncode == 0, result.stderr
    assert str(conf) in result.stdout
    assert "home-group" in result.stdout and "…wxyz" in result.stdout
    assert "DISABLED" not in result.stdout
    # ./config.yaml beats ~/.litellm; $LLMPROXY_CONFIG beats ./config.yaml
    write_config(work / "config.yaml", {"model_list": [openai_deployment("cwd", fake, KEY)]})
    result = run_check("--check", env={"HOME": str(home)}, cwd=work)
    assert "group cwd" in result.stdout and "home-group" not in result.stdout
    other = write_config(tmp_path / "o.yaml", {"model_list": [openai_deployment("env", fake, KEY)]})
    result = run_check("--check", env={"HOME": str(home), "LLMPROXY_CONFIG": str(other)}, cwd=work)
    assert "group env" in result.stdout and "group cwd" not in result.stdout


# ---- serving ----


def test_port_taken_exits_3(fake, run_cli, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        handle = run_cli("--config", str(conf), port=port, wait=False)
        assert handle.proc.wait(30) == 3
    assert str(port) in handle.output()
    assert "Traceback" not in handle.output()


def test_non_loopback_needs_a_master_key(fake, run_cli, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path)
    refused = run_cli("--config", str(conf), "--host", "0.0.0.0", wait=False)
    assert refused.proc.wait(30) == 2
    assert "master key" in refused.output()
    keyed = simple_config(fake, tmp_path, general_settings={"master_key": MASTER_KEY})
    handle = run_cli("--config", str(keyed), "--host", "0.0.0.0")
    r = httpx.get(handle.url + "/v1/models", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 200
    assert httpx.get(handle.url + "/v1/models").status_code == 401
    assert handle.terminate() == 0


def test_debug_logs_the_request_flow_without_keys(fake, run_cli, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path, general_settings={"master_key": MASTER_KEY})
    log_file = tmp_path / "proxy.log"
    handle = run_cli("--config", str(conf), "--debug", "--log-file", str(log_file))
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-request-id": "trace-me-42"}
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(handle.url + "/v1/chat/completions", json=body, headers=headers).is_success
    with httpx.stream(
        "POST", handle.url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers
    ) as r:
        r.read()
    bad = httpx.post(
        handle.url + "/v1/chat/completions", json={**body, "model": "nope"}, headers=headers
    )
    assert bad.status_code == 404
    assert httpx.post(handle.url + "/v1/chat/completions", json=body).status_code == 401
    assert handle.terminate() == 0
    stderr_log, file_log = handle.output(), log_file.read_text()
    for log in (stderr_log, file_log):
        assert "trace-me-42" in log
        assert "gpt-4-a" in log  # the deployment that served
        assert "model_not_found" in log
        assert "401" in log
        for secret in (KEY, MASTER_KEY):
            assert secret not in log


def test_no_config_runs_the_demo_and_says_so(run_cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    handle = run_cli(env={"HOME": str(home)}, cwd=tmp_path)
    models = httpx.get(handle.url + "/v1/models").json()
    assert {m["id"] for m in models["data"]} >= {"demo-fast"}
    answer = httpx.post(
        handle.url + "/v1/chat/completions",
        json={"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200
    assert handle.terminate() == 0
    assert "built-in demo config" in handle.output()


def test_bind_to_a_named_port(fake, run_cli, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path)
    port = free_port()
    handle = run_cli("--config", str(conf), port=port)
    assert handle.port == port
    assert httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "healthy"
    assert handle.terminate() == 0


def test_unusable_log_file_or_host_exits_2(fake, run_cli, tmp_path: Path) -> None:
    conf = simple_config(fake, tmp_path, general_settings={"master_key": MASTER_KEY})
    bad_log = run_cli(
        "--config", str(conf), "--log-file", str(tmp_path / "no" / "x.log"), wait=False
    )
    assert bad_log.proc.wait(30) == 2
    assert "x.log" in bad_log.output() and "Traceback" not in bad_log.output()
    bad_host = run_cli("--config", str(conf), "--host", "no-such-host.invalid", wait=False)
    assert bad_host.proc.wait(30) == 2
    assert "no-such-host.invalid" in bad_host.output()
    assert "Traceback" not in bad_host.output()
