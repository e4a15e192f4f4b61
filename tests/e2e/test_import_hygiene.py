"""The proxy and the headless command never load Textual (the dashboard is optional weight)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
NO_TEXTUAL = "assert not [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]"


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_proxy_modules_do_not_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import proxy.http.app, proxy.http.server, proxy.runtime\n"
        "import proxy.http.admin, proxy.config.loader\n"
        f"{NO_TEXTUAL}\n"
        "assert not [m for m in sys.modules if m == 'tui' or m.startswith('tui.')]\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_headless_check_does_not_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['llmproxy-tui', '--no-tui', '--check']\n"
        "try:\n"
        "    runpy.run_module('tui.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"{NO_TEXTUAL}\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "built-in demo config" in result.stdout


def test_headless_server_does_not_import_textual(tmp_path: Path) -> None:
    """The serving command itself, traced with -X importtime while it answers a request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    env |= {"HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    port = free_port()
    log = tmp_path / "importtime.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "tui.cli",
                "--no-tui",
                "--port",
                str(port),
                "--usage-db",
                str(tmp_path / "u.db"),
            ],  # fmt: skip
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/health/liveness", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        body = {"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in log.read_text().splitlines()
        if line.startswith("import time:")
    ]
    assert "proxy.http.server" in imported  # the trace is real
    assert not [m for m in imported if m == "textual" or m.startswith("textual.")]
