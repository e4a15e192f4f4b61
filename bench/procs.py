"""Process plumbing for the bench: spawn pinned in its own group, stop by group, ports, RSS.

Every process the bench starts goes through `spawn` and is stopped with `stop`, which signals
only that process group (the bench never kills by name).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    argv: Sequence[str],
    *,
    core: int | None,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in a new session (its own process group), pinned to `core` with taskset.

    Returns:
        The running process; its pid is also its process-group id.
    """
    full = ["taskset", "-c", str(core), *argv] if core is not None else list(argv)
    with log.open("ab") as out:
        return subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Stop a process started by `spawn` and everything in its group: TERM, then KILL."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    # Stragglers left in the group after the leader exited.
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """GET http://127.0.0.1:port/path once.

    Returns:
        The status code, or None when the connection failed.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_healthy(
    proc: subprocess.Popen[bytes], port: int, path: str, *, timeout: float, poll: float = 0.01
) -> float:
    """Poll GET path every `poll` seconds until it answers 200.

    Returns:
        Seconds from now until the first 200.

    Raises:
        RuntimeError: the process exited, or no 200 came within `timeout`.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if http_status(port, path, timeout=0.5) == 200:
            return time.perf_counter() - start
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {path} was up")
        time.sleep(poll)
    raise RuntimeError(f"no 200 from {path} on port {port} within {timeout:.0f} s")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def tree_rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of a process and all its descendants, in MiB.

    Returns:
        The sum in MiB (0.0 when the process is gone).
    """
    total_kib = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
        todo += _children(current)
    return total_kib / 1024


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process and its descendants, in seconds.

    Returns:
        Seconds of CPU (0.0 when the process is gone).
    """
    user, system = tree_cpu_split(pid)
    return user + system


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time used so far by a process and its descendants, in seconds.

    Returns:
        (user, system) seconds (zeros when the process is gone).
    """
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        user += int(fields[11])  # utime (field 14)
        system += int(fields[12])  # stime (field 15)
        todo += _children(current)
    return user / tick, system / tick
