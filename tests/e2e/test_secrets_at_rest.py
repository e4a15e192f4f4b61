"""Secrets at rest and on the way out: private files, no credential in a shown URL or an echoed
error, no open proxy from an unset master key variable, and log lines a client cannot forge."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import (
    MASTER_KEY,
    CliProxy,
    anthropic_deployment,
    cli_command,
    free_port,
    openai_deployment,
    wait_healthy,
)
from tests.fakes.steps import error

URL_SECRET = "s3cret-in-the-url-9876"
HEADER_SECRET = "org-header-secret-0123456789"
MSG = [{"role": "user", "content": "hi"}]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    return {**env, **extra}


def test_usage_store_home_dir_and_log_file_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".llmproxy").mkdir(parents=True, mode=0o755)  # as an older release left it
    os.chmod(home / ".llmproxy", 0o755)
    log_file = tmp_path / "proxy.log"
    port = free_port()
    out = tmp_path / "out.log"
    cmd = [*cli_command(), "--no-tui", "--port", str(port), "--log-file", str(log_file)]
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env=_clean_env(HOME=str(home)), cwd=tmp_path, stdout=sink, stderr=sink
        )
    handle = CliProxy(proc, f"http://127.0.0.1:{port}", port, out)
    try:
        wait_healthy(handle)
        forged = "x\n2001-01-01 00:00:00,000 ERROR llmproxy: forged\x1b]0;TITLE\x07\r\x9b2J"
        with httpx.Client(base_url=handle.url, timeout=30) as c:
            body = {"model": "demo-fast", "messages": MSG}
            assert c.post("/v1/chat/completions", json=body).status_code == 200
            bad = c.post("/v1/chat/completions", json={"model": forged, "messages": MSG})
            huge = c.post("/v1/chat/completions", json={"model": "m" * 2**20, "messages": MSG})
        store = home / ".llmproxy"
        files = [store / name for name in ("usage.db", "usage.db-wal", "usage.db-shm")]
        deadline = time.monotonic() + 20
        while not all(f.exists() for f in files):  # the writer thread opens the store
            assert time.monotonic() < deadline, list(store.iterdir())
            time.sleep(0.05)
        modes = {f.name: _mode(f) for f in [*files, log_file]}
    finally:
        assert handle.terminate() == 0
    assert _mode(store) == 0o700
    assert modes == dict.fromkeys(modes, 0o600)
    # A client's model name can neither forge a log line nor send escapes to the terminal.
    assert bad.status_code == 404 and huge.status_code == 404
    assert len(huge.json()["error"]["message"]) < 400
    text = log_file.read_text(encoding="utf-8")
    assert "forged" in text  # it was logged, escaped
    assert not re.search(r"^2001-01-01", text, re.MULTILINE)
    assert not any(ch in text for ch in "\x1b\x07\r\x9b")
    assert len(text) < 100_000  # the 1 MiB name was not logged whole


def test_master_key_naming_an_unset_variable_is_a_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "config.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/m"}}],
                "general_settings": {"master_key": "os.environ/T13_UNSET_MASTER"},
            }
        )
    )
    for args in (["--check"], ["--no-tui", "--port", str(free_port())]):
        result = subprocess.run(
            [*cli_command(), "--config", str(conf), *args],
            env=_clean_env(HOME=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "T13_UNSET_MASTER" in result.stderr and "master_key" in result.stderr
        assert "Traceback" not in result.stderr


def test_postgres_database_url_without_asyncpg_exits_2_with_the_install_command(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # As if asyncpg were not installed: find_spec() returns None and the import fails.
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['asyncpg'] = None\n")
    conf = tmp_path / "config.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/m"}}],
                "general_settings": {"database_url": f"postgresql://u:{URL_SECRET}@127.0.0.1:1/d"},
            }
        )
    )
    env = _clean_env(HOME=str(tmp_path), PYTHONPATH=os.pathsep.join([str(site), os.getcwd()]))
    result = subprocess.run(
        [*cli_command(), "--config", str(conf), "--no-tui", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "asyncpg" in result.stderr and "pip install 'llmproxy-tui[scale]'" in result.stderr
    assert "Traceback" not in result.stderr and URL_SECRET not in result.stderr


def test_credentials_in_urls_and_extra_headers_never_shown(fake, start_proxy, tmp_path) -> None:
    with_creds = fake.openai_base.replace("http://", f"http://user:{URL_SECRET}@")
    doc = {
        "model_list": [
            openai_deployment(
                "g",
                fake,
                "sk-upstream-key-0000000000001",
                extra_headers={"OpenAI-Organization": HEADER_SECRET},
            ),
            # Only shown, never called: aiohttp refuses credentials in a URL beside a key.
            openai_deployment("u", fake, "sk-upstream-key-0000000000002", api_base=with_creds),
        ],
        "router_settings": {"num_retries": 0},
    }
    proxy = start_proxy(doc, master_key=MASTER_KEY)
    fake.script(error(400, f"unknown organization {HEADER_SECRET}"))
    client = proxy.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="g", messages=MSG)  # type: ignore[arg-type]
    seen = str(caught.value) + str(caught.value.response.text)
    assert "unknown organization" in seen and HEADER_SECRET not in seen
    state = proxy.state()
    text = yaml.safe_dump(state)
    assert "user:***@127.0.0.1" in text
    assert URL_SECRET not in text and HEADER_SECRET not in text
    conf = tmp_path / "check.yaml"
    conf.write_text(yaml.safe_dump(doc))
    checked = subprocess.run(
        [*cli_command(), "--config", str(conf), "--check"],
        env=_clean_env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "user:***@127.0.0.1" in checked.stdout and URL_SECRET not in checked.stdout


def test_embeddings_on_a_chat_only_group_is_a_400_naming_it(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [anthropic_deployment("claude", fake, "sk-ant-upstream-000000000001")]}
    )
    client = proxy.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="claude", input="hello")
    assert caught.value.status_code == 400
    assert "'claude'" in caught.value.message and "/v1/embeddings" in caught.value.message
    assert fake.requests == []  # refused before any upstream call
