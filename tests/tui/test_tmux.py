"""The real `llmproxy-tui` command in a tmux terminal: it shows the panes and exits 0 on `q`."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PANE_TITLES = ("1 Keys", "2 Requests", "3 Cache", "4 Cost")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command() -> list[str]:
    exe = shutil.which("llmproxy-tui")
    return [exe] if exe else [sys.executable, "-m", "tui.cli"]


def tmux(session: str, *args: str) -> list[str]:
    """A tmux command on the session's own server (`-L`): a shared default server would run
    the command with the environment (HOME) of whichever test started that server first."""
    return ["tmux", "-L", session, "-f", "/dev/null", *args]


def capture(session: str) -> str:
    return subprocess.run(
        tmux(session, "capture-pane", "-p", "-t", session),
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def session(tmp_path):
    name = f"llmproxy-test-{os.getpid()}-{free_port()}"
    yield name
    subprocess.run(tmux(name, "kill-server"), capture_output=True, check=False)


def test_the_command_starts_in_tmux_and_quits_with_q(tmp_path: Path, session: str) -> None:
    assert shutil.which("tmux"), "tmux is required for this test"
    exit_file = tmp_path / "exit"
    args = [*command(), "--port", str(free_port()), "--usage-db", str(tmp_path / "usage.db")]
    shell = f"{shlex.join(args)}; echo EXIT=$? > {shlex.quote(str(exit_file))}"
    env = {k: v for k, v in os.environ.items() if k not in ("LLMPROXY_CONFIG", "TMUX")}
    env["HOME"] = str(tmp_path)  # no ~/.litellm/config.yaml: the demo config is used
    subprocess.run(
        tmux(
            session,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(tmp_path),
            shell,
        ),
        check=True,
        env=env,
    )
    shown = wait_for(lambda: all(title in capture(session) for title in PANE_TITLES))
    screen = capture(session)
    assert shown, screen
    assert "Demo config" in screen
    subprocess.run(tmux(session, "send-keys", "-t", session, "q", "y"), check=True)
    assert wait_for(exit_file.exists, 40), capture(session)
    assert exit_file.read_text().strip() == "EXIT=0"


def test_a_taken_port_exits_3_with_a_clear_message(tmp_path: Path, session: str) -> None:
    exit_file, err_file = tmp_path / "exit", tmp_path / "stderr"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [*command(), "--port", str(port), "--usage-db", str(tmp_path / "usage.db")]
        shell = (
            f"{shlex.join(args)} 2> {shlex.quote(str(err_file))}; "
            f"echo EXIT=$? > {shlex.quote(str(exit_file))}"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("LLMPROXY_CONFIG", "TMUX")}
        env["HOME"] = str(tmp_path)
        subprocess.run(
            tmux(
                session,
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                "80",
                "-y",
                "24",
                "-c",
                str(tmp_path),
                shell,
            ),
            check=True,
            env=env,
        )
        assert wait_for(exit_file.exists, 40), capture(session)
    assert exit_file.read_text().strip() == "EXIT=3"
    assert f"cannot listen on 127.0.0.1:{port}" in err_file.read_text()
