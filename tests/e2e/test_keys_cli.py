"""`llmproxy-tui keys ...` as a subprocess: on a running `--no-tui` proxy (`--attach`) and on
the local store, with the new key then used against the real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import MASTER_KEY, CliProxy, cli_command

KEY_LINE = re.compile(r"^key:\s+(sk-\S+)$", re.MULTILINE)


def config_file(tmp_path: Path) -> Path:
    doc = {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {"model": f"mock/{name}", "mock_response": "hi"},
                "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            }
            for name in ("mock-a", "mock-b")
        ],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def keys(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    full_env.update({"HOME": str(tmp_path), "LITELLM_MASTER_KEY": MASTER_KEY, **(env or {})})
    return subprocess.run(
        [*cli_command(), "keys", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
    )


def chat(url: str, key: str, model: str = "mock-a") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def proxy(run_cli, tmp_path: Path) -> CliProxy:
    conf = config_file(tmp_path)
    return run_cli("--config", str(conf), env={"LITELLM_MASTER_KEY": MASTER_KEY})


def test_keys_on_a_running_proxy(proxy: CliProxy, tmp_path: Path) -> None:
    attach = ("--attach", proxy.url)
    created = keys(
        tmp_path, "create", *attach, "--alias", "alice", "--models", "mock-a",
        "--max-budget", "5", "--budget-duration", "30d", "--soft-budget", "4", "--rpm", "60",
        "--tpm", "100000", "--parallel", "4", "--duration", "90d", "--metadata", '{"team":"x"}',
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    match = KEY_LINE.search(created.stdout)
    assert match, created.stdout
    key = match.group(1)
    assert "shown only once" in created.stdout
    assert chat(proxy.url, key).status_code == 200
    assert chat(proxy.url, key, "mock-b").status_code == 403  # not one of its models

    listed = keys(tmp_path, "list", *attach)
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout and "sk-..." + key[-4:] in listed.stdout
    assert key not in listed.stdout
    as_json = json.loads(keys(tmp_path, "list", "--json", *attach).stdout)
    assert [k["key_alias"] for k in as_json] == ["alice"]
    assert as_json[0]["max_budget"] == 5 and as_json[0]["metadata"] == {"team": "x"}
    assert key not in json.dumps(as_json)

    shown = keys(tmp_path, "show", "alice", "--json", *attach)
    assert shown.returncode == 0, shown.stderr
    info: dict[str, Any] = json.loads(shown.stdout)
    assert info["rpm_limit"] == 60 and info["soft_budget"] == 4 and "spend" in info
    assert key not in shown.stdout

    assert keys(tmp_path, "block", "alice", *attach).returncode == 0
    assert chat(proxy.url, key).status_code == 401
    assert keys(tmp_path, "unblock", "alice", *attach).returncode == 0
    assert chat(proxy.url, key).status_code == 200

    updated = keys(tmp_path, "update", "alice", "--max-budget", "7", "--json", *attach)
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["max_budget"] == 7

    assert keys(tmp_path, "delete", "alice", *attach).returncode == 0
    assert chat(proxy.url, key).status_code == 401
    assert json.loads(keys(tmp_path, "list", "--json", *attach).stdout) == []


def test_errors_are_one_line_and_exit_2(proxy: CliProxy, tmp_path: Path) -> None:
    attach = ("--attach", proxy.url)
    assert "nobody" in one_line_error(keys(tmp_path, "show", "nobody", *attach))
    wrong = keys(tmp_path, "list", *attach, env={"LLMPROXY_KEY": "sk-wrong-key-000000000000"})
    line = one_line_error(wrong)
    assert "401" in line and "sk-wrong" not in line
    bad = keys(tmp_path, "create", *attach, "--metadata", "[1, 2")
    assert "--metadata" in one_line_error(bad)
    refused = keys(tmp_path, "create", *attach, "--budget-duration", "soon")
    assert "budget_duration" in one_line_error(refused)
    gone = keys(tmp_path, "list", "--attach", "http://127.0.0.1:9")  # nothing listens there
    assert "cannot reach" in one_line_error(gone)


def test_keys_on_the_local_store_work_on_the_server(run_cli, tmp_path: Path) -> None:
    conf = config_file(tmp_path)
    db = tmp_path / "usage.db"
    local = ("--config", str(conf), "--usage-db", str(db))
    created = keys(tmp_path, "create", "--alias", "bob", "--max-budget", "1", *local)
    assert created.returncode == 0, created.stderr
    match = KEY_LINE.search(created.stdout)
    assert match, created.stdout
    key = match.group(1)
    listed = keys(tmp_path, "list", *local)
    assert "bob" in listed.stdout and key not in listed.stdout
    assert key.encode() not in db.read_bytes()  # stored only as a hash

    proxy = run_cli(*local, env={"LITELLM_MASTER_KEY": MASTER_KEY})
    assert chat(proxy.url, key).status_code == 200
    proxy.terminate()

    assert keys(tmp_path, "block", "bob", *local).returncode == 0
    again = run_cli(*local, env={"LITELLM_MASTER_KEY": MASTER_KEY})
    assert chat(again.url, key).status_code == 401
    assert keys(tmp_path, "delete", "bob", *local).returncode == 0
    assert json.loads(keys(tmp_path, "list", "--json", *local).stdout) == []
