"""The proxy under test: its bench config, its start (timed to a healthy /health), its stop.

Also the optional stalled subscriber: a raw socket on /llmproxy/events that reads the
response headers and then never reads again, so the proxy's send buffer fills up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import payloads
import procs
from upstream import LOCATIONS, Nginx

HOST = "127.0.0.1"


def write_config(path: Path, nginx: Nginx) -> None:
    """Write the LiteLLM-format bench config: groups fast, stream, slow; no cache."""
    lines = ["model_list:"]
    for group in LOCATIONS:
        lines += [
            f"  - model_name: {group}",
            "    litellm_params:",
            f"      model: openai/{payloads.UPSTREAM_MODEL}",
            f"      api_base: {nginx.base(group)}",
            f"      api_key: {payloads.UPSTREAM_KEY}",
        ]
    lines += ["general_settings:", "  master_key: os.environ/LITELLM_MASTER_KEY", ""]
    path.write_text("\n".join(lines))


def proxy_argv(
    proxy_cmd: str | None, config: Path, port: int, usage_db: Path, extra: str
) -> list[str]:
    """The command line that starts the proxy.

    `proxy_cmd` replaces `llmproxy-tui`; if it contains `{port}` (or `{config}`, `{host}`,
    `{usage_db}`) it is formatted and used as is, else the standard arguments are appended.

    Returns:
        The argv list.

    Raises:
        RuntimeError: no proxy command was given and `llmproxy-tui` is not on PATH.
    """
    fields = {"config": config, "host": HOST, "port": port, "usage_db": usage_db}
    if proxy_cmd and "{" in proxy_cmd:
        return shlex.split(proxy_cmd.format(**fields)) + shlex.split(extra)
    if proxy_cmd:
        base = shlex.split(proxy_cmd)
    else:
        exe = shutil.which("llmproxy-tui")
        if exe is None:
            raise RuntimeError("llmproxy-tui is not on PATH: run `pip install -e .` first")
        base = [exe]
    standard = [
        "--no-tui",
        "--config",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--usage-db",
        str(usage_db),
    ]
    return base + standard + shlex.split(extra)


class Proxy:
    """One proxy process pinned to a core, started and stopped by the bench."""

    def __init__(
        self, tmp: Path, nginx: Nginx, *, core: int, proxy_cmd: str | None, extra_args: str
    ) -> None:
        self.tmp = tmp / "proxy"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.config = self.tmp / "config.yaml"
        write_config(self.config, nginx)
        self.core = core
        self.proxy_cmd = proxy_cmd
        self.extra_args = extra_args
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.tmp / "proxy.log"
        self.exit_codes: list[int] = []

    @property
    def url(self) -> str:
        """The proxy's chat completions URL."""
        return f"http://{HOST}:{self.port}/v1/chat/completions"

    def start(self, timeout: float = 30.0) -> float:
        """Start the proxy on a free port and wait for GET /health to answer 200.

        Returns:
            Seconds from spawn to the first 200 (polled every 10 ms).

        Raises:
            RuntimeError: it exited or never became healthy (its log tail is in the message).
        """
        self.port = procs.free_port()
        argv = proxy_argv(
            self.proxy_cmd, self.config, self.port, self.tmp / "usage.db", self.extra_args
        )
        env = {k: v for k, v in os.environ.items() if k != "LLMPROXY_CONFIG"}
        env["LITELLM_MASTER_KEY"] = payloads.MASTER_KEY
        began = time.perf_counter()
        self.proc = procs.spawn(argv, core=self.core, log=self.log, env=env, cwd=self.tmp)
        try:
            procs.wait_healthy(self.proc, self.port, "/health", timeout=timeout)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- proxy log tail ---\n{self.log_tail()}") from exc
        return time.perf_counter() - began

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the proxy's stdout/stderr log.

        Returns:
            Up to `chars` characters.
        """
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def rss_mib(self) -> float:
        """VmRSS of the proxy and its children in MiB.

        Returns:
            MiB, or 0.0 when not running.
        """
        return procs.tree_rss_mib(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        """Stop the proxy (TERM to its process group, then KILL) and remember its exit code."""
        if self.proc is not None:
            procs.stop(self.proc, grace=10.0)
            self.exit_codes.append(self.proc.returncode)
            self.proc = None


class StalledSubscriber:
    """A client of /llmproxy/events that reads the headers and then never reads again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def open(self) -> None:
        """Connect with the master key and read up to the end of the response headers.

        Raises:
            RuntimeError: the proxy did not answer 200.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect((HOST, self.port))
        self.sock = sock
        sock.sendall(
            (
                f"GET /llmproxy/events HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"Authorization: Bearer {payloads.MASTER_KEY}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = sock.recv(1)
            if not data:
                break
            head += data
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 200 " not in status + " ":
            raise RuntimeError(f"/llmproxy/events answered {status!r}")

    def close(self) -> None:
        """Close the socket."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
